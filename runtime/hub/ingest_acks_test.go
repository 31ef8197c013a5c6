package hub_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/store"
)

// gateStore holds the results of AppendAsync until the test releases them, in any order:
// the hub sees its commits complete when and in the order the test decides. The appends
// themselves go to the real store.
type gateStore struct {
	*store.Store
	mu      sync.Mutex
	held    []*heldAppend // arrival order
	arrived chan struct{} // one value per append
	// stallFrom, when set, is the first append (1-based, counting all) that the gate
	// never commits: it and every later one end as the store ends an append it has not
	// started, when their ctx ends, with its cause.
	stallFrom, appends int
}

type heldAppend struct {
	done     func(error)
	result   chan error // the real store's result
	released bool
}

func newGateStore(s *store.Store) *gateStore {
	return &gateStore{Store: s, arrived: make(chan struct{}, 1024)}
}

func (g *gateStore) AppendAsync(ctx context.Context, body []byte, targets []store.Target, done func(error)) error {
	g.mu.Lock()
	g.appends++
	stall := g.stallFrom > 0 && g.appends >= g.stallFrom
	g.mu.Unlock()
	if stall {
		context.AfterFunc(ctx, func() { done(fmt.Errorf("append: %w", context.Cause(ctx))) })
		return nil
	}
	h := &heldAppend{done: done, result: make(chan error, 1)}
	if err := g.Store.AppendAsync(ctx, body, targets, func(err error) { h.result <- err }); err != nil {
		return err
	}
	g.mu.Lock()
	g.held = append(g.held, h)
	g.mu.Unlock()
	g.arrived <- struct{}{}
	return nil
}

// waitHeld waits until n appends arrived in total.
func (g *gateStore) waitHeld(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d appends at the store", n), func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.held) >= n
	})
}

func (g *gateStore) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

// release reports append i (0-based, arrival order) to the hub: with fail, as that
// error; otherwise with the real store's result, once it has one.
func (g *gateStore) release(t *testing.T, i int, fail error) {
	t.Helper()
	g.mu.Lock()
	h := g.held[i]
	if h.released {
		g.mu.Unlock()
		t.Fatalf("append %d released twice", i)
	}
	h.released = true
	g.mu.Unlock()
	err := <-h.result
	if fail != nil {
		err = fail
	}
	h.done(err)
}

// withGate makes the hub's store a gateStore, set in *g at every start.
func withGate(g **gateStore) envOption {
	return withDeps(func(d *hub.Deps) {
		*g = newGateStore(d.Store.(*store.Store))
		d.Store = *g
	})
}

// rawTopic is the telemetry topic of module id's output out.
func rawTopic(id string, out string) string {
	m := iothub.Message{Properties: map[string]string{}, System: map[string]string{iothub.SysOutputName: out}}
	return iothub.TelemetryTopic(edgeID, id, m.Bag())
}

// publishAll writes QoS 1 publishes with packet ids from, from+1, ... in one write, as a
// client pipelining its publishes does.
func (c *secRaw) publishAll(topic string, from uint16, n int) {
	c.t.Helper()
	var buf []byte
	for i := range n {
		body := binary.BigEndian.AppendUint16(secString(topic), from+uint16(i))
		buf = append(buf, secPacket(0x32, append(body, fmt.Sprint("m", i)...))...)
	}
	c.write(buf)
}

// pubacks reads n packets and returns their PUBACK ids, failing on anything else.
func (c *secRaw) pubacks(n int) []uint16 {
	c.t.Helper()
	var ids []uint16
	for range n {
		typ, body, err := c.read()
		if err != nil {
			c.t.Fatalf("after PUBACKs %v: %v", ids, err)
		}
		if typ != 0x40 || len(body) != 2 {
			c.t.Fatalf("after PUBACKs %v: packet %#x % x, want a PUBACK", ids, typ, body)
		}
		ids = append(ids, binary.BigEndian.Uint16(body))
	}
	return ids
}

