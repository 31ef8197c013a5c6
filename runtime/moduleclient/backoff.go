package moduleclient

import "time"

// backoff returns how long to wait before reconnection attempt number attempt (0 for the first
// retry after a failure) with bounds lo..hi: a duration in [ceiling/2, ceiling], where
// ceiling = lo·2^(attempt+1) capped at hi, and never below lo. u, a uniform random number in
// [0, 1) (rand.Float64), picks the point in that range: 0 gives the low end, values towards 1
// the high end.
//
// So with 1 s..60 s the waits fall in [1 s, 2 s], [2 s, 4 s], [4 s, 8 s], ... and then stay
// in [30 s, 60 s]. The jitter keeps a fleet of modules that lost their hub at the same moment
// from reconnecting in lockstep; the floor of half the ceiling keeps the back-off growing.
//
// It is a pure function: the randomness comes in as u, so the maths is tested exactly.
func backoff(attempt int, lo, hi time.Duration, u float64) time.Duration {
	if lo <= 0 {
		lo = time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	ceiling := lo
	for i := 0; i <= attempt && ceiling < hi; i++ {
		ceiling *= 2 // cannot overflow: the loop stops once ceiling reaches hi
	}
	ceiling = min(ceiling, hi)
	floor := max(ceiling/2, lo)
	if !(u >= 0) { // negative or NaN
		u = 0
	}
	u = min(u, 1)
	return floor + time.Duration(u*float64(ceiling-floor))
}
