package upstream_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// waitSending waits for one outcome, failing the test after 10 s.
func waitSending(t *testing.T, s *upstream.Sending) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome within 10 s")
		return nil
	}
}

func TestSendAsync_ManyInFlightArriveInCallOrder(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	const n = 2000
	senders := []sas.Identity{leaf1, m1}
	var inflight []*upstream.Sending
	for i := range n {
		id := senders[i%len(senders)]
		inflight = append(inflight, c.SendAsync(ctx, id, iothub.Message{Body: []byte(strconv.Itoa(i))}))
	}
	for i, sg := range inflight {
		if err := waitSending(t, sg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	evs := s.Events(0, 0)
	if len(evs) != n {
		t.Fatalf("%d events captured, want %d", len(evs), n)
	}
	next := map[string]int{"leaf1": 0, "edge1/m1": 1}
	for _, ev := range evs {
		who := iothub.ClientID(ev.DeviceID, ev.ModuleID)
		got, _ := strconv.Atoi(string(ev.Body))
		if got != next[who] {
			t.Fatalf("%s: message %d arrived where %d was due: out of order", who, got, next[who])
		}
		next[who] += len(senders)
	}
}

func TestSendAsync_RejectsLikeSend(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	cases := []struct {
		name string
		id   sas.Identity
		m    iothub.Message
		want error
	}{
		{"device outside the scope", other, iothub.Message{}, upstream.ErrOutOfScope},
		{"unknown device", ghost, iothub.Message{}, upstream.ErrNotFound},
		{"too large", leaf1, iothub.Message{Body: make([]byte, iothub.MaxMessageSize+1)}, upstream.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := waitSending(t, c.SendAsync(ctx, tc.id, tc.m))
			if !errors.Is(err, tc.want) || !errors.Is(err, upstream.ErrRejected) {
				t.Fatalf("SendAsync: %v, want %v and ErrRejected", err, tc.want)
			}
		})
	}
	if n := len(s.Events(0, 0)); n != 0 {
		t.Fatalf("%d events captured, want none", n)
	}
}

func TestSendAsync_LinkLossFailsWhatIsInFlightWithErrOffline(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	// The identity check of leaf1's first message is done before the window opens.
	if err := waitSending(t, c.SendAsync(ctx, leaf1, iothub.Message{Body: []byte("first")})); err != nil {
		t.Fatal(err)
	}
	// Each PUBLISH now waits 10 ms in the hub, so most of the window is still in flight
	// when the network goes.
	s.SetDelay(10 * time.Millisecond)
	t.Cleanup(func() { s.SetDelay(0) })
	var inflight []*upstream.Sending
	for i := range 200 {
		inflight = append(inflight, c.SendAsync(ctx, leaf1, iothub.Message{Body: []byte(fmt.Sprint(i))}))
	}
	waitFor(t, "a few acknowledgements", func() bool { return len(s.Events(0, 0)) > 3 })
	s.CutNetwork()
	t.Cleanup(s.RestoreNetwork)
	acked := 0
	for i, sg := range inflight {
		err := waitSending(t, sg)
		switch {
		case err == nil:
			acked++
		case !errors.Is(err, upstream.ErrOffline):
			t.Fatalf("message %d: %v, want nil or ErrOffline", i, err)
		}
	}
	if acked == len(inflight) {
		t.Fatal("every message was acknowledged before the cut; the test proves nothing")
	}
	// Every message acknowledged was captured (the capture precedes the PUBACK).
	if got := len(s.Events(0, 0)) - 1; got < acked {
		t.Fatalf("%d messages acknowledged but only %d captured", acked, got)
	}
	waitFor(t, "the link to be noticed down", func() bool { return !c.Connected() })
	if err := waitSending(t, c.SendAsync(ctx, leaf1, iothub.Message{})); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("SendAsync while offline: %v, want ErrOffline", err)
	}
}

// A link whose writes block (the route congested or dying, paho's writer stuck) must not
// hold the caller: SendAsync only queues, and once the link is given up every message in
// flight fails at once. Before the connection had its own writer, SendAsync waited inside
// paho's Publish for the whole WriteTimeout (the keep-alive) on every call, and the hub's
// $upstream pump with it.
func TestSendAsync_ReturnsAtOnceWhileTheLinkCannotWrite(t *testing.T) {
	s := world(t)
	p := newProxy(t, s.MQTTAddress())
	opts := options(t, s) // KeepAlive 1 s, so paho's WriteTimeout is 1 s
	opts.Port = p.port()
	c := start(t, opts, nil)
	ctx := ctxFor(t)
	if err := waitSending(t, c.SendAsync(ctx, leaf1, iothub.Message{Body: []byte("first")})); err != nil {
		t.Fatal(err)
	}
	p.stall(true)
	t.Cleanup(func() { p.stall(false) })
	body := make([]byte, 64<<10)
	const n = 400 // 25 MB, far more than the sockets on the way buffer
	var inflight []*upstream.Sending
	var slowest time.Duration
	for range n {
		began := time.Now()
		inflight = append(inflight, c.SendAsync(ctx, leaf1, iothub.Message{Body: body}))
		slowest = max(slowest, time.Since(began))
	}
	t.Logf("slowest SendAsync call while the link could not write: %s", slowest)
	if slowest > 300*time.Millisecond {
		t.Errorf("a SendAsync call took %s while the link could not write; want it to return at once", slowest)
	}
	offline := 0
	for i, sg := range inflight {
		switch err := waitSending(t, sg); {
		case errors.Is(err, upstream.ErrOffline):
			offline++
		case err != nil:
			t.Fatalf("message %d: %v, want nil or ErrOffline", i, err)
		}
	}
	if offline == 0 {
		t.Fatal("every message was acknowledged: the stall did not hold, the test proves nothing")
	}
	t.Logf("%d of %d messages failed with ErrOffline", offline, n)
	p.stall(false)
	waitFor(t, "the link to come back", func() bool {
		return waitSending(t, c.SendAsync(ctx, leaf1, iothub.Message{Body: []byte("back")})) == nil
	})
}