// quiet checks that nothing arrives for a while. A negative check needs a bounded wait:
// there is nothing to observe instead.
func (c *secRaw) quiet(what string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	typ, body, err := c.read()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("%s: got packet %#x % x (err %v), want nothing", what, typ, body, err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
}

func ids(from, to uint16) []uint16 {
	var out []uint16
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestIngest_PipelinedPubacksInReceiveOrder: a client that pipelines 200 publishes gets
// their PUBACKs in receive order, and its publishes share commits.
func TestIngest_PipelinedPubacksInReceiveOrder(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}))
	c := secConnectRaw(t, e, modA)
	const n = 200
	before := e.store.Stats().Commits
	c.publishAll(rawTopic("modA", "out1"), 1, n)
	if got := c.pubacks(n); !slices.Equal(got, ids(1, n)) {
		t.Fatalf("PUBACKs in order %v", got)
	}
	st := e.store.Stats()
	if st.Appends != n {
		t.Fatalf("store appends %d, want %d", st.Appends, n)
	}
	// Waiting for each commit in turn would take one transaction per publish.
	if commits := st.Commits - before; commits >= n {
		t.Errorf("%d transactions for %d pipelined publishes: they did not share commits", commits, n)
	} else {
		t.Logf("%d publishes in %d transactions", n, commits)
	}
	if got := e.hub.Stats().Stored; got != n {
		t.Errorf("Stats.Stored = %d, want %d", got, n)
	}
}

// TestIngest_PipelinedNoPubackBeforeCommit: with the store's committer stopped, none of a
// pipelining client's publishes is acknowledged; once it runs, all are, in order.
func TestIngest_PipelinedNoPubackBeforeCommit(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}))
	e.stop()
	e.start(storeStopped)
	c := secConnectRaw(t, e, modA)
	c.publishAll(rawTopic("modA", "out1"), 1, 5)
	c.quiet("before the commit")
	if st := e.hub.Stats(); st.Stored != 0 {
		t.Fatalf("Stats.Stored = %d before the commit", st.Stored)
	}
	e.runStore()
	if got := c.pubacks(5); !slices.Equal(got, ids(1, 5)) {
		t.Fatalf("PUBACKs %v", got)
	}
}

// TestIngest_PubacksWaitForEarlierCommits: commits reported out of order still give
// PUBACKs in receive order, each only once it and everything before it committed.
func TestIngest_PubacksWaitForEarlierCommits(t *testing.T) {
	var g *gateStore
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}), withGate(&g))
	c := secConnectRaw(t, e, modA)
	c.publishAll(rawTopic("modA", "out1"), 1, 5)
	g.waitHeld(t, 5)
	for _, i := range []int{4, 3, 2} {
		g.release(t, i, nil)
	}
	c.quiet("publishes 3-5 committed, 1 and 2 not")
	g.release(t, 0, nil)
	if got := c.pubacks(1); !slices.Equal(got, []uint16{1}) {
		t.Fatalf("after the first commit: PUBACKs %v, want [1]", got)
	}
	c.quiet("publish 2 not committed")
	g.release(t, 1, nil)
	if got := c.pubacks(4); !slices.Equal(got, ids(2, 5)) {
		t.Fatalf("after the second commit: PUBACKs %v, want 2..5", got)
	}
}

// TestIngest_FailedAppendStopsThePubacks: an append that fails gets no PUBACK, nor does any
// later publish of the connection, even one whose append succeeded; the connection is
// closed and the refusal counted.
func TestIngest_FailedAppendStopsThePubacks(t *testing.T) {
	var g *gateStore
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}), withGate(&g))
	c := secConnectRaw(t, e, modA)
	c.publishAll(rawTopic("modA", "out1"), 1, 6)
	g.waitHeld(t, 6)
	g.release(t, 0, nil)
	g.release(t, 1, nil)
	if got := c.pubacks(2); !slices.Equal(got, ids(1, 2)) {
		t.Fatalf("PUBACKs %v, want [1 2]", got)
	}
	for _, i := range []int{5, 4, 3} {
		g.release(t, i, nil) // later publishes committed first
	}
	c.quiet("publish 3 not settled")
	g.release(t, 2, fmt.Errorf("injected: %w", store.ErrFull))
	c.expectClosed()
	if st := e.hub.Stats(); st.RefusedStoreFull != 1 || st.RefusedStoreError != 0 {
		t.Errorf("Stats: store full %d, store error %d; want 1 and 0", st.RefusedStoreFull, st.RefusedStoreError)
	}
}

