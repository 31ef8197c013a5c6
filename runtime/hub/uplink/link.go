package uplink

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Cloud is the part of *upstream.Client the link uses (package upstream documents each
// method).
type Cloud interface {
	Send(ctx context.Context, id sas.Identity, m iothub.Message) error
	SendAsync(ctx context.Context, id sas.Identity, m iothub.Message) *upstream.Sending
	Authenticate(ctx context.Context, id sas.Identity, password string) (upstream.Identity, error)
	GetIdentity(ctx context.Context, id sas.Identity) (upstream.Identity, error)
	Attach(ctx context.Context, id sas.Identity, subs upstream.Subscriptions) error
	Detach(ctx context.Context, id sas.Identity) error
	Connected() bool
	States() <-chan bool
}

// Cache is the part of *identities.Cache the link uses.
type Cache interface {
	Get(id sas.Identity) (identities.Record, bool)
	List() []identities.Record
	Put(ctx context.Context, r identities.Record) error
	Delete(ctx context.Context, id sas.Identity) error
}

// The link implements the hub's interfaces for what crosses the link.
var (
	_ hub.PipelinedUpstream = (*Link)(nil)
	_ hub.IdentityResolver  = (*Link)(nil)
	_ hub.Presence          = (*Link)(nil)
	_ Cloud                 = (*upstream.Client)(nil)
	_ Cache                 = (*identities.Cache)(nil)
)

// Defaults of Options.
const (
	// DefaultRefreshInterval is edgeHub's DeviceScopeCacheRefreshRateSecs (3600).
	DefaultRefreshInterval = time.Hour
	// DefaultRetryInterval is how soon a refresh round cut short by a transient error (429,
	// a timeout) is tried again.
	DefaultRetryInterval = time.Minute
)

// Options configure a Link. Zero fields take the defaults.
type Options struct {
	// RefreshInterval is the time between two refresh rounds of the identity cache; default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// RetryInterval is the wait before another round after one that could not ask about
	// every identity (other than for the link being down: that round starts again when the
	// link returns); default DefaultRetryInterval.
	RetryInterval time.Duration
	// OnLinkChange, when set, is called from Run's goroutine after each change of the link
	// state (after LinkState reflects it), for other parts of the hub that follow it.
	OnLinkChange func(up bool)
	// Logger receives the link's logs; discarded when nil.
	Logger *slog.Logger
}

// Link joins the hub to the upstream client and the identity cache. Create it with New and
// run it with Run; its methods are safe for concurrent use.
type Link struct {
	cloud Cloud
	cache Cache
	opts  Options
	log   *slog.Logger

	mu      sync.Mutex
	up      bool
	changed chan struct{} // closed and replaced at each change of up
}

// New returns a Link over cloud (an *upstream.Client) and cache (an *identities.Cache).
func New(cloud Cloud, cache Cache, opts Options) *Link {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Link{cloud: cloud, cache: cache, opts: opts, log: opts.Logger.With("component", "uplink"),
		up: cloud.Connected(), changed: make(chan struct{})}
}

// LinkState reports whether the upstream link is up and returns a channel closed at the
// next change (hub.PipelinedUpstream). It follows the client's States while Run runs.
func (l *Link) LinkState() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up, l.changed
}

func (l *Link) setUp(up bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up == up {
		return false
	}
	l.up = up
	close(l.changed)
	l.changed = make(chan struct{})
	return true
}

// Run follows the link state and refreshes the identity cache (see the package
// documentation) until ctx ends, then returns nil.
func (l *Link) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.refreshLoop(ctx)
	}()
	l.setUp(l.cloud.Connected())
	for {
		select {
		case up := <-l.cloud.States():
			if l.setUp(up) && l.opts.OnLinkChange != nil {
				l.opts.OnLinkChange(up)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// refreshLoop runs the refresh rounds: when the link is first up, then every
// RefreshInterval; a round cut short is tried again after RetryInterval, or as soon as the
// link returns if it was the link's loss that cut it.
func (l *Link) refreshLoop(ctx context.Context) {
	due, incomplete := true, false
	t := time.NewTimer(l.opts.RefreshInterval)
	defer t.Stop()
	for {
		up, changed := l.LinkState()
		if due && up {
			due = false
			err := l.Refresh(ctx)
			if ctx.Err() != nil {
				return
			}
			incomplete = err != nil
			next := l.opts.RefreshInterval
			if incomplete {
				next = l.opts.RetryInterval
				l.log.Info("identity cache refresh incomplete", "retry_in", next, "err", err)
			}
			t.Reset(next)
			continue
		}
		select {
		case <-changed:
			due = due || incomplete
		case <-t.C:
			due = true
		case <-ctx.Done():
			return
		}
	}
}
