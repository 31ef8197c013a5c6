package hub_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/store"
)

const routeAllToB = `FROM /messages/modules/modA/* INTO BrokeredEndpoint("/modules/modB/inputs/in1")`

func TestIngest_PubackOnlyAfterCommit(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}))
	e.stop()
	e.start(storeStopped) // the store takes appends but commits nothing until runStore
	a := e.connect(modA)
	tok := a.Publish(a.topic("out1", nil), 1, false, "durable")
	// A negative check needs a bounded wait: nothing can be observed instead.
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatalf("PUBACK before the store committed (err %v)", tok.Error())
	}
	if st := e.hub.Stats(); st.Stored != 0 {
		t.Fatalf("Stats.Stored = %d before the commit", st.Stored)
	}
	e.runStore()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after the store committed: %v", tok.Error())
	}
	// What was acknowledged is on disk: it survives a restart and reaches B.
	e.restart()
	b := e.connect(modB)
	b.subscribeInputs(t)
	if got := string(b.next(t).Payload()); got != "durable" {
		t.Fatalf("B got %q", got)
	}
}

func TestIngest_StoreTimeoutRefusesWithoutPuback(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.StoreTimeout = 100 * time.Millisecond }))
	e.stop()
	e.start(storeStopped)
	a := e.connect(modA)
	tok := a.Publish(a.topic("out1", nil), 1, false, "lost?")
	a.waitLost(t)
	if tok.WaitTimeout(10*time.Millisecond) && tok.Error() == nil {
		t.Fatal("refused publish was acknowledged")
	}
	if st := e.hub.Stats(); st.RefusedStoreError != 1 {
		t.Fatalf("Stats.RefusedStoreError = %d, want 1", st.RefusedStoreError)
	}
}

func TestRestart_NothingAcknowledgedIsLost(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{
		"aToB": `FROM /messages/modules/modA/outputs/out1 INTO BrokeredEndpoint("/modules/modB/inputs/in1")`,
		"up":   "FROM /messages/modules/modA/outputs/up INTO $upstream",
	}))
	e.up.setFail(func(int, iothub.Message) error { return fmt.Errorf("cloud unreachable") })
	a := e.connect(modA)
	const n = 20
	for i := range n {
		a.send(t, "out1", nil, strconv.Itoa(i))
		a.send(t, "up", nil, "up"+strconv.Itoa(i))
	}
	e.restart()
	e.up.setFail(nil)

	b := e.connect(modB)
	b.subscribeInputs(t)
	for i := range n {
		if got := string(b.next(t).Payload()); got != strconv.Itoa(i) {
			t.Fatalf("after restart, message %d: got %q", i, got)
		}
	}
	waitFor(t, "the upstream backlog sent", func() bool { return len(e.up.succeeded()) == n })
	for i, body := range e.up.succeeded() {
		if body != "up"+strconv.Itoa(i) {
			t.Fatalf("upstream message %d: %q", i, body)
		}
	}
	// Everything was acknowledged: a second restart delivers nothing again.
	waitFor(t, "B's acks", func() bool { return e.hub.Stats().Delivered == n })
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.restart()
	for _, q := range e.store.Stats().Queues {
		if q.Len != 0 {
			t.Fatalf("queue %q priority %d still holds %d messages", q.Queue, q.Priority, q.Len)
		}
	}
}

func TestPump_PrioritiesAndTTL(t *testing.T) {
	const sink = `INTO BrokeredEndpoint("/modules/modB/inputs/in1")`
	e := newEnv(t, withConfig(func(c *deployment.HubConfig) {
		c.Routes["high"] = deployment.Route{Name: "high", Expr: "FROM /messages/modules/modA/outputs/high " + sink, Priority: 0}
		c.Routes["low"] = deployment.Route{Name: "low", Expr: "FROM /messages/modules/modA/outputs/low " + sink, Priority: 5}
		c.Routes["short"] = deployment.Route{Name: "short", Expr: "FROM /messages/modules/modA/outputs/short " + sink, Priority: 5, TimeToLiveSecs: 60}
		c.StoreAndForward.TimeToLiveSecs = 3600
	}))
	a := e.connect(modA)
	a.send(t, "short", nil, "expires")
	a.send(t, "low", nil, "low1")
	a.send(t, "low", nil, "low2")
	a.send(t, "high", nil, "high1")
	a.send(t, "high", nil, "high2")
	e.clock.Advance(61 * time.Second) // past the route TTL, well within the global one
	a.send(t, "short", nil, "fresh")

	b := e.connect(modB)
	b.subscribeInputs(t)
	want := []string{"high1", "high2", "low1", "low2", "fresh"}
	for i, w := range want {
		if got := string(b.next(t).Payload()); got != w {
			t.Fatalf("message %d: got %q, want %q (order %q)", i, got, w, want)
		}
	}
	select {
	case m := <-b.msgs:
		t.Fatalf("unexpected extra message %q", m.Payload())
	default:
	}
	waitFor(t, "the expired message dropped", func() bool { return e.store.Stats().Dropped["ttl"] == 1 })
}

