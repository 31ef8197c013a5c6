package perclient_test

import (
	"slices"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

// A leaf whose token expires while it is away (and the network is cut): its stored
// messages wait, the others' drain, and the leaf's drain once it connects again with a
// fresh token. Another sender's live messages are not held back meanwhile (the hub's
// per-sender $upstream queues).
func TestPerClient_ExpiredTokenWaitsForClient(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	e := startEdge(t, s, clk)
	waitFor(t, 10*time.Second, "the edge hub's own connection", e.link.Connected)
	mc := e.connect(m1) // day-long tokens
	lc := e.newClient(leaf1, e.clientOptions(time.Hour))
	if err := lc.Connect(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	send(t, mc, 0)
	send(t, lc, 0)
	waitFor(t, 10*time.Second, "the first messages", func() bool {
		return arrived(s, "edge1/m1", seqs(0, 1)) && arrived(s, "leaf1", seqs(0, 1))
	})

	s.CutNetwork()
	waitFor(t, 5*time.Second, "the losses noticed", func() bool {
		st := e.link.Sessions()
		return st["edge1/m1"] == "down" && st["leaf1"] == "down"
	})
	for i := 1; i < 6; i++ {
		send(t, lc, i)
	}
	for i := 1; i < 6; i++ {
		send(t, mc, i)
	}
	lc.Close() // the leaf goes away with the only token the edge hub has for it
	clk.advance(2 * time.Hour)
	s.RestoreNetwork()

	waitFor(t, 10*time.Second, "leaf1's session expired", func() bool { return e.link.Sessions()["leaf1"] == "expired" })
	waitFor(t, 10*time.Second, "m1's backlog in the cloud", func() bool { return arrived(s, "edge1/m1", seqs(0, 6)) })
	send(t, mc, 6) // live, after the restore
	waitFor(t, 10*time.Second, "m1's live message, not held back by leaf1", func() bool { return arrived(s, "edge1/m1", seqs(0, 7)) })
	if got := received(s)["leaf1"]; !slices.Equal(got, []int{0}) {
		t.Fatalf("leaf1's messages in the cloud while its token was expired: %v, want [0]", got)
	}
	if _, ok := connectionsByClient(s)["leaf1"]; ok {
		t.Fatal("the cloud shows a connection of leaf1 while its token was expired")
	}

	// The leaf comes back with a fresh token: its connection reopens with it and its
	// backlog drains, in order.
	lc = e.newClient(leaf1, e.clientOptions(time.Hour))
	if err := lc.Connect(ctxFor(t)); err != nil {
		t.Fatalf("leaf1 with a fresh token refused: %v", err)
	}
	waitFor(t, 10*time.Second, "leaf1's backlog in the cloud", func() bool { return arrived(s, "leaf1", seqs(0, 6)) })
	checkInOrder(t, s, "leaf1")
	checkInOrder(t, s, "edge1/m1")
	if st := e.link.Sessions()["leaf1"]; st != "up" {
		t.Fatalf("leaf1's session is %q, want up", st)
	}
}

// When a session's token reaches RenewFraction of its lifetime, the hub disconnects the
// client, which reconnects with a fresh token: the identity's connection to IoT Hub is
// renewed with it, and traffic goes on.
func TestPerClient_TokenRenewedThroughTheClient(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	e := startEdge(t, s, clk)
	waitFor(t, 10*time.Second, "the edge hub's own connection", e.link.Connected)
	lost := make(chan error, 16)
	lc := e.newClient(leaf1, e.clientOptions(time.Hour))
	lc.OnConnectionChange(func(up bool, err error) {
		if !up {
			lost <- err
		}
	})
	if err := lc.Connect(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	mc := e.connect(m1)
	send(t, lc, 0)
	waitFor(t, 10*time.Second, "the first message", func() bool { return arrived(s, "leaf1", seqs(0, 1)) })
	before := cloudConnection(t, s, "leaf1")
	m1Before := cloudConnection(t, s, "edge1/m1")

	clk.advance(50 * time.Minute) // past 80 % of leaf1's hour, within it: its token is still good
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not ask leaf1 for a fresh token")
	}
	waitFor(t, 10*time.Second, "leaf1's connection to the cloud renewed", func() bool {
		c, ok := findConnection(s, "leaf1")
		return ok && c != before
	})
	send(t, lc, 1)
	waitFor(t, 10*time.Second, "a message after the renewal", func() bool { return arrived(s, "leaf1", seqs(0, 2)) })
	if cloudConnection(t, s, "edge1/m1") != m1Before {
		t.Fatal("m1's connection changed although its token was far from expiry")
	}
	send(t, mc, 0)
	waitFor(t, 10*time.Second, "m1's message", func() bool { return arrived(s, "edge1/m1", seqs(0, 1)) })
}

// The connection of a client that left is closed after IdleTimeout (that of a client that
// stays is not), and reopened when the client comes back.
func TestPerClient_IdleConnectionClosedAndReopened(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	e := startEdge(t, s, clk, withIdleTimeout(time.Second))
	waitFor(t, 10*time.Second, "the edge hub's own connection", e.link.Connected)
	e.connect(m1) // stays, sends nothing
	lc := e.connect(leaf1)
	send(t, lc, 0)
	waitFor(t, 10*time.Second, "the first message", func() bool { return arrived(s, "leaf1", seqs(0, 1)) })
	lc.Close()
	waitFor(t, 10*time.Second, "leaf1's idle connection closed", func() bool {
		_, ok := findConnection(s, "leaf1")
		return !ok && e.link.Sessions()["leaf1"] == "idle"
	})
	if _, ok := findConnection(s, "edge1/m1"); !ok {
		t.Fatal("m1's connection was closed although its client is connected")
	}
	lc = e.connect(leaf1)
	waitFor(t, 10*time.Second, "leaf1's connection reopened", func() bool {
		_, ok := findConnection(s, "leaf1")
		return ok
	})
	send(t, lc, 1)
	waitFor(t, 10*time.Second, "a message after the reopening", func() bool { return arrived(s, "leaf1", seqs(0, 2)) })
}

// cloudConnection returns the id of who's connection to the cloud, failing the test when
// there is none.
func cloudConnection(t *testing.T, s *fakehub.Server, who string) string {
	t.Helper()
	c, ok := findConnection(s, who)
	if !ok {
		t.Fatalf("no connection of %s in the cloud", who)
	}
	return c
}

// findConnection returns the id of who's connection to the cloud.
func findConnection(s *fakehub.Server, who string) (string, bool) {
	for _, c := range s.Connections() {
		if c.ClientID == who {
			return c.ID, true
		}
	}
	return "", false
}
