package perclient

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The link implements the hub's interfaces for what crosses to IoT Hub; its Cloud the
// relay's.
var (
	_ hub.PipelinedUpstream = (*Link)(nil)
	_ hub.IdentityResolver  = (*Link)(nil)
	_ hub.Presence          = (*Link)(nil)
	_ hub.Identities        = (*Link)(nil)
	_ hub.Cloud             = (*Cloud)(nil)
)

// Link joins the hub to IoT Hub with one plain-dialect connection per identity (see the
// package documentation). Create it with New and run it with Run; its methods are safe for
// concurrent use.
//
// Lock order: Link.mu before session.mu (markUnreachable); neither is held across a
// network operation or a call into the hub.
type Link struct {
	opts   Options
	tls    *tls.Config
	broker string // paho server URL, "ssl://host:port"
	log    *slog.Logger
	hubID  sas.Identity // {edge}/$edgeHub
	own    *session

	// ctx lives from New until Run returns; every session goroutine runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	changes chan struct{} // size 1: Changes
	resync  chan struct{} // size 1: an identity came back
	hubUp   chan bool     // size 1, latest wins: the hub's own connection changed

	mu          sync.Mutex
	sessions    map[sas.Identity]*session
	unreachable map[sas.Identity]struct{} // a message failed offline and it is not back yet
	changed     chan struct{}             // closed and replaced at each change (LinkState)
	onDesired   func(id sas.Identity, patch []byte, version int64)
	onMethod    func(id sas.Identity, name, rid string, payload []byte)
	onC2D       func(id sas.Identity, m iothub.Message) error
}

// New returns a Link; it validates opts but connects nothing before Run.
func New(opts Options) (*Link, error) {
	opts, cfg, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Link{
		opts:        opts,
		tls:         cfg,
		broker:      "ssl://" + net.JoinHostPort(opts.Hub.HostName, strconv.Itoa(opts.Port)),
		log:         opts.Logger.With("component", "perclient"),
		hubID:       sas.Identity{DeviceID: opts.Hub.DeviceID, ModuleID: opts.Hub.ModuleID},
		changes:     make(chan struct{}, 1),
		resync:      make(chan struct{}, 1),
		hubUp:       make(chan bool, 1),
		sessions:    map[sas.Identity]*session{},
		unreachable: map[sas.Identity]struct{}{},
		changed:     make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.own = newSession(l, l.hubID, true)
	return l, nil
}

func (l *Link) now() time.Time { return l.opts.Now() }

// Run connects the edge hub's own identity, keeps every session's clock (idle timeout,
// expiry, renewal) and passes the link's changes on (OnLinkChange, Changes) until ctx
// ends; it then closes every connection and returns nil once they are closed.
func (l *Link) Run(ctx context.Context) error {
	defer l.wg.Wait()
	defer l.cancel()
	l.start(l.own)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	var pulse <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.opts.KeyChanges:
			l.signalChanges()
		case up := <-l.hubUp:
			if l.opts.OnLinkChange != nil {
				l.opts.OnLinkChange(up)
			}
		case <-l.resync:
			if pulse == nil {
				pulse = time.After(resyncDelay)
			}
		case <-pulse:
			pulse = nil
			if l.opts.OnLinkChange != nil && l.Connected() {
				// The hub has no per-identity signal: a falling and a rising edge make it
				// resynchronise every subscribed client's desired properties (an identity
				// that came back may have missed patches) and flush reported properties.
				l.opts.OnLinkChange(false)
				l.opts.OnLinkChange(true)
			}
		case <-t.C:
			l.sweep()
		}
	}
}

// start runs a session's goroutines under the link's context.
func (l *Link) start(s *session) {
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		s.run(l.ctx)
	}()
	go func() {
		defer l.wg.Done()
		s.serve(l.ctx)
	}()
}

// sweep applies the clock to every session (session.sweep).
func (l *Link) sweep() {
	now := l.now()
	l.mu.Lock()
	all := make([]*session, 0, len(l.sessions))
	for _, s := range l.sessions {
		all = append(all, s)
	}
	l.mu.Unlock()
	renew := false
	for _, s := range all {
		if s.sweep(now) {
			renew = true
			s.log.Debug("token due for renewal: the hub will ask the client to reconnect")
		}
	}
	if renew {
		l.signalChanges()
	}
}