// TestIngest_PubacksInOrderAcrossKinds: a publish that needs no commit (unrouted) and a
// twin request are acknowledged only after the pending publishes before them.
func TestIngest_PubacksInOrderAcrossKinds(t *testing.T) {
	tests := []struct {
		name  string
		topic string
	}{
		{"unrouted telemetry", rawTopic("modA", "nowhere")},
		{"twin GET", "$iothub/twin/GET/?$rid=7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g *gateStore
			e := newEnv(t, withRoutes(map[string]string{
				"aToB": `FROM /messages/modules/modA/outputs/out1 INTO BrokeredEndpoint("/modules/modB/inputs/in1")`,
			}), withGate(&g))
			c := secConnectRaw(t, e, modA)
			c.publishAll(rawTopic("modA", "out1"), 1, 1)
			g.waitHeld(t, 1)
			c.publish(tt.topic, []byte("{}"), 1, 2)
			c.quiet("the first publish not committed")
			g.release(t, 0, nil)
			if got := c.pubacks(2); !slices.Equal(got, []uint16{1, 2}) {
				t.Fatalf("PUBACKs %v, want [1 2]", got)
			}
			if n := g.count(); n != 1 {
				t.Errorf("%d appends, want 1", n)
			}
		})
	}
}

// TestIngest_WindowBoundsPendingPublishes: with IngestWindow 2, the hub reads no third
// publish while two await their commit.
func TestIngest_WindowBoundsPendingPublishes(t *testing.T) {
	var g *gateStore
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}), withGate(&g),
		withOptions(func(o *hub.Options) { o.IngestWindow = 2 }))
	c := secConnectRaw(t, e, modA)
	c.publishAll(rawTopic("modA", "out1"), 1, 4)
	g.waitHeld(t, 2)
	c.quiet("two publishes pending")
	if n := g.count(); n != 2 {
		t.Fatalf("%d appends submitted with a window of 2", n)
	}
	g.release(t, 0, nil)
	if got := c.pubacks(1); !slices.Equal(got, []uint16{1}) {
		t.Fatalf("PUBACKs %v", got)
	}
	g.waitHeld(t, 3)
	for i := 1; i < 4; i++ {
		if i == 3 {
			g.waitHeld(t, 4)
		}
		g.release(t, i, nil)
	}
	if got := c.pubacks(3); !slices.Equal(got, ids(2, 4)) {
		t.Fatalf("PUBACKs %v, want 2..4", got)
	}
}

// TestIngest_DisconnectAfterPipelinedPublishes: a client that disconnects cleanly right
// after its publishes gets their PUBACKs first.
func TestIngest_DisconnectAfterPipelinedPublishes(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}))
	c := secConnectRaw(t, e, modA)
	c.publishAll(rawTopic("modA", "out1"), 1, 50)
	c.write([]byte{0xe0, 0x00}) // DISCONNECT
	if got := c.pubacks(50); !slices.Equal(got, ids(1, 50)) {
		t.Fatalf("PUBACKs %v", got)
	}
}

// TestIngest_StoreTimeoutCountsFromEachPublish: the store timeout runs from each publish:
// a publish still pending when an earlier one's timeout would have passed, and one sent
// after a pause longer than the timeout, are acknowledged when committed within their
// own; one the store never commits is refused once its own timeout has passed, not
// before, and the connection closed.
func TestIngest_StoreTimeoutCountsFromEachPublish(t *testing.T) {
	const timeout = 900 * time.Millisecond // each commit below comes timeout/3 before its deadline
	var g *gateStore
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}), withGate(&g),
		withOptions(func(o *hub.Options) { o.StoreTimeout = timeout }))
	g.mu.Lock()
	g.stallFrom = 4
	g.mu.Unlock()
	c := secConnectRaw(t, e, modA)
	topic := rawTopic("modA", "out1")
	commitAfter := func(id uint16, wait time.Duration) {
		t.Helper()
		sent := time.Now()
		c.publishAll(topic, id, 1)
		g.waitHeld(t, int(id))
		time.Sleep(time.Until(sent.Add(wait)))
		g.release(t, int(id)-1, nil)
		if got := c.pubacks(1); !slices.Equal(got, []uint16{id}) {
			t.Fatalf("PUBACKs %v, want [%d]", got, id)
		}
	}

	commitAfter(1, timeout*2/3)
	commitAfter(2, timeout*2/3) // pending when publish 1's timeout passes
	time.Sleep(timeout * 4 / 3) // the timeout of publish 2 passes with nothing pending
	commitAfter(3, timeout*2/3)

	sent := time.Now()
	c.publishAll(topic, 4, 1) // never committed
	c.expectClosed()
	if waited := time.Since(sent); waited < timeout {
		t.Errorf("refused after %v, before the store timeout of %v", waited, timeout)
	}
	if st := e.hub.Stats(); st.RefusedStoreError != 1 {
		t.Errorf("Stats.RefusedStoreError = %d, want 1", st.RefusedStoreError)
	}
}
