package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

// crashRounds is how many times each crash test kills the hub.
const crashRounds = 5

// newRand returns a random source seeded from the clock, logging the seed so that a
// failing schedule can be replayed.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// TestCrash_HubKillDuringIngest kills the edgehub process with SIGKILL at random moments
// while modules and a leaf device publish QoS 1 telemetry routed to $upstream, restarts it
// on the same data directory each time, and then checks that every message the hub
// acknowledged reached IoT Hub, per sender in order, duplicates (re-deliveries) aside.
// With the network cut the messages pile up in the store and drain at the end; with it up
// they are forwarded while the hub is being killed.
func TestCrash_HubKillDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts edgehub processes and kills them")
	}
	for _, tc := range []struct {
		name string
		cut  bool
	}{
		{"network cut", true},
		{"network up", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := newRand(t)
			dir := t.TempDir()
			c := newCloud(t, dir, 2, 1)
			h := newHubRunner(t, filepath.Join(dir, "data"), c.hubArgs...)
			h.start()
			f := startFleet(t, c.senders, 100, h.currentAddr)
			// First connections are authenticated by IoT Hub: they need the network.
			waitUntil(t, 20*time.Second, "every sender accepted and acknowledged once", func() bool { return f.eachAckedAtLeast(nil, 1) })
			if tc.cut {
				c.s.CutNetwork()
			}
			for round := range crashRounds {
				base := f.ackedCounts()
				waitUntil(t, 20*time.Second, fmt.Sprintf("acknowledgements from hub run %d", round+1),
					func() bool { return f.eachAckedAtLeast(base, 20) })
				// Not synchronisation: the kill lands at a random point of the publishing.
				time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
				h.kill()
				h.start()
			}
			base := f.ackedCounts()
			waitUntil(t, 20*time.Second, "acknowledgements after the last restart", func() bool { return f.eachAckedAtLeast(base, 20) })
			f.stop()
			if tc.cut {
				if got := countFrom(c.s, f); got >= f.totalAcked() {
					t.Fatalf("IoT Hub already has %d messages with the network cut, for %d acknowledged: the cut did not hold", got, f.totalAcked())
				}
				c.s.RestoreNetwork()
			}
			f.waitDelivered(c.s, 30*time.Second).report(t, f)
		})
	}
}

// TestCrash_HubKillDuringDrain builds a backlog with the network cut, restores it with
// IoT Hub slowed down so that the drain takes seconds, and kills the hub with SIGKILL
// while the backlog drains, restarting it each time: nothing acknowledged is missing in
// the end, and every kill landed mid-drain.
func TestCrash_HubKillDuringDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts edgehub processes and kills them")
	}
	const backlog = 2000
	rng := newRand(t)
	dir := t.TempDir()
	c := newCloud(t, dir, 2, 1)
	h := newHubRunner(t, filepath.Join(dir, "data"), c.hubArgs...)
	h.start()
	f := startFleet(t, c.senders, 100, h.currentAddr)
	waitUntil(t, 20*time.Second, "every sender accepted and acknowledged once", func() bool { return f.eachAckedAtLeast(nil, 1) })
	f.cutQuietly(t, c.s, h)
	waitUntil(t, 30*time.Second, fmt.Sprintf("a backlog of %d acknowledged messages", backlog), func() bool { return f.totalAcked() >= backlog })
	f.stop()
	t.Logf("backlog: %d acknowledged messages", f.totalAcked())

	// 2 ms per message on the cloud's side: about 500 msg/s, so the drain lasts seconds.
	c.s.SetDelay(2 * time.Millisecond)
	c.s.RestoreNetwork()
	events := &eventCounter{s: c.s}
	midDrain := 0
	for round := range crashRounds {
		start := events.count()
		waitUntil(t, 20*time.Second, fmt.Sprintf("the drain to progress in hub run %d", round+1),
			func() bool { return events.count() >= start+150 })
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // a random point of the drain
		if f.check(c.s).missingCount() > 0 {
			midDrain++
		}
		h.kill()
		h.start()
	}
	c.s.SetDelay(0)
	d := f.waitDelivered(c.s, 30*time.Second)
	d.report(t, f)
	t.Logf("%d of %d kills landed while acknowledged messages were still undelivered", midDrain, crashRounds)
	if midDrain < crashRounds {
		t.Errorf("only %d of %d kills happened during the drain: the backlog drained too fast for this test", midDrain, crashRounds)
	}
}

