package perclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// state is where a session is (see the diagram in doc.go).
type state int

const (
	stIdle       state = iota // no token yet, or closed for idleness (the token is kept)
	stConnecting              // first attempt with a token
	stUp                      // connected
	stDown                    // lost or not reachable: reconnecting with back-off
	stExpired                 // the token expired: waiting for the client's next one
	stRefused                 // IoT Hub refused the token: waiting for the client's next one
)

var stateNames = [...]string{stIdle: "idle", stConnecting: "connecting", stUp: "up", stDown: "down",
	stExpired: "expired", stRefused: "refused"}

func (st state) String() string { return stateNames[st] }

// attempt is the outcome of the first connection attempt made with one token: Resolve
// waits for it.
type attempt struct {
	done chan struct{}
	err  error // nil: connected; else wraps ErrRefused, ErrExpired or is an offlineError
}

func newAttempt() *attempt { return &attempt{done: make(chan struct{})} }

// session is one identity's connection to IoT Hub in the plain dialect: its credentials,
// what IoT Hub should forward to it, and one goroutine (run) that keeps a connection open
// while it has a usable token and reason to. The edge hub's own session (own) signs its
// tokens with the hub's key; a client's session uses the token the client presented.
type session struct {
	l        *Link
	id       sas.Identity
	own      bool
	clientID string
	username string
	log      *slog.Logger
	inbound  chan inbound
	rids     *ridSource

	wake chan struct{} // size 1: something run or hold should look at changed

	mu       sync.Mutex
	password string    // the client's token as it presented it ("" for own)
	token    sas.Token // parsed password
	gen      uint64    // counts the tokens given to the session
	first    *attempt  // of the current token
	state    state
	want     bool // connect: false while idle or waiting for a token
	subs     hub.Subscriptions
	attached bool      // a local client is connected (Presence)
	lastUsed time.Time // last Attach, Detach or send
	cur      *wire     // the connection in use; nil when not up
	pending  map[string]chan twinAnswer

	// What Keys answers (auth.go): the token was accepted (or, offline, verified by the
	// cache) and until when it is good for local verification.
	vouched     bool
	signer      sas.Identity // whose key signed the token: the identity or its device
	renewAt     time.Time
	renewPosted bool // the hub was told (Changes) that renewAt passed
}

func newSession(l *Link, id sas.Identity, own bool) *session {
	s := &session{
		l: l, id: id, own: own,
		clientID: iothub.ClientID(id.DeviceID, id.ModuleID),
		username: iothub.FormatUsername(l.opts.Hub.HostName, id.DeviceID, id.ModuleID,
			map[string]string{iothub.ParamDeviceClientType: clientType}),
		log:      l.log.With("identity", iothub.ClientID(id.DeviceID, id.ModuleID)),
		inbound:  make(chan inbound, inboundQueueSize),
		rids:     newRIDSource(),
		wake:     make(chan struct{}, 1),
		first:    newAttempt(),
		pending:  map[string]chan twinAnswer{},
		lastUsed: l.now(),
	}
	if own {
		s.want, s.attached = true, true // the hub's own connection is always wanted
	}
	return s
}

// clientType is the DeviceClientType of every connection.
const clientType = "outpost-edgehub-perclient/0.1"

func (s *session) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// offer gives the session the token a client presented and returns the attempt Resolve
// waits for. The same token again keeps the current attempt (again is then true), unless
// the session is stopped on it (refused, expired, idle): it is tried once more.
func (s *session) offer(password string, tok sas.Token) (a *attempt, again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	again = password == s.password
	if again && s.want && s.state != stRefused && s.state != stExpired {
		return s.first, true
	}
	s.password, s.token = password, tok
	s.gen++
	if old := s.first; !isClosed(old.done) {
		old.err = errSuperseded // a newer connection of the client brought a token meanwhile
		close(old.done)
	}
	s.first = newAttempt()
	s.want = true
	s.vouched, s.renewPosted = false, false
	if s.state != stUp {
		s.state = stConnecting
	}
	s.poke()
	return s.first, again
}

// vouch records that the token in use authenticates the client for the hub until
// renewDue.
func (s *session) vouch(now time.Time, signer sas.Identity, again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vouched, s.signer, s.renewPosted = true, signer, false
	s.renewAt = renewDue(now, s.token.ExpiresAt(), again)
}

// vouchesFor reports whether the session's token lets the hub verify signer's keys now.
func (s *session) vouchesFor(signer sas.Identity, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vouched && s.signer == signer && now.Before(s.renewAt) &&
		s.state != stRefused && s.state != stExpired
}

