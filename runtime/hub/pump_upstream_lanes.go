package hub

import (
	"errors"
	"slices"
	"time"

	"github.com/outpost-edge/outpost/runtime/store"
)

// upLane is one upstream queue (one sender's, or the shared queue of earlier versions) as
// the $upstream pump sees it:
//
//	        the Watcher marks its queue         Read returns nothing
//	idle -----------------------------> ready ----------------------> idle
//	                                    |   ^
//	   a message failed (not rejected,  |   |  the back-off passed, or the link changed
//	   not corrupt)                     v   |
//	                             settling   waiting <-- Read failed (from ready)
//	                                    |   ^
//	                                    +---+  its other messages in flight answered: Rewind
type upLane struct {
	queue    string
	state    laneState
	pending  []store.Item // read from the store, not sent yet, in order
	inflight int          // its messages in the window
	last     Outcome      // the outcome of its newest message in flight (nil: none)
	lastID   uint64       // that message's flight id
	head     attempts     // failed sends of the message it is stuck on
	failures int          // consecutive waits, for the back-off

	offline  bool      // settling or waiting after ErrOffline
	resumeAt time.Time // waiting: when to read again
	onLink   bool      // waiting: also when the link comes back
}

type laneState uint8

const (
	laneIdle     laneState = iota // nothing to read until its queue is marked
	laneReady                     // in the turn order
	laneSettling                  // a message failed: its others in flight finish first
	laneWaiting                   // rewound, waiting to read again
)

// takeMarks makes the lanes of the queues the Watcher marked ready (new queues included),
// when its channel fired (signalled: the caller received from it already). A lane
// settling or waiting reads its queue anyway once it is ready again.
func (u *upstreamPump) takeMarks(signalled bool) {
	if !signalled && !received(u.watch.C()) {
		return
	}
	for _, q := range u.watch.Take() {
		if !isUpstreamQueue(q) {
			continue
		}
		l := u.lanes[q]
		if l == nil {
			l = &upLane{queue: q}
			u.lanes[q] = l
		}
		if l.state == laneIdle {
			u.ready(l)
		}
	}
}

// ready puts l at the end of the turn order.
func (u *upstreamPump) ready(l *upLane) {
	l.state = laneReady
	if len(u.ring) == 0 {
		u.turn, u.turnLeft = 0, upstreamTurn
	}
	u.ring = append(u.ring, l)
}

// nextTurn passes the turn to the next lane.
func (u *upstreamPump) nextTurn() {
	u.turn++
	if u.turn >= len(u.ring) {
		u.turn = 0
	}
	u.turnLeft = upstreamTurn
}

// dropFromRing takes l out of the turn order; the lane after it holds the turn if l did.
func (u *upstreamPump) dropFromRing(l *upLane) {
	i := slices.Index(u.ring, l)
	if i < 0 {
		return
	}
	u.ring = slices.Delete(u.ring, i, i+1)
	switch {
	case i < u.turn:
		u.turn--
	case i == u.turn:
		u.turnLeft = upstreamTurn
	}
	if u.turn >= len(u.ring) {
		u.turn = 0
	}
}

// fail stops l after a transient failure of one of its messages: its other messages in
// flight are sent again whatever their outcome, once they all have one (outcome).
func (u *upstreamPump) fail(l *upLane, err error, offline bool) {
	u.dropFromRing(l)
	l.state, l.offline, l.pending = laneSettling, offline, nil
	l.last = nil
	// Offline, or no upstream at all (ErrNotConnected): the wait is expected, not news.
	if !offline && !errors.Is(err, ErrNotConnected) {
		u.p.log.Info("upstream delivery failed, will retry", "queue", l.queue, "attempt", l.head.n, "err", err)
	}
}

// rewind restarts l from its first unacknowledged message, after a wait: for the link to
// come back when it is down, otherwise a back-off.
func (u *upstreamPump) rewind(l *upLane) {
	u.flushAcks() // what was delivered before the failure is not sent again
	u.p.s.deps.Store.Rewind(l.queue)
	opts := u.p.s.opts
	d := backoff(l.failures, opts.RetryMin, opts.RetryMax, u.rnd)
	if !l.offline {
		l.failures++
		u.wait(l, d, false)
		return
	}
	up, changed := u.up.LinkState()
	if up || changed == nil {
		// The link is already back (or its state is not updated yet): retry after the
		// back-off, which stays short unless this repeats.
		l.failures++
		u.wait(l, d, false)
		return
	}
	// Not counted as a failure: the wait is for the link, whose reconnection has its own
	// back-off, and a lane must not come back from an outage with a long one of its own.
	u.p.log.Debug("upstream link down; messages wait in the store", "queue", l.queue)
	// The link's own reconnection is the back-off; RetryMax is a fallback in case a change
	// is missed.
	if u.linkChanged != nil && received(u.linkChanged) {
		u.linkBack() // the lanes already waiting missed a change
	}
	u.linkChanged = changed
	u.wait(l, opts.RetryMax, true)
}

// wait parks l for d, or until the link changes when onLink is set.
func (u *upstreamPump) wait(l *upLane, d time.Duration, onLink bool) {
	l.state, l.resumeAt, l.onLink = laneWaiting, time.Now().Add(d), onLink
	if onLink {
		u.onLink++
	}
	u.waiting = append(u.waiting, l)
}

// linkBack resumes the lanes waiting for the link: it changed (if it went down again,
// their next messages fail at once and they wait again).
func (u *upstreamPump) linkBack() {
	now := time.Now()
	for _, l := range u.waiting {
		if l.onLink {
			l.resumeAt = now
		}
	}
	u.linkChanged = nil
}

// received receives from c if it can (a value, or c is closed).
func received(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// resume makes the waiting lanes whose time has come ready again.
func (u *upstreamPump) resume() {
	if len(u.waiting) == 0 {
		return
	}
	now := time.Now()
	u.waiting = slices.DeleteFunc(u.waiting, func(l *upLane) bool {
		if l.resumeAt.After(now) {
			return false
		}
		if l.onLink {
			l.onLink = false
			u.onLink--
		}
		l.offline = false
		u.ready(l)
		return true
	})
}

// nextResume returns the earliest time a waiting lane reads again.
func (u *upstreamPump) nextResume() (time.Time, bool) {
	var at time.Time
	for _, l := range u.waiting {
		if at.IsZero() || l.resumeAt.Before(at) {
			at = l.resumeAt
		}
	}
	return at, !at.IsZero()
}
