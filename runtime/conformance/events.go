package conformance

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Messages of the edge hub's log that the checks read (runtime/hub: hook_auth.go, acl.go,
// ingest.go). The hub logs each connection, refusal and disconnection once, with the
// client id; these lines are its per-client record, which Stats (counters for the whole
// hub) cannot give.
const (
	msgConnected        = "client connected"
	msgRefused          = "client refused"
	msgDisconnected     = "client disconnected"
	msgPublishRefused   = "publish refused, closing connection"
	msgSubscribeRefused = "subscription refused"
	msgMalformedRefused = "malformed publish refused, closing connection"
	msgTooLargeRefused  = "message too large, refused, closing connection"
	msgTooLargeUpstream = "message too large for $upstream, refused, closing connection"
	maxEvents           = 10000
	eventAttrClientID   = "client_id"
	eventAttrErr        = "err"
	eventAttrTopic      = "topic"
	eventAttrFilter     = "filter"
	eventAttrRemote     = "remote"
)

// event is one captured line of the edge hub's log.
type event struct {
	Time     time.Time
	Level    slog.Level
	Msg      string
	Instance int // which start of the edge hub logged it (1, then 2 after the restart)
	Attrs    map[string]string
}

// eventLog keeps the edge hub's log lines (at most maxEvents, then counts the rest) for
// the checks, and passes them on to the harness's logger.
type eventLog struct {
	mu       sync.Mutex
	events   []event
	dropped  int
	changed  chan struct{} // closed and replaced on every new event
	instance int
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

// setInstance numbers the following events.
func (l *eventLog) setInstance(n int) {
	l.mu.Lock()
	l.instance = n
	l.mu.Unlock()
}

func (l *eventLog) add(e event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Instance = l.instance
	if len(l.events) >= maxEvents {
		l.dropped++
		return
	}
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
}

// snapshot returns the events so far and a channel closed at the next one.
func (l *eventLog) snapshot() ([]event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events[:len(l.events):len(l.events)], l.changed
}

// waitFor waits until match accepts an event, ctx ends or timeout passes, and returns
// the first accepted event.
func (l *eventLog) waitFor(ctx context.Context, timeout time.Duration, match func(event) bool) (event, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	seen := 0
	for {
		evs, changed := l.snapshot()
		for _, e := range evs[seen:] {
			if match(e) {
				return e, true
			}
		}
		seen = len(evs)
		select {
		case <-changed:
		case <-t.C:
			return event{}, false
		case <-ctx.Done():
			return event{}, false
		}
	}
}

// filter returns the events match accepts.
func (l *eventLog) filter(match func(event) bool) []event {
	evs, _ := l.snapshot()
	var out []event
	for _, e := range evs {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// captureHandler is a slog.Handler that records Info and above into an eventLog and passes
// every record to next.
type captureHandler struct {
	log   *eventLog
	next  slog.Handler
	attrs []slog.Attr
}

func (h *captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		e := event{Time: r.Time, Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
		for _, a := range h.attrs {
			e.Attrs[a.Key] = a.Value.String()
		}
		r.Attrs(func(a slog.Attr) bool {
			e.Attrs[a.Key] = a.Value.String()
			return true
		})
		h.log.add(e)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{log: h.log, next: h.next.WithAttrs(as), attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...)}
}

// WithGroup keeps the attributes ungrouped in the capture: the checks look keys up by
// their plain names (the hub does not use groups).
func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{log: h.log, next: h.next.WithGroup(name), attrs: h.attrs}
}
