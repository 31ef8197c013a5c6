package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Subscriptions say what the cloud should forward to the hub for a connected client: what
// the client subscribed to here.
type Subscriptions struct {
	// Desired: the client subscribed to desired-property patches
	// ($iothub/twin/PATCH/properties/desired/#).
	Desired bool
	// Methods: the client subscribed to direct method requests ($iothub/methods/POST/#).
	Methods bool
	// C2D: a device subscribed to its cloud-to-device messages
	// (devices/{d}/messages/devicebound/#).
	C2D bool
}

// Presence tells the cloud which clients are connected to the hub (Deps.Presence), so that
// IoT Hub shows them connected and forwards what they subscribed to over the hub's one
// upstream connection (docs/upstream.md, "Attach and detach").
//
// The hub calls Attach when a client's session is established and again whenever its
// subscriptions change, and Detach when it leaves (not when a newer connection of the same
// identity took over). Calls for one identity are made one at a time, in order, from the
// hub's own goroutines (a few identities at a time), never from a client's. The hub does
// not retry: an implementation remembers the attachments it was given and makes them
// again after the link returns (package upstream does), so an error is only logged.
type Presence interface {
	Attach(ctx context.Context, id sas.Identity, subs Subscriptions) error
	Detach(ctx context.Context, id sas.Identity) error
}

const (
	// presenceParallel bounds the identities whose attach or detach is in flight at once.
	presenceParallel = 16
	// presenceRecheck is when an identity whose connection was being established is looked
	// at again.
	presenceRecheck = time.Second
)

// presence keeps the cloud's view of the connected clients in step with the registry. It
// is level-triggered: the hooks only mark an identity dirty, and a worker compares what
// the registry says now (connected, with which subscriptions) with what the cloud was last
// told, and calls Attach or Detach when they differ. Bursts of changes collapse into one
// call, and an identity's calls never overlap.
//
// presence.mu is a leaf lock: it is not held while calling the registry or Presence.
type presence struct {
	s    *Server
	p    Presence
	wake chan struct{} // size 1

	mu    sync.Mutex
	dirty map[sas.Identity]struct{}      // changed since last looked at
	busy  map[sas.Identity]struct{}      // a worker is on it
	told  map[sas.Identity]Subscriptions // attached with these; absent: detached
}

func newPresence(s *Server, p Presence) *presence {
	return &presence{s: s, p: p, wake: make(chan struct{}, 1),
		dirty: map[sas.Identity]struct{}{}, busy: map[sas.Identity]struct{}{}, told: map[sas.Identity]Subscriptions{}}
}

// changed marks id for a look.
func (pr *presence) changed(id sas.Identity) {
	pr.mu.Lock()
	pr.dirty[id] = struct{}{}
	pr.mu.Unlock()
	select {
	case pr.wake <- struct{}{}:
	default:
	}
}

// start runs the workers until ctx ends; the returned channel is closed once they all
// returned. With no Presence configured it does nothing.
func (pr *presence) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if pr.p == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		sem := make(chan struct{}, presenceParallel)
		for {
			select {
			case <-pr.wake:
			case <-ctx.Done():
				return
			}
			for _, id := range pr.claim() {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					pr.work(ctx, id)
				}()
			}
		}
	}()
	return done
}

