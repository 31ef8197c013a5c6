package hub_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/store"
)

const inputB = "/modules/modB/inputs/in1"

// quiet is how long a test watches for a message that must not come. It only bounds a
// negative check: a pump that broke the rule sends at once.
const quiet = 300 * time.Millisecond

// storeMessages has module A send "0".."n-1" (routed to B's input) and waits for each PUBACK.
func storeMessages(t *testing.T, e *env, n int) {
	t.Helper()
	a := e.connect(modA)
	for i := range n {
		a.send(t, "out1", nil, strconv.Itoa(i))
	}
}

// expectNothing fails if c receives a message within quiet.
func (c *client) expectNothing(t *testing.T, why string) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("%v received %q (DUP %v); want nothing: %s", c.id, m.Payload(), m.Duplicate(), why)
	case <-time.After(quiet):
	}
}

// expectBodies receives len(want) messages and checks their bodies and DUP flags, in order.
func (c *client) expectBodies(t *testing.T, want []string, dup []bool) []paho.Message {
	t.Helper()
	got := make([]paho.Message, 0, len(want))
	for i, w := range want {
		m := c.next(t)
		if string(m.Payload()) != w || m.Duplicate() != dup[i] {
			t.Fatalf("message %d: got %q (DUP %v), want %q (DUP %v)", i, m.Payload(), m.Duplicate(), w, dup[i])
		}
		got = append(got, m)
	}
	return got
}

func countTo(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func flags(n int, v bool) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// storedMessages returns the number of messages in the store once its acks are committed.
func storedMessages(t *testing.T, e *env) uint64 {
	t.Helper()
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return uint64(e.store.Stats().Messages)
}

func TestInputWindow_FillsToTheWindowAndNoFurther(t *testing.T) {
	const window, n = 4, 10
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.InputWindow = window }))
	storeMessages(t, e, n)
	b := e.connect(modB, noAutoAck)
	b.subscribeInputs(t)
	ms := b.expectBodies(t, countTo(0, window), flags(window, false))
	b.expectNothing(t, "the window is full")
	// Each acknowledgement of the oldest delivery makes room for exactly one more.
	for i := window; i < n; i++ {
		ms[0].Ack()
		ms = append(ms[1:], b.expectBodies(t, countTo(i, i+1), flags(1, false))...)
		if i < n-1 {
			b.expectNothing(t, "one PUBACK frees room for one PUBLISH")
		}
	}
	for _, m := range ms {
		m.Ack()
	}
	waitFor(t, "every delivery acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == n })
	if got := storedMessages(t, e); got != 0 {
		t.Fatalf("%d messages still stored after all were acknowledged", got)
	}
}

// TestInputWindow_RefillsAQuarterWindowAtATime: with a window of 8, one PUBACK frees a slot
// but the pump waits for a second (a quarter of the window) and then writes two.
func TestInputWindow_RefillsAQuarterWindowAtATime(t *testing.T) {
	const window, n = 8, 12
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.InputWindow = window }))
	storeMessages(t, e, n)
	b := e.connect(modB, noAutoAck)
	b.subscribeInputs(t)
	ms := b.expectBodies(t, countTo(0, window), flags(window, false))
	ms[0].Ack()
	waitFor(t, "the first delivery acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == 1 })
	b.expectNothing(t, "one free slot of 8 is less than a quarter window")
	ms[1].Ack()
	ms = append(ms[2:], b.expectBodies(t, countTo(window, window+2), flags(2, false))...)
	b.expectNothing(t, "the window is full again")
	for _, m := range ms {
		m.Ack()
	}
	b.expectBodies(t, countTo(window+2, n), flags(n-window-2, false))
}

