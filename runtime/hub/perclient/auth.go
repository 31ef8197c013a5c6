package perclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Keys returns the identity cache's keys for id (hub.Identities), but only while a session
// vouches for id: its client's token was accepted by IoT Hub (or, while IoT Hub was
// unreachable, verified by the cache) in this run, is not refused or expired, and is not
// due for renewal. Otherwise the error wraps ErrNoSession, and the hub, failing to verify
// the client's token, calls Resolve with it: that is how every client's token reaches the
// link. id is the identity that signed a token: a client, or the device of a module that
// presents its device's token.
func (l *Link) Keys(ctx context.Context, id sas.Identity) (sas.Keys, error) {
	if !l.vouchedFor(id) {
		return sas.Keys{}, fmt.Errorf("identity %q: %w", id, ErrNoSession)
	}
	return l.opts.Keys.Keys(ctx, id)
}

func (l *Link) vouchedFor(signer sas.Identity) bool {
	now := l.now()
	l.mu.Lock()
	own := l.sessions[signer] // the usual case: a client signs its own tokens
	var candidates []*session
	if own == nil || !own.vouchesFor(signer, now) {
		// A module presenting its device's token: any session of the device may vouch.
		for id, s := range l.sessions {
			if id.DeviceID == signer.DeviceID && id != signer {
				candidates = append(candidates, s)
			}
		}
	} else {
		candidates = []*session{own}
	}
	l.mu.Unlock()
	for _, s := range candidates {
		if s.vouchesFor(signer, now) {
			return true
		}
	}
	return false
}

// Resolve authenticates a client with IoT Hub by connecting as it (hub.IdentityResolver):
// password is the SAS token it presented to the hub, and the identity's connection to IoT
// Hub is opened, or reopened, with it. The hub calls Resolve whenever Keys does not vouch
// for the client, so on its first connection in this run and whenever its session was
// refused, expired or is due for renewal: a client that reconnects with a new token gets
// its IoT Hub connection renewed with it.
//
// It returns nil when IoT Hub accepted the token, or when IoT Hub could not be reached in
// time but the identity cache verifies the token (the connection keeps trying in the
// background; if IoT Hub then refuses it, Changes makes the hub check the client again).
// A token IoT Hub refuses gives an error wrapping ErrRefused, one the cache cannot verify
// ErrNoKeys (the hub would refuse it after Resolve anyway: see the package documentation).
func (l *Link) Resolve(ctx context.Context, id sas.Identity, password string) error {
	if id == l.hubID {
		return fmt.Errorf("identity %q: the edge hub's own identity cannot connect as a client", id)
	}
	tok, err := sas.Parse(password)
	if err != nil {
		return fmt.Errorf("client %q: %w", id, err)
	}
	now := l.now()
	var signer sas.Identity
	err = sas.Verify(tok, id, []string{l.opts.Hub.HostName}, now, func(s sas.Identity) (sas.Keys, error) {
		signer = s
		return l.opts.Keys.Keys(ctx, s)
	})
	if err != nil {
		return fmt.Errorf("client %q: %w: %w", id, ErrNoKeys, err)
	}
	s := l.sessionFor(id)
	a, again := s.offer(password, tok)
	wait := connectTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)-resolveMargin)
	}
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case <-a.done:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	var aerr error
	if isClosed(a.done) {
		aerr = a.err
	}
	switch {
	case isClosed(a.done) && aerr == nil:
		s.vouch(now, signer, again)
		return nil
	case errors.Is(aerr, ErrRefused), errors.Is(aerr, ErrExpired):
		return aerr
	case errors.Is(aerr, errSuperseded):
		// Two connections of the client at once: the newer one's token is being tried, and
		// the hub lets the newer connection take over anyway.
		s.vouch(now, signer, again)
		return nil
	}
	// IoT Hub could not be asked in time: the cache verified the token, as for a known client
	// of the extension link while offline.
	s.log.Info("IoT Hub not reachable: client accepted on the identity cache's word; its connection follows", "err", aerr)
	s.vouch(now, signer, again)
	return nil
}
