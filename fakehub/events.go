package fakehub

import (
	"context"
	"maps"
	"sync"
	"time"
)

// eventCapacity is how many D2C messages the hub keeps: the in-memory ring holds the last
// 100,000 captured events; older ones are forgotten (Events simply starts later).
const eventCapacity = 100_000

// eventLog is the ring of captured device-to-cloud messages. Seq numbers are contiguous,
// start at 1 for a new Server and are not persisted (a restarted process starts again at 1).
type eventLog struct {
	mu      sync.Mutex
	ring    []Event // capacity eventCapacity, used as a circular buffer
	head    int     // index of the oldest event
	n       int     // number of events held
	lastSeq int64
	wake    chan struct{} // closed and replaced on every append
	subs    map[*eventSub]struct{}
	dropped int64 // events lost by slow subscribers, all time
}

type eventSub struct {
	ch      chan Event
	dropped int64
}

func newEventLog() *eventLog {
	return &eventLog{wake: make(chan struct{}), subs: map[*eventSub]struct{}{}}
}

// eventsLog returns the server's log, creating it on first use so that the zero Server can
// be subscribed to before Start.
func (s *Server) eventsLog() *eventLog {
	s.evOnce.Do(func() { s.events = newEventLog() })
	return s.events
}

// append stores ev (assigning Seq) and fans it out. Subscribers never block the hub: a full
// subscriber buffer loses the event, and the loss is counted (DroppedEvents).
func (l *eventLog) append(ev Event) Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastSeq++
	ev.Seq = l.lastSeq
	if l.ring == nil {
		l.ring = make([]Event, eventCapacity)
	}
	if l.n < len(l.ring) {
		l.ring[(l.head+l.n)%len(l.ring)] = ev
		l.n++
	} else {
		l.ring[l.head] = ev
		l.head = (l.head + 1) % len(l.ring)
	}
	close(l.wake)
	l.wake = make(chan struct{})
	for sub := range l.subs {
		select {
		case sub.ch <- cloneEvent(ev):
		default:
			sub.dropped++
			l.dropped++
		}
	}
	return ev
}

// after returns up to limit events with Seq > after (limit <= 0: all), and the channel that
// is closed on the next append.
func (l *eventLog) after(after int64, limit int) ([]Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.lastSeq - int64(l.n) + 1 // Seq of the oldest event held
	skip := int64(0)
	if after >= first {
		skip = after - first + 1
	}
	avail := int64(l.n) - skip
	if avail <= 0 {
		return nil, l.wake
	}
	if limit > 0 && int64(limit) < avail {
		avail = int64(limit)
	}
	out := make([]Event, 0, avail)
	for i := int64(0); i < avail; i++ {
		out = append(out, cloneEvent(l.ring[(l.head+int(skip+i))%len(l.ring)]))
	}
	return out, l.wake
}

func cloneEvent(ev Event) Event {
	ev.Body = append([]byte(nil), ev.Body...)
	ev.Properties = maps.Clone(ev.Properties)
	ev.SystemProperties = maps.Clone(ev.SystemProperties)
	return ev
}

// Events returns captured D2C messages with Seq > after, oldest first, at most limit of
// them (limit <= 0: no limit). The hub keeps the last 100,000 events in memory; Seq numbers
// are contiguous from 1 and restart with the process. Events may be called before Start.
func (s *Server) Events(after int64, limit int) []Event {
	evs, _ := s.eventsLog().after(after, limit)
	return evs
}

// WaitEvents is Events as a long poll: it blocks until at least one event with Seq > after
// exists, ctx is done (ctx.Err()) or the server is closed (no events, nil error).
func (s *Server) WaitEvents(ctx context.Context, after int64, limit int) ([]Event, error) {
	done := s.done
	for {
		evs, wake := s.eventsLog().after(after, limit)
		if len(evs) > 0 {
			return evs, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-done:
			return nil, nil
		}
	}
}

// SubscribeEvents returns a live stream of events captured from now on, for server-sent
// events. The channel has the given buffer (at least 1) and is closed when ctx is done or the
// server is closed. A subscriber that does not keep up loses events instead of slowing the
// hub; losses are counted in DroppedEvents.
func (s *Server) SubscribeEvents(ctx context.Context, buffer int) <-chan Event {
	if buffer < 1 {
		buffer = 1
	}
	l := s.eventsLog()
	sub := &eventSub{ch: make(chan Event, buffer)}
	l.mu.Lock()
	l.subs[sub] = struct{}{}
	l.mu.Unlock()
	done := s.done
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		l.mu.Lock()
		delete(l.subs, sub)
		close(sub.ch)
		l.mu.Unlock()
	}()
	return sub.ch
}

// DroppedEvents returns how many events SubscribeEvents subscribers lost because their
// buffer was full.
func (s *Server) DroppedEvents() int64 {
	l := s.eventsLog()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// enqueuedTimeFormat renders iothub-enqueuedtime: ISO-8601 UTC with milliseconds and "Z".
const enqueuedTimeFormat = "2006-01-02T15:04:05.000Z"

func formatEnqueued(t time.Time) string { return t.UTC().Format(enqueuedTimeFormat) }
