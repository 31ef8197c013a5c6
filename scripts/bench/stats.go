package main

import (
	"math"
	"slices"
	"time"
)

// summary is what the report shows of one measured quantity over several runs: the
// median, and the spread as the lowest and highest run.
type summary struct {
	Median, Min, Max float64
	N                int // runs that produced a value
}

// summarize returns the median, minimum and maximum of values (NaN values, from failed
// runs, are left out). The zero summary (N == 0) means no run produced a value.
func summarize(values []float64) summary {
	v := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return summary{}
	}
	slices.Sort(v)
	return summary{Median: median(v), Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// median of sorted values (the mean of the two middle ones for an even count).
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted durations by the
// nearest-rank method: the smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
