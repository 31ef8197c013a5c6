package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// thousands formats v rounded to an integer with comma separators: 12,345.
func thousands(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate formats a summary of msg/s values: "12,345 (11,900-12,800)", or "failed" when no
// run produced a value. The spread is left out for a single run.
func rate(s summary) string {
	if s.N == 0 {
		return "failed"
	}
	if s.N == 1 {
		return thousands(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", thousands(s.Median), thousands(s.Min), thousands(s.Max))
}

// millis formats a summary of durations in nanoseconds as milliseconds.
func millis(s summary) string {
	if s.N == 0 {
		return "failed"
	}
	if s.N == 1 {
		return ms(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", ms(s.Median), ms(s.Min), ms(s.Max))
}

func ms(ns float64) string {
	d := ns / float64(time.Millisecond)
	switch {
	case d < 10:
		return strconv.FormatFloat(d, 'f', 2, 64)
	case d < 100:
		return strconv.FormatFloat(d, 'f', 1, 64)
	}
	return thousands(d)
}

// mebibytes formats a summary of byte counts in MiB.
func mebibytes(s summary) string {
	if s.N == 0 {
		return "failed"
	}
	f := func(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) }
	if s.N == 1 {
		return f(s.Median) + " MiB"
	}
	return fmt.Sprintf("%s MiB (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

// ratio formats a/b as "0.42x", or "n/a".
func ratio(a, b summary) string {
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(a.Median/b.Median, 'f', 2, 64) + "x"
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "**missed**"
}

// sizeLabel names a payload size: "256 B", "1 KB".
func sizeLabel(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + " KB"
	}
	return strconv.Itoa(n) + " B"
}
