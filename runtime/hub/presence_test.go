package hub_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// fakePresence records Attach and Detach calls as "attach leaf1 {desired methods c2d}" and
// "detach leaf1".
type fakePresence struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakePresence) Attach(_ context.Context, id sas.Identity, subs hub.Subscriptions) error {
	f.record(fmt.Sprintf("attach %s %s", id, subsText(subs)))
	return nil
}

func (f *fakePresence) Detach(_ context.Context, id sas.Identity) error {
	f.record("detach " + id.String())
	return nil
}

func (f *fakePresence) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakePresence) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func subsText(s hub.Subscriptions) string {
	var on []string
	for name, b := range map[string]bool{"desired": s.Desired, "methods": s.Methods, "c2d": s.C2D} {
		if b {
			on = append(on, name)
		}
	}
	slices.Sort(on)
	return fmt.Sprint(on)
}

// waitCalls waits for the presence log to equal want.
func waitCalls(t *testing.T, p *fakePresence, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("presence calls %q", want), func() bool { return slices.Equal(p.log(), want) })
}

func TestPresence_AttachFollowsSubscriptionsDetachOnLeave(t *testing.T) {
	p := &fakePresence{}
	e := newEnv(t, withDeps(func(d *hub.Deps) { d.Presence = p }))
	c := e.connect(leaf, cleanSession)
	waitCalls(t, p, "attach leaf1 []")
	c.subscribe(t, iothub.DesiredPatchFilter)
	waitCalls(t, p, "attach leaf1 []", "attach leaf1 [desired]")
	c.subscribe(t, iothub.MethodRequestFilter)
	c.subscribe(t, "devices/leaf1/messages/devicebound/#")
	c.subscribe(t, iothub.TwinResponseFilter) // concerns the hub only: no attach of its own
	// Changes close together may be told as one: what counts is the last state.
	waitFor(t, "attach with every subscription", func() bool {
		l := p.log()
		return l[len(l)-1] == "attach leaf1 [c2d desired methods]"
	})
	c.Disconnect(0)
	waitFor(t, "detach", func() bool {
		l := p.log()
		return l[len(l)-1] == "detach leaf1"
	})
	l := p.log()
	for _, call := range l[:len(l)-1] {
		if call == "detach leaf1" {
			t.Fatalf("detached while connected: %q", l)
		}
	}
}

func TestPresence_TakeoverIsNoDetach(t *testing.T) {
	p := &fakePresence{}
	e := newEnv(t, withDeps(func(d *hub.Deps) { d.Presence = p }))
	c := e.connect(modA)
	waitCalls(t, p, "attach edge1/modA []")
	c.subscribe(t, iothub.MethodRequestFilter)
	waitCalls(t, p, "attach edge1/modA []", "attach edge1/modA [methods]")
	// A second connection of the same identity (session kept) takes over: the identity stays
	// connected with the same subscriptions, so the cloud is told nothing.
	c2 := e.connect(modA)
	c.waitLost(t)
	c2.subscribe(t, iothub.DesiredPatchFilter)
	waitCalls(t, p, "attach edge1/modA []", "attach edge1/modA [methods]", "attach edge1/modA [desired methods]")
}