// claim marks every dirty identity that no worker is on as busy and returns them. The
// others stay dirty: their worker looks again before it finishes.
func (pr *presence) claim() []sas.Identity {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var ids []sas.Identity
	for id := range pr.dirty {
		if _, ok := pr.busy[id]; !ok {
			pr.busy[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	return ids
}

// work brings id's attachment in step until nothing changed while it was at it.
func (pr *presence) work(ctx context.Context, id sas.Identity) {
	for {
		pr.mu.Lock()
		delete(pr.dirty, id)
		pr.mu.Unlock()
		pr.sync(ctx, id)
		pr.mu.Lock()
		_, again := pr.dirty[id]
		if !again || ctx.Err() != nil {
			delete(pr.busy, id)
			pr.mu.Unlock()
			return
		}
		pr.mu.Unlock()
	}
}

// sync makes one Attach or Detach call if the cloud's view of id is not the registry's.
func (pr *presence) sync(ctx context.Context, id sas.Identity) {
	clientID := iothub.ClientID(id.DeviceID, id.ModuleID)
	if pr.s.conns.connecting(clientID) {
		// A newer connection is taking over (mochi may close the older one before the
		// newer's session is established): its establishment marks id again. Look again
		// later anyway, in case it never gets there.
		time.AfterFunc(presenceRecheck, func() { pr.changed(id) })
		return
	}
	want, connected := pr.desired(id, clientID)
	pr.mu.Lock()
	told, attached := pr.told[id]
	pr.mu.Unlock()
	if connected == attached && (!connected || want == told) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, pr.s.opts.UpstreamTimeout)
	defer cancel()
	var err error
	if connected {
		err = pr.p.Attach(cctx, id, want)
	} else {
		err = pr.p.Detach(cctx, id)
	}
	if ctx.Err() != nil {
		return // shutting down: the link goes too
	}
	// Recorded whatever the outcome: the implementation keeps and retries what it was told.
	pr.mu.Lock()
	if connected {
		pr.told[id] = want
	} else {
		delete(pr.told, id)
	}
	pr.mu.Unlock()
	log := pr.s.log.With("client_id", clientID)
	switch {
	case err == nil && connected:
		log.Debug("client attached upstream", "desired", want.Desired, "methods", want.Methods, "c2d", want.C2D)
	case err == nil:
		log.Debug("client detached upstream")
	case errors.Is(err, ErrOffline):
		log.Debug("upstream link down; the attachment follows when it is back", "connected", connected)
	default:
		log.Info("telling upstream about a client failed", "connected", connected, "err", err)
	}
}

// desired returns what the cloud should know of id now: whether it is connected, and what
// it subscribed to.
func (pr *presence) desired(id sas.Identity, clientID string) (Subscriptions, bool) {
	c, ok := pr.s.conns.get(clientID)
	if !ok || c.cl.Closed() {
		return Subscriptions{}, false
	}
	return subscriptionsOf(id, c.cl.State.Subscriptions.GetAll()), true
}

// subscriptionsOf maps a client's MQTT subscriptions onto what the cloud forwards. Module
// inputs and twin responses concern the hub only.
func subscriptionsOf(id sas.Identity, subs map[string]packets.Subscription) Subscriptions {
	var out Subscriptions
	for filter := range subs {
		f, err := iothub.ParseFilter(filter)
		if err != nil {
			continue
		}
		switch f.Kind {
		case iothub.KindTwinPatchDesired:
			out.Desired = true
		case iothub.KindMethodRequest:
			out.Methods = true
		case iothub.KindC2D:
			out.C2D = id.ModuleID == ""
		}
	}
	return out
}

// presenceHook marks an identity for a look whenever its connection or subscriptions
// change. It is registered after authHook, which updates the registry it reads.
type presenceHook struct {
	mqtt.HookBase
	s *Server
}

func (h *presenceHook) ID() string { return "outpost-presence" }

func (h *presenceHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed:
		return true
	}
	return false
}

func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.changed(cl) }

func (h *presenceHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.changed(cl) }

func (h *presenceHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) { h.changed(cl) }

func (h *presenceHook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { h.changed(cl) }

func (h *presenceHook) changed(cl *mqtt.Client) {
	if cl.Net.Inline {
		return
	}
	if d, m, err := iothub.ParseClientID(cl.ID); err == nil {
		h.s.presence.changed(sas.Identity{DeviceID: d, ModuleID: m})
	}
}

// connecting reports whether a connection of clientID is authenticated but its session not
// yet established.
func (r *registry) connecting(clientID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for cl := range r.pending {
		if cl.ID == clientID && !cl.Closed() {
			return true
		}
	}
	return false
}
