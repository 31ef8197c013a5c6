package hub

import (
	"math/rand/v2"
	"time"
)

// backoff returns how long a pump waits before its attempt number n (0 for the first
// retry): min(lo·2^n, hi), scaled by a random factor in [0.8, 1.2) and capped at hi. It
// follows edgeHub's store-and-forward retry (exponential from 1 s to 60 s, with jitter so
// that pumps that failed together do not retry together).
func backoff(n int, lo, hi time.Duration, rnd *rand.Rand) time.Duration {
	d := hi
	if n < 62 {
		if x := lo << n; x > 0 && x < hi {
			d = x
		}
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rnd.Float64()))
	return min(d, hi)
}