func TestPump_UnacknowledgedMessageIsDeadLettered(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) {
			o.AckTimeout = 100 * time.Millisecond
			o.MaxDeliveryAttempts = 3
		}))
	a := e.connect(modA)
	a.send(t, "out1", nil, "poison")
	a.send(t, "out1", nil, "next")
	b := e.connect(modB, noAutoAck)
	b.subscribeInputs(t)
	// B never acknowledges "poison". The first window carries both messages; after the
	// first failure the pump retries "poison" alone (a window of one until a PUBACK comes
	// back), with DUP, until its third attempt dead-letters it; then "next" again.
	want := []struct {
		body string
		dup  bool
	}{{"poison", false}, {"next", false}, {"poison", true}, {"poison", true}, {"next", true}}
	for i, w := range want {
		m := b.next(t)
		if string(m.Payload()) != w.body || m.Duplicate() != w.dup {
			t.Fatalf("delivery %d: got %q (DUP %v), want %q (DUP %v)", i, m.Payload(), m.Duplicate(), w.body, w.dup)
		}
		if i == len(want)-1 {
			m.Ack()
		}
	}
	waitFor(t, "next acknowledged", func() bool { return e.hub.Stats().Delivered == 1 })
	st := e.hub.Stats()
	if st.DeadLettered != 1 || st.DeliveryFailures != 3 {
		t.Fatalf("dead-lettered %d, failures %d; want 1 and 3", st.DeadLettered, st.DeliveryFailures)
	}
	if got := e.store.Stats().DeadLetters["unacknowledged"]; got != 1 {
		t.Fatalf("store dead letters = %d, want 1", got)
	}
}

func TestPump_UpstreamRetriesThenDeadLettersRejected(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"up": "FROM /messages/* INTO $upstream"}))
	e.up.setFail(func(n int, m iothub.Message) error {
		switch {
		case n < 3:
			return fmt.Errorf("link down")
		case string(m.Body) == "refused":
			return fmt.Errorf("device deleted: %w", hub.ErrRejected)
		}
		return nil
	})
	l := e.connect(leaf)
	l.send(t, "", nil, "one")
	l.send(t, "", nil, "refused")
	l.send(t, "", nil, "two")
	waitFor(t, "upstream sends", func() bool { return len(e.up.succeeded()) == 2 })
	if got := e.up.succeeded(); got[0] != "one" || got[1] != "two" {
		t.Fatalf("upstream received %q", got)
	}
	e.up.mu.Lock()
	first := e.up.calls[0]
	e.up.mu.Unlock()
	if first.id != leaf || first.msg.System[iothub.SysConnDeviceID] != "leaf1" {
		t.Fatalf("sent on behalf of %v with cdid %q", first.id, first.msg.System[iothub.SysConnDeviceID])
	}
	st := e.hub.Stats()
	if st.DeadLettered != 1 || st.SentUpstream != 2 || st.DeliveryFailures != 4 {
		t.Fatalf("dead-lettered %d, sent %d, failures %d; want 1, 2, 4", st.DeadLettered, st.SentUpstream, st.DeliveryFailures)
	}
}

func TestIngest_StoreFullRefusesAndCounts(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withStore(func(o *store.Options) { o.MaxBytes, o.FullPolicy = 1200, store.RejectNew }))
	a := e.connect(modA)
	a.send(t, "out1", nil, strings.Repeat("x", 800)) // fits
	tok := a.Publish(a.topic("out1", nil), 1, false, strings.Repeat("y", 800))
	a.waitLost(t)
	if tok.WaitTimeout(10*time.Millisecond) && tok.Error() == nil {
		t.Fatal("a message the store refused was acknowledged")
	}
	if st := e.hub.Stats(); st.RefusedStoreFull != 1 || st.Stored != 1 {
		t.Fatalf("Stats: store full %d, stored %d; want 1 and 1", st.RefusedStoreFull, st.Stored)
	}
	// Once B drains the queue there is room again.
	b := e.connect(modB)
	b.subscribeInputs(t)
	b.next(t)
	// The pump acks the store only after B's PUBACK reaches the hub, which happens after
	// b.next returned: wait for the ack, then for its commit.
	waitFor(t, "the delivered message to leave the store", func() bool { return e.store.Stats().Messages == 0 })
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.connect(modA).send(t, "out1", nil, strings.Repeat("z", 800))
}

// TestPump_WakesWhenTheModuleSubscribes: with a back-off far longer than the test's patience,
// the message still arrives at once because connecting and subscribing wake the pump.
func TestPump_WakesWhenTheModuleSubscribes(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.RetryMin, o.RetryMax = time.Minute, time.Minute }))
	a := e.connect(modA)
	a.send(t, "out1", nil, "waiting")
	waitFor(t, "the pump to find B away", func() bool { return e.hub.Stats().Deferred == 1 })
	b := e.connect(modB)
	// Connecting wakes the pump, which finds B not subscribed yet.
	waitFor(t, "the pump to find B unsubscribed", func() bool { return e.hub.Stats().Deferred == 2 })
	b.subscribeInputs(t)
	if got := string(b.next(t).Payload()); got != "waiting" {
		t.Fatalf("got %q", got)
	}
}