// credentials waits until the session should connect and returns what to connect with.
func (s *session) credentials(ctx context.Context) (password string, tok sas.Token, gen uint64, ok bool) {
	for {
		s.mu.Lock()
		if s.want {
			password, tok, gen = s.password, s.token, s.gen
			s.mu.Unlock()
			if s.own {
				return s.sign()
			}
			return password, tok, gen, true
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
			return "", sas.Token{}, 0, false
		}
	}
}

// sign makes a fresh token for the hub's own session.
func (s *session) sign() (string, sas.Token, uint64, bool) {
	pw, err := s.l.opts.Hub.Token(s.l.now(), s.l.opts.HubTokenTTL)
	if err == nil {
		var tok sas.Token
		if tok, err = sas.Parse(pw); err == nil {
			return pw, tok, 0, true
		}
	}
	s.log.Error("signing the edge hub's token failed", "err", err) // validated by New: cannot happen
	return "", sas.Token{}, 0, false
}

// settle records the outcome of an attempt made with token number gen: the session's state
// and, for the first attempt of that token, Resolve's answer.
func (s *session) settle(gen uint64, st state, err error) {
	s.mu.Lock()
	if !s.own && gen != s.gen {
		s.mu.Unlock()
		return // a newer token arrived meanwhile; its own attempt decides
	}
	old := s.state
	s.state = st
	if st == stRefused || st == stExpired {
		s.want = false
	}
	if a := s.first; !isClosed(a.done) {
		a.err = err
		close(a.done)
	}
	s.mu.Unlock()
	s.l.stateChanged(s, old, st)
}

// setState records a change that no Resolve waits for.
func (s *session) setState(st state) {
	s.mu.Lock()
	old := s.state
	s.state = st
	s.mu.Unlock()
	s.l.stateChanged(s, old, st)
}

// install makes w the connection in use, unless the token changed while it was dialled.
func (s *session) install(w *wire, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.want || (!s.own && gen != s.gen) {
		return false
	}
	s.cur = w
	return true
}

func (s *session) uninstall(w *wire) {
	s.mu.Lock()
	if s.cur == w {
		s.cur = nil
	}
	s.mu.Unlock()
}

// Reasons hold returns for, and errSuperseded, the outcome of a first attempt that a newer
// token replaced before it ended.
var (
	errSuperseded = errors.New("superseded by a newer token of the client")
	errReplaced   = errors.New("replaced by a connection with a newer token")
	errIdle       = errors.New("idle")
	errRenewal    = errors.New("renewing the edge hub's token")
	errClosing    = errors.New("link stopping")
)

// run keeps the session connected while it wants to be, until ctx ends:
//
//	credentials --expired--> expired (waits for a new token)
//	     |
//	   dial --refused (0x04, 0x05)--> refused (waits for a new token)
//	     |   --other failure--> down: back-off, then again
//	     v
//	    up: hold --lost--> down: back-off, then again
//	             --new token, idle, expiry, renewal--> close, then again
func (s *session) run(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	tries := 0
	for {
		password, tok, gen, ok := s.credentials(ctx)
		if !ok {
			return
		}
		if !s.l.now().Before(tok.ExpiresAt()) {
			s.log.Info("token expired: the connection waits for the client to connect again with a fresh token")
			s.settle(gen, stExpired, fmt.Errorf("client %q: %w at %s", s.id, ErrExpired, tok.ExpiresAt().Format(time.RFC3339)))
			continue
		}
		w, kind, err := s.dial(ctx, password)
		if ctx.Err() != nil {
			return
		}
		switch {
		case kind == attemptRefused && !s.own && !s.l.now().Before(tok.ExpiresAt()):
			s.log.Info("token expired: the connection waits for the client to connect again with a fresh token", "err", err)
			s.settle(gen, stExpired, fmt.Errorf("client %q: %w: %w", s.id, ErrExpired, err))
			continue
		case kind == attemptRefused && !s.own:
			s.log.Info("IoT Hub refused the client's token: the connection waits for the client's next token", "err", err)
			s.settle(gen, stRefused, err)
			continue
		case err != nil:
			s.log.Debug("connecting to IoT Hub failed", "attempt", tries+1, "err", err)
			s.settle(gen, stDown, s.offline("not connected", err))
			if !s.pause(ctx, backoff(tries, s.l.opts.ReconnectMin, s.l.opts.ReconnectMax, rnd.Float64())) {
				return
			}
			tries++
			continue
		}
		if !s.install(w, gen) {
			w.close(errReplaced)
			continue
		}
		s.log.Debug("connected to IoT Hub")
		s.settle(gen, stUp, nil)
		why := s.hold(ctx, w, tok, gen)
		s.uninstall(w)
		w.close(why)
		if time.Since(w.started) >= stableAfter {
			tries = 0
		}
		switch {
		case errors.Is(why, errClosing):
			return
		case errors.Is(why, errLost):
			s.log.Info("connection to IoT Hub lost", "err", why)
			s.setState(stDown)
			if !s.pause(ctx, backoff(tries, s.l.opts.ReconnectMin, s.l.opts.ReconnectMax, rnd.Float64())) {
				return
			}
			tries++
		case errors.Is(why, errIdle):
			s.log.Info("connection closed after being idle", "idle_timeout", s.l.opts.IdleTimeout)
			s.setState(stIdle)
		case errors.Is(why, errRenewal):
			// Reconnecting at once with a new token: not reported as a change (the hub
			// would resynchronise everything), unless the new connection fails.
		default: // a new token, the token's expiry: the next round decides
			s.setState(stConnecting)
		}
	}
}