// session returns the session of id, or nil (the hub's own identity has its own).
func (l *Link) session(id sas.Identity) *session {
	if id == l.hubID {
		return l.own
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sessions[id]
}

// sessionFor returns the session of id, creating (and starting) it when there is none.
func (l *Link) sessionFor(id sas.Identity) *session {
	l.mu.Lock()
	s := l.sessions[id]
	if s == nil {
		s = newSession(l, id, false)
		l.sessions[id] = s
		l.mu.Unlock()
		l.start(s)
		return s
	}
	l.mu.Unlock()
	return s
}

// stateChanged is called by a session after its state changed from old to st.
func (l *Link) stateChanged(s *session, old, st state) {
	if old == st {
		return
	}
	s.log.Debug("connection state", "from", old.String(), "to", st.String())
	l.mu.Lock()
	if st == stUp {
		delete(l.unreachable, s.id)
	}
	l.bumpLocked()
	l.mu.Unlock()
	if s.own {
		select { // latest wins
		case <-l.hubUp:
		default:
		}
		l.hubUp <- st == stUp
		return
	}
	switch {
	case st == stUp && old == stDown:
		select {
		case l.resync <- struct{}{}:
		default:
		}
	case st == stRefused, st == stExpired:
		l.signalChanges() // its client no longer verifies: the hub looks again
	}
}

// bumpLocked wakes LinkState's waiters.
func (l *Link) bumpLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// markUnreachable records that a message for id failed because its connection is down.
func (l *Link) markUnreachable(id sas.Identity) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.sessionLocked(id); s != nil && s.snapshot() == stUp {
		return // back already
	}
	if _, ok := l.unreachable[id]; !ok {
		l.unreachable[id] = struct{}{}
		l.bumpLocked()
	}
}

func (l *Link) sessionLocked(id sas.Identity) *session {
	if id == l.hubID {
		return l.own
	}
	return l.sessions[id]
}

// LinkState reports whether the link is up for the $upstream pump (hub.PipelinedUpstream)
// and returns a channel closed at the next change. Up means that no identity whose message
// failed for being offline is still unreachable; the channel closes whenever any
// identity's connection changes, so that the pump, waiting after an ErrOffline, tries
// again as soon as something may have come back.
func (l *Link) LinkState() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.unreachable) == 0, l.changed
}

// Connected reports whether the edge hub's own connection is up.
func (l *Link) Connected() bool { return l.own.snapshot() == stUp }

// Changes signals when what Keys answers may have changed: a session's token was refused,
// expired or is due for renewal, or the identity cache changed (Options.KeyChanges). Give
// it to the hub as Deps.IdentityChanges: it then checks every connected client again.
func (l *Link) Changes() <-chan struct{} { return l.changes }

func (l *Link) signalChanges() {
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

// handlerSet is a snapshot of the hub's handlers.
type handlerSet struct {
	desired func(id sas.Identity, patch []byte, version int64)
	method  func(id sas.Identity, name, rid string, payload []byte)
	c2d     func(id sas.Identity, m iothub.Message) error
}

func (l *Link) handlers() handlerSet {
	l.mu.Lock()
	defer l.mu.Unlock()
	return handlerSet{desired: l.onDesired, method: l.onMethod, c2d: l.onC2D}
}

// bounded gives ctx Options.RequestTimeout when it has no deadline.
func (l *Link) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, l.opts.RequestTimeout)
}

// Sessions returns the state of each identity's session ("up", "down", "expired", ...) by
// client id, the edge hub's own excluded: for diagnostics and tests.
func (l *Link) Sessions() map[string]string {
	l.mu.Lock()
	all := make([]*session, 0, len(l.sessions))
	for _, s := range l.sessions {
		all = append(all, s)
	}
	l.mu.Unlock()
	out := make(map[string]string, len(all))
	for _, s := range all {
		out[s.clientID] = s.snapshot().String()
	}
	return out
}
