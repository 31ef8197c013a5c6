package hub

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// patched answers a reported patch that is already stored. When the link is up and the
// identity's last flush is at least Options.ReportedSyncInterval old, the queued patches
// go to IoT Hub first and the answer carries IoT Hub's new reported version
// (&$version=n); otherwise the answer carries none (as edgeHub's never does) and the
// flusher sends the patch, composed with the ones that follow, when it is due.
func (t *twinSync) patched(ctx context.Context, id sas.Identity, rid string) {
	var version int64
	if t.cloud != nil && t.cloud.Connected() && t.due(id, time.Now()) {
		v, complete, err := t.flush(ctx, id)
		if err == nil && complete {
			version = v
		}
	}
	t.respond(id, iothub.StatusNoContent, rid, version, nil)
	if version == 0 {
		t.wakeFlusher()
	}
}

// due reports whether id may be flushed at now (real time): its last flush is at least
// Options.ReportedSyncInterval old.
func (t *twinSync) due(id sas.Identity, now time.Time) bool {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	last, ok := t.lastFlush[id]
	return !ok || now.Sub(last) >= t.s.opts.ReportedSyncInterval
}

func (t *twinSync) wakeFlusher() {
	select {
	case t.flushWake <- struct{}{}:
	default:
	}
}

func (t *twinSync) flushLock(id sas.Identity) func() {
	h := fnv.New32a()
	h.Write([]byte(id.String()))
	l := &t.flushLocks[h.Sum32()%flushStripes]
	l.Lock()
	return l.Unlock
}

// flush sends id's pending reported patches to IoT Hub, oldest first, and removes each one
// IoT Hub accepted. It returns the reported version of the last answer and whether every
// patch it read was accepted; it stops at the first transient failure (the link is down,
// IoT Hub throttles or does not answer), which it returns. A patch IoT Hub refuses for good
// (400: over a limit once merged with the twin in the cloud) is dropped with a warning, and
// all of an identity's patches are when IoT Hub says the identity is gone (403, 404):
// retrying could never succeed and would block the patches behind them.
func (t *twinSync) flush(ctx context.Context, id sas.Identity) (int64, bool, error) {
	defer t.flushLock(id)()
	t.flushMu.Lock()
	t.lastFlush[id] = time.Now()
	t.flushMu.Unlock()
	ps, err := t.cache.PendingReported(id)
	if err != nil {
		return 0, false, err
	}
	var version int64
	for _, p := range ps {
		rctx, cancel := withTimeout(ctx, t.s.opts.TwinTimeout)
		v, err := t.cloud.UpdateReported(rctx, id, encodePatch(p.Patch))
		cancel()
		var se *upstream.StatusError
		switch {
		case err == nil:
		case errors.Is(err, upstream.ErrNotFound) || errors.Is(err, upstream.ErrOutOfScope):
			t.log.Warn("IoT Hub does not know the identity; its pending reported patches are dropped", "identity", id, "patches", len(ps), "err", err)
			if err := t.cache.DropAllReported(id); err != nil {
				t.log.Warn("dropping reported patches failed", "identity", id, "err", err)
			}
			return 0, false, nil
		case errors.As(err, &se) && !se.Retryable():
			t.log.Warn("IoT Hub refused a reported patch; dropped", "identity", id, "err", err)
			if err := t.cache.DropReported(id, p.Seq); err != nil {
				t.log.Warn("dropping a reported patch failed", "identity", id, "err", err)
			}
			continue
		default:
			return 0, false, err
		}
		version = v
		if _, err := t.cache.AckReported(id, p.Seq, p.Rev); err != nil {
			t.log.Warn("removing a delivered reported patch failed; it will be sent again", "identity", id, "err", err)
		}
	}
	return version, len(ps) > 0, nil
}

// runFlusher sends pending reported patches while the link is up, each identity at most
// every Options.ReportedSyncInterval, until ctx ends. It wakes when a patch is stored,
// when the link comes back, and when the next identity is due; after a transient failure
// it backs off (Options.RetryMin doubling to RetryMax). Patches stored by an earlier run
// are found in the cache at start.
func (t *twinSync) runFlusher(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.flushWake:
		case <-timer.C:
		}
		if t.cloud == nil || !t.cloud.Connected() {
			continue // linkUp wakes us
		}
		ids, err := t.cache.PendingIdentities()
		if err != nil {
			t.log.Warn("listing pending reported patches failed", "err", err)
		}
		var next time.Duration
		failed := err != nil
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			if !t.due(id, now) {
				t.flushMu.Lock()
				wait := t.lastFlush[id].Add(t.s.opts.ReportedSyncInterval).Sub(now)
				t.flushMu.Unlock()
				if next == 0 || wait < next {
					next = wait
				}
				continue
			}
			if _, _, err := t.flush(ctx, id); err != nil {
				if ctx.Err() == nil {
					t.log.Info("reported patches not flushed, will retry", "identity", id, "err", err)
				}
				failed = true
				break
			}
		}
		if failed {
			next = backoff(failures, t.s.opts.RetryMin, t.s.opts.RetryMax, rnd)
			failures++
		} else {
			failures = 0
		}
		if next > 0 {
			resetTimer(timer, next)
		}
	}
}

// resetTimer re-arms a timer that may have fired without being drained.
func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}