// hold waits while w is in use and returns why it no longer is. Subscription changes are
// applied on the way.
func (s *session) hold(ctx context.Context, w *wire, tok sas.Token, gen uint64) error {
	until := tok.ExpiresAt() // IoT Hub closes a connection when its token expires
	reason := ErrExpired
	if s.own {
		until = s.l.now().Add(time.Duration(float64(s.l.opts.HubTokenTTL) * RenewFraction))
		reason = errRenewal
	}
	t := time.NewTimer(until.Sub(s.l.now()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return errClosing
		case <-w.lost:
			return w.err
		case <-t.C:
			return reason
		case <-s.wake:
		}
		s.mu.Lock()
		want, replaced := s.want, s.cur != w || (!s.own && s.gen != gen)
		s.mu.Unlock()
		switch {
		case replaced:
			return errReplaced
		case !want:
			return errIdle
		case !s.own && !s.l.now().Before(until):
			return ErrExpired // the clock moved past the token's expiry (sweep pokes)
		}
		if err := w.sync(ctx, s.wantedFilters()); err != nil {
			s.log.Info("updating the subscriptions failed; reconnecting", "err", err)
			return fmt.Errorf("%w: %w", errLost, err)
		}
	}
}

// pause waits d before the next attempt; a new token or ctx ends it early. It reports
// false when ctx ended.
func (s *session) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.wake:
		s.poke() // for credentials, which looks again
	case <-ctx.Done():
		return false
	}
	return true
}

// current returns the connection in use and marks the session used; when it has none, the
// error says why (an offlineError, or ErrRefused/ErrExpired wrapped in one). A session
// closed for idleness is reopened (the message waits for the connection).
func (s *session) current() (*wire, error) {
	s.mu.Lock()
	s.lastUsed = s.l.now()
	w, st := s.cur, s.state
	if w == nil && st == stIdle && s.password != "" {
		s.want = true
		s.poke()
	}
	s.mu.Unlock()
	if w != nil {
		return w, nil
	}
	switch st {
	case stRefused:
		return nil, s.offline("waiting for the client's next token", ErrRefused)
	case stExpired:
		return nil, s.offline("waiting for the client's next token", ErrExpired)
	}
	return nil, s.offline("not connected ("+st.String()+")", nil)
}

// offline returns an offlineError about the session's identity.
func (s *session) offline(what string, cause error) error {
	return &offlineError{msg: fmt.Sprintf("identity %q: %s", s.clientID, what), cause: cause}
}

// setSubs records what IoT Hub should forward for the identity and whether its client is
// connected to the hub; the connection follows (hold).
func (s *session) setSubs(subs hub.Subscriptions, attached bool) {
	s.mu.Lock()
	s.subs, s.attached = subs, attached || s.own
	s.lastUsed = s.l.now()
	if attached && !s.want && s.state == stIdle && s.password != "" {
		s.want = true // the client is back: reopen what idleness closed
	}
	s.mu.Unlock()
	s.poke()
}

// sweep applies the clock: it closes an idle connection (or stops reconnecting an idle
// session), notices a token that expired under a connection, and reports whether the
// session's renewal time just passed (the hub should then look at its clients again).
func (s *session) sweep(now time.Time) (renewPassed bool) {
	if s.own {
		return false
	}
	s.mu.Lock()
	old := s.state
	if s.want && idle(s.attached, s.lastUsed, now, s.l.opts.IdleTimeout) {
		s.want = false
		if s.cur == nil && (s.state == stDown || s.state == stConnecting) {
			s.state = stIdle // not connected: nothing for hold to close
		}
		s.poke()
	}
	if s.cur != nil && !now.Before(s.token.ExpiresAt()) {
		s.poke()
	}
	if s.vouched && !s.renewPosted && !now.Before(s.renewAt) {
		s.renewPosted, renewPassed = true, true
	}
	st := s.state
	s.mu.Unlock()
	s.l.stateChanged(s, old, st)
	return renewPassed
}

func (s *session) snapshot() state {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
