package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name    string
		attempt int
		lo, hi  time.Duration
		u       float64
		want    time.Duration
	}{
		{"first retry, low end", 0, s, 30 * s, 0, s / 2},
		{"first retry, high end", 0, s, 30 * s, 1, s},
		{"first retry, middle", 0, s, 30 * s, 0.5, 750 * time.Millisecond},
		{"second retry", 1, s, 30 * s, 0, s},
		{"third retry", 2, s, 30 * s, 1, 4 * s},
		{"capped", 5, s, 30 * s, 0, 15 * s},
		{"capped, high end", 5, s, 30 * s, 1, 30 * s},
		{"far past the cap", 1000, s, 30 * s, 1, 30 * s},
		{"negative random clamps to the low end", 1, s, 30 * s, -3, s},
		{"NaN clamps to the low end", 1, s, 30 * s, math.NaN(), s},
		{"random above one clamps to the high end", 1, s, 30 * s, 7, 2 * s},
		{"max below min", 3, 2 * s, s, 1, 2 * s},
		{"zero min", 0, 0, s, 1, time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := backoff(c.attempt, c.lo, c.hi, c.u); got != c.want {
				t.Fatalf("backoff(%d, %s, %s, %v) = %s, want %s", c.attempt, c.lo, c.hi, c.u, got, c.want)
			}
		})
	}
}

func TestBackoff_GrowsAndStaysWithinBounds(t *testing.T) {
	lo, hi := 20*time.Millisecond, 200*time.Millisecond
	prevCeiling := time.Duration(0)
	for attempt := range 20 {
		low, high := backoff(attempt, lo, hi, 0), backoff(attempt, lo, hi, 1)
		if low < lo/2 || high > hi || low > high {
			t.Fatalf("attempt %d: [%s, %s] outside [%s, %s]", attempt, low, high, lo/2, hi)
		}
		if high < prevCeiling {
			t.Fatalf("attempt %d: ceiling %s shrank from %s", attempt, high, prevCeiling)
		}
		prevCeiling = high
	}
}

func TestRetryCap_RefusalsBackOffLongerThanAnUnreachableHub(t *testing.T) {
	c := &Client{opts: Options{ReconnectMax: 30 * time.Second, UnreachableMax: 3 * time.Second}}
	cases := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"CONNACK refused", connectError("ssl://h:8883", 0x05, errors.New("not authorized")), 30 * time.Second},
		{"throttled", connectError("ssl://h:8883", 0x03, errors.New("server unavailable")), 30 * time.Second},
		{"subscription refused", fmt.Errorf("subscribe $edgehub/#: %w: refused", ErrProtocol), 30 * time.Second},
		{"token not signed", fmt.Errorf("%w for %q: bad key", errSign, "edge1/$edgeHub"), 30 * time.Second},
		{"connection refused by the host", connectError("ssl://h:8883", 0, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), 3 * time.Second},
		{"closed before CONNACK", connectError("ssl://h:8883", 0, io.EOF), 3 * time.Second},
		{"no SUBACK in time", fmt.Errorf("subscribe: no SUBACK within 30s: %w", ErrTimeout), 3 * time.Second},
		{"dial cancelled", context.DeadlineExceeded, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.retryCap(tc.err); got != tc.want {
				t.Fatalf("retryCap(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

func TestOptions_UnreachableMaxWithinTheBackOffBounds(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name              string
		min, max, unreach time.Duration
		want              time.Duration
	}{
		{"defaults", 0, 0, 0, DefaultUnreachableMax},
		{"above ReconnectMax", s, 5 * s, 10 * s, 5 * s},
		{"default above a small ReconnectMax", 20 * time.Millisecond, 200 * time.Millisecond, 0, 200 * time.Millisecond},
		{"below ReconnectMin", 2 * s, 30 * s, s, 2 * s},
		{"as given", s, 30 * s, 4 * s, 4 * s},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ReconnectMin: tc.min, ReconnectMax: tc.max, UnreachableMax: tc.unreach}.withDefaults()
			if o.UnreachableMax != tc.want {
				t.Fatalf("UnreachableMax = %s, want %s", o.UnreachableMax, tc.want)
			}
		})
	}
}
