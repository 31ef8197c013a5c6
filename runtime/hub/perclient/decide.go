package perclient

import (
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The package's decisions, as pure functions of their inputs (clock included), each with
// a table of tests.

// renewDue returns when a session should ask its client for a fresh token: after
// RenewFraction of the lifetime the token had left when it was vouched for. A token the
// client presented again (it has nothing newer: a ready-made SAS token) is never renewed
// early, or the hub would disconnect the client ever more often as the expiry nears.
func renewDue(vouched, expiry time.Time, again bool) time.Time {
	if again || !expiry.After(vouched) {
		return expiry
	}
	return vouched.Add(time.Duration(float64(expiry.Sub(vouched)) * RenewFraction))
}

// outcome of a connection attempt.
type attemptKind int

const (
	attemptOK      attemptKind = iota
	attemptOffline             // network, TLS, timeout, CONNACK 0x03 (server unavailable, throttled): retry
	attemptRefused             // CONNACK 0x04 or 0x05: the credentials are no good
)

// classify says what a CONNACK return code (with the attempt's error) means for a
// session: only a refusal of the credentials stops it; everything else is retried with
// back-off, as the SDKs do.
func classify(rc byte, err error) attemptKind {
	switch {
	case err == nil:
		return attemptOK
	case rc == packets.ErrRefusedBadUsernameOrPassword, rc == packets.ErrRefusedNotAuthorised:
		return attemptRefused
	}
	return attemptOffline
}

// idle reports whether a session's connection may be closed: no local client is attached
// and nothing used it for timeout.
func idle(attached bool, lastUsed, now time.Time, timeout time.Duration) bool {
	return !attached && now.Sub(lastUsed) >= timeout
}

// backoff returns the wait before reconnection attempt number attempt (0: the first retry):
// a time in [c/2, c] with c = lo·2^attempt capped at hi; u in [0, 1) picks the point.
func backoff(attempt int, lo, hi time.Duration, u float64) time.Duration {
	if lo <= 0 {
		lo = time.Millisecond
	}
	hi = max(hi, lo)
	ceiling := lo
	for i := 0; i < attempt && ceiling < hi; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, hi)
	floor := ceiling / 2
	if !(u >= 0) { // negative or NaN
		u = 0
	}
	u = min(u, 1)
	return floor + time.Duration(u*float64(ceiling-floor))
}