// TestInputWindow_OutOfOrderPubacksAckOnlyTheContiguousPrefix: B acknowledges 2, 3 and 0 but
// not 1. Only 0 may leave the store, and the window, counted from 1, takes only 4; after B
// reconnects it gets 1 to 4 again, in order, with DUP, then 5.
func TestInputWindow_OutOfOrderPubacksAckOnlyTheContiguousPrefix(t *testing.T) {
	const window, n = 4, 6
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.InputWindow = window }))
	storeMessages(t, e, n)
	b := e.connect(modB, noAutoAck)
	b.subscribeInputs(t)
	ms := b.expectBodies(t, countTo(0, window), flags(window, false))
	ms[2].Ack()
	ms[3].Ack()
	ms[0].Ack() // last: once the hub counts it, it has read the two before (one connection)
	waitFor(t, "the first delivery acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == 1 })
	b.expectBodies(t, countTo(window, window+1), flags(1, false))
	b.expectNothing(t, "the window counts from the oldest unacknowledged delivery")
	if got := e.hub.Stats().Sent[inputB]; got != 1 {
		t.Fatalf("Sent = %d with delivery 1 unacknowledged; want 1", got)
	}
	waitFor(t, "the store acknowledged up to 0 only", func() bool { return storedMessages(t, e) == n-1 })

	b.Disconnect(0)
	waitFor(t, "the disconnect counted", func() bool { return e.hub.Stats().DeliveryFailures == 1 })
	b2 := e.connect(modB)
	b2.subscribeInputs(t)
	b2.expectBodies(t, countTo(1, n), []bool{true, true, true, true, false})
	waitFor(t, "everything acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == n })
	b2.expectNothing(t, "0 was acknowledged, the rest once each after the reconnect")
	if got := storedMessages(t, e); got != 0 {
		t.Fatalf("%d messages still stored", got)
	}
}

// TestInputWindow_DisconnectMidWindowRedeliversInOrder: B acknowledges the first two of a
// full window, receives the two that takes, and leaves; on its return it gets everything
// from the first unacknowledged message, in order, DUP on those written before.
func TestInputWindow_DisconnectMidWindowRedeliversInOrder(t *testing.T) {
	const window, n = 4, 8
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.InputWindow = window }))
	storeMessages(t, e, n)
	b := e.connect(modB, noAutoAck)
	b.subscribeInputs(t)
	ms := b.expectBodies(t, countTo(0, window), flags(window, false))
	ms[0].Ack()
	ms[1].Ack()
	waitFor(t, "two deliveries acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == 2 })
	b.expectBodies(t, countTo(window, window+2), flags(2, false)) // the room they made
	b.Disconnect(0)
	waitFor(t, "the disconnect counted", func() bool { return e.hub.Stats().DeliveryFailures == 1 })

	b2 := e.connect(modB)
	b2.subscribeInputs(t)
	b2.expectBodies(t, countTo(2, n), []bool{true, true, true, true, false, false})
	waitFor(t, "everything acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == n })
	b2.expectNothing(t, "each message once after the reconnect")
	st := e.hub.Stats()
	if st.Delivered != n || st.DeadLettered != 0 || st.DeliveryFailures != 1 {
		t.Fatalf("Stats: delivered %d, dead-lettered %d, failures %d; want %d, 0, 1", st.Delivered, st.DeadLettered, st.DeliveryFailures, n)
	}
	if got := storedMessages(t, e); got != 0 {
		t.Fatalf("%d messages still stored", got)
	}
}

// TestInputWindow_DeadLetterInTheWindow: B acknowledges every message but "poison", which
// sits in the middle of a window. It is dead-lettered after MaxDeliveryAttempts; the
// messages after it are delivered, again only if the window was given up meanwhile.
func TestInputWindow_DeadLetterInTheWindow(t *testing.T) {
	for _, tt := range []struct {
		name     string
		attempts int
		want     []string // after the first window
		dup      []bool
	}{
		// The first timeout dead-letters it: c and d, acknowledged meanwhile, are done.
		{name: "first attempt", attempts: 1},
		// The first timeout gives up the window; poison goes alone (with DUP) until its
		// third attempt, then c and d again.
		{name: "third attempt", attempts: 3,
			want: []string{"poison", "poison", "c", "d"}, dup: []bool{true, true, true, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
				withOptions(func(o *hub.Options) {
					o.InputWindow, o.AckTimeout, o.MaxDeliveryAttempts = 4, 150*time.Millisecond, tt.attempts
				}))
			a := e.connect(modA)
			for _, body := range []string{"a", "poison", "c", "d"} {
				a.send(t, "out1", nil, body)
			}
			b := e.connect(modB, noAutoAck)
			b.subscribeInputs(t)
			first := []string{"a", "poison", "c", "d"}
			for i, m := range b.expectBodies(t, first, flags(len(first), false)) {
				if i != 1 {
					m.Ack()
				}
			}
			for i, w := range tt.want { // acknowledged as they come: the window is one now
				m := b.expectBodies(t, []string{w}, tt.dup[i:i+1])[0]
				if w != "poison" {
					m.Ack()
				}
			}
			waitFor(t, "a, c and d acknowledged", func() bool { return e.hub.Stats().Sent[inputB] == 3 })
			b.expectNothing(t, "poison is dead-lettered, the rest acknowledged")
			st := e.hub.Stats()
			if st.DeadLettered != 1 || st.DeliveryFailures != int64(tt.attempts) {
				t.Fatalf("dead-lettered %d, failures %d; want 1 and %d", st.DeadLettered, st.DeliveryFailures, tt.attempts)
			}
			if got := e.store.Stats().DeadLetters["unacknowledged"]; got != 1 {
				t.Fatalf("store dead letters = %d, want 1", got)
			}
			if got := storedMessages(t, e); got != 0 {
				t.Fatalf("%d messages still stored", got)
			}
		})
	}
}

// TestInputWindow_QoS0SubscriptionIsDeliveredOnceWritten: a module that subscribed at QoS 0
// sends no PUBACK; its deliveries are done once written, so the window never stalls.
func TestInputWindow_QoS0SubscriptionIsDeliveredOnceWritten(t *testing.T) {
	const n = 10
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAllToB}),
		withOptions(func(o *hub.Options) { o.InputWindow = 2 }))
	storeMessages(t, e, n)
	b := e.connect(modB)
	tok := b.Subscribe("devices/edge1/modules/modB/inputs/#", 0, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	for i, m := range b.expectBodies(t, countTo(0, n), flags(n, false)) {
		if m.Qos() != 0 {
			t.Fatalf("message %d at QoS %d, want 0", i, m.Qos())
		}
	}
	waitFor(t, "all counted", func() bool { return e.hub.Stats().Sent[inputB] == n })
}

func TestOptions_InputWindowIsBounded(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window int
		ok     bool
	}{
		{"default", 0, true},
		{"one", 1, true},
		{"largest", 4096, true},
		{"too large", 4097, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			srv, err := hub.New(hub.Options{IoTHubHostName: hubHost, EdgeDeviceID: edgeID, PlainAddr: "127.0.0.1:0", InputWindow: tt.window},
				hub.Deps{Store: st, Identities: noIdentities{}})
			if err == nil {
				_ = srv.Close()
			}
			if tt.ok != (err == nil) {
				t.Fatalf("New with InputWindow %d: %v", tt.window, err)
			}
			if err != nil && !errors.Is(err, hub.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}