// eventCounter counts the cloud's events without copying them all on every poll.
type eventCounter struct {
	s    *fakehub.Server
	last int64
	n    int
}

func (e *eventCounter) count() int {
	for {
		evs := e.s.Events(e.last, 1000)
		if len(evs) == 0 {
			return e.n
		}
		e.n += len(evs)
		e.last = evs[len(evs)-1].Seq
	}
}

// countFrom is how many events the cloud holds from the fleet's senders.
func countFrom(s *fakehub.Server, f *fleet) int {
	return f.check(s).delivered
}

// TestCrash_LinkDropUnderLoad drops the link to IoT Hub (the cloud cuts every connection)
// while senders publish, stops them, restores the network a moment later, and expects
// everything acknowledged to reach IoT Hub, in order per sender, within 5 s of the link being
// back; six times.
//
// It guards against a stall that is fixed: a cut that landed while the upstream pump handed a
// message to the link blocked the pump inside paho's Publish for the link's write timeout
// (the keep-alive, 10 s; it was 30 s), because paho's Publish waits that long for a writer
// that died with the connection. Nothing drained for that long after the link was back, and
// with a byte cap the delivered but unacknowledged window kept the store full. The link's
// sends now go through a writer of its own (runtime/upstream writer.go) and fail at once when
// the connection is lost, so the pump rewinds its lanes and resumes as soon as the link returns.
func TestCrash_LinkDropUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an edgehub process and cuts its link repeatedly")
	}
	rng := newRand(t)
	dir := t.TempDir()
	c := newCloud(t, dir, 2, 1)
	h := newHubRunner(t, filepath.Join(dir, "data"), c.hubArgs...)
	h.start()
	f := startFleet(t, c.senders, 4096, h.currentAddr) // large writes: the link sees the cut as a failed write
	waitUntil(t, 20*time.Second, "every sender accepted and acknowledged once", func() bool { return f.eachAckedAtLeast(nil, 1) })
	var slowest time.Duration
	for round := 1; round <= 6; round++ {
		base := f.ackedCounts()
		waitUntil(t, 20*time.Second, "live publishes acknowledged", func() bool { return f.eachAckedAtLeast(base, 20) })
		c.s.CutNetwork()
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond) // the outage, while publishing goes on
		f.stop()
		c.s.RestoreNetwork()
		// The link comes back after its reconnection back-off (at most 3 s while IoT Hub is
		// unreachable).
		waitUntil(t, 30*time.Second, "the hub's link to reconnect", func() bool { return linkUp(c.s) })
		up := time.Now()
		d := f.waitDelivered(c.s, 5*time.Second)
		took := time.Since(up)
		if missing := d.missingCount(); missing > 0 {
			d = f.waitDelivered(c.s, 50*time.Second) // how long the stall lasts
			t.Errorf("round %d: %d acknowledged messages were not in IoT Hub 5 s after the link was back up; all were after %v",
				round, missing, time.Since(up).Round(100*time.Millisecond))
			d.report(t, f)
			return
		}
		slowest = max(slowest, took)
		t.Logf("round %d: everything acknowledged was in IoT Hub %v after the link was back", round, took.Round(10*time.Millisecond))
		d.report(t, f) // in order per sender, nothing lost
		if t.Failed() {
			return
		}
		f.resume()
	}
	f.stop()
	f.waitDelivered(c.s, 10*time.Second).report(t, f)
	t.Logf("slowest catch-up after the link returned: %v (limit 5 s)", slowest.Round(10*time.Millisecond))
}

// linkUp reports whether the edge hub's link ({edge}/$edgeHub) is connected to IoT Hub.
func linkUp(s *fakehub.Server) bool {
	for _, c := range s.Connections() {
		if c.ClientID == "edge1/$edgeHub" {
			return true
		}
	}
	return false
}
