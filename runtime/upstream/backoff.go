package upstream

import "time"

// backoff returns how long to wait before connection attempt number attempt (0 for the first
// retry after a failure or a loss), within lo..hi: a duration in [ceiling/2, ceiling] with
// ceiling = lo·2^attempt capped at hi, never below lo/2. u, uniform in [0, 1) (rand.Float64),
// picks the point: 0 the low end, towards 1 the high end.
//
// With 1 s..30 s the waits fall in [0.5 s, 1 s], [1 s, 2 s], [2 s, 4 s], ... and then stay in
// [15 s, 30 s]: a lost link is retried within a second, a hub that keeps refusing costs one
// attempt every 15 to 30 s, and the jitter keeps a fleet of edge devices that lost the same
// hub from reconnecting in lockstep (peers-and-targets.md, "reconnect storms"). While the hub
// cannot be reached at all, Run caps hi at Options.UnreachableMax instead (3 s: one attempt
// every 1.5 to 3 s, a few packets each), so that the link returns within seconds of the
// network. It is a pure function: randomness comes in as u, so the maths is tested exactly.
func backoff(attempt int, lo, hi time.Duration, u float64) time.Duration {
	if lo <= 0 {
		lo = time.Millisecond
	}
	hi = max(hi, lo)
	ceiling := lo
	for i := 0; i < attempt && ceiling < hi; i++ {
		ceiling *= 2 // cannot overflow: the loop stops once ceiling reaches hi
	}
	ceiling = min(ceiling, hi)
	floor := ceiling / 2
	if !(u >= 0) { // negative or NaN
		u = 0
	}
	u = min(u, 1)
	return floor + time.Duration(u*float64(ceiling-floor))
}
