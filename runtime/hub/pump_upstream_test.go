package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// fakeLink is a PipelinedUpstream that records SendAsync calls and either answers them at
// once (with result) or leaves them open for the test to finish (hold).
type fakeLink struct {
	fakeUpstream

	mu      sync.Mutex
	up      bool
	changed chan struct{}
	sends   []string       // bodies, in SendAsync order
	open    []*fakeOutcome // unfinished outcomes, oldest first
	hold    bool
	result  func(n int, body string, up bool) error // n: 0-based SendAsync call number
}

var _ hub.PipelinedUpstream = (*fakeLink)(nil)

type fakeOutcome struct {
	done chan struct{}
	err  error
}

func (o *fakeOutcome) Done() <-chan struct{} { return o.done }
func (o *fakeOutcome) Err() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

func newFakeLink(up bool) *fakeLink { return &fakeLink{up: up, changed: make(chan struct{})} }

func (f *fakeLink) SendAsync(_ context.Context, _ sas.Identity, m iothub.Message) hub.Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &fakeOutcome{done: make(chan struct{})}
	body := string(m.Body)
	n := len(f.sends)
	f.sends = append(f.sends, body)
	if f.hold {
		f.open = append(f.open, o)
		return o
	}
	if f.result != nil {
		o.err = f.result(n, body, f.up)
	}
	close(o.done)
	return o
}

func (f *fakeLink) LinkState() (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up, f.changed
}

func (f *fakeLink) setUp(up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = up
	close(f.changed)
	f.changed = make(chan struct{})
}

// finishOldest completes the oldest open outcome with err.
func (f *fakeLink) finishOldest(err error) {
	f.mu.Lock()
	o := f.open[0]
	f.open = f.open[1:]
	f.mu.Unlock()
	o.err = err
	close(o.done)
}

func (f *fakeLink) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sends)
}

func withDeps(fn func(*hub.Deps)) envOption { return func(e *env) { e.deps = fn } }

func withLink(l *fakeLink) envOption {
	return withDeps(func(d *hub.Deps) { d.Upstream = l })
}

var upstreamRoute = withRoutes(map[string]string{"up": "FROM /messages/* INTO $upstream"})

func bodies(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

func TestPipelined_KeepsAWindowInFlightAndAcksInOrder(t *testing.T) {
	link := newFakeLink(true)
	link.hold = true
	const window, n = 4, 10
	e := newEnv(t, upstreamRoute, withLink(link), withOptions(func(o *hub.Options) { o.UpstreamWindow = window }))
	c := e.connect(leaf)
	for i := range n {
		c.send(t, "", nil, fmt.Sprint(i))
	}
	for finished := 0; finished < n; finished++ {
		want := min(n, finished+window)
		waitFor(t, fmt.Sprintf("%d messages in flight", want), func() bool { return len(link.sent()) >= want })
		if got := len(link.sent()); got != want {
			t.Fatalf("%d messages handed to the link with %d answered, want %d (window %d)", got, finished, want, window)
		}
		link.finishOldest(nil)
	}
	waitFor(t, "every message acknowledged", func() bool { return e.hub.Stats().SentUpstream == n })
	if got := link.sent(); !slices.Equal(got, bodies(0, n)) {
		t.Fatalf("sent %v, want %v in order, once each", got, bodies(0, n))
	}
}

func TestPipelined_RejectedIsDeadLetteredTheRestFlows(t *testing.T) {
	link := newFakeLink(true)
	link.result = func(_ int, body string, _ bool) error {
		if body == "2" {
			return fmt.Errorf("%w: identity deleted", hub.ErrRejected)
		}
		return nil
	}
	e := newEnv(t, upstreamRoute, withLink(link))
	c := e.connect(leaf)
	for i := range 5 {
		c.send(t, "", nil, fmt.Sprint(i))
	}
	waitFor(t, "every message handled", func() bool {
		st := e.hub.Stats()
		return st.SentUpstream == 4 && st.DeadLettered == 1
	})
	if got := link.sent(); !slices.Equal(got, bodies(0, 5)) {
		t.Fatalf("sent %v, want each once, in order", got)
	}
}

func TestPipelined_OfflineWaitsForTheLinkThenResendsInOrder(t *testing.T) {
	link := newFakeLink(false)
	link.result = func(_ int, _ string, up bool) error {
		if !up {
			return fmt.Errorf("%w: link down", hub.ErrOffline)
		}
		return nil
	}
	// A minute of back-off: only the link's return can wake the pump in time.
	e := newEnv(t, upstreamRoute, withLink(link), withOptions(func(o *hub.Options) { o.RetryMin, o.RetryMax = time.Minute, time.Minute }))
	c := e.connect(leaf)
	c.send(t, "", nil, "0")
	waitFor(t, "the first attempt", func() bool { return len(link.sent()) == 1 })
	for i := 1; i < 5; i++ {
		c.send(t, "", nil, fmt.Sprint(i))
	}
	if st := e.hub.Stats(); st.Deferred == 0 || st.DeliveryFailures != 0 {
		t.Fatalf("stats %+v: want the offline attempt deferred, not counted as a failure", st)
	}
	link.setUp(true)
	waitFor(t, "every message acknowledged", func() bool { return e.hub.Stats().SentUpstream == 5 })
	if got := link.sent(); !slices.Equal(got, append([]string{"0"}, bodies(0, 5)...)) {
		t.Fatalf("sent %v, want one offline attempt of 0, then 0..4 in order", got)
	}
}

func TestPipelined_TransientFailureRetriesFromTheFailedMessage(t *testing.T) {
	link := newFakeLink(true)
	var once sync.Once
	link.result = func(_ int, body string, _ bool) error {
		var err error
		if body == "1" {
			once.Do(func() { err = errors.New("throttled") })
		}
		return err
	}
	e := newEnv(t, upstreamRoute, withLink(link))
	c := e.connect(leaf)
	for i := range 4 {
		c.send(t, "", nil, fmt.Sprint(i))
	}
	waitFor(t, "every message acknowledged", func() bool { return e.hub.Stats().SentUpstream == 4 })
	got := link.sent()
	// Nothing is sent after a message that failed at once until it is sent again.
	if i := slices.Index(got, "1"); i < 0 || !slices.Equal(got[i+1:], bodies(1, 4)) {
		t.Fatalf("sent %v, want 1 retried before anything after it", got)
	}
	if st := e.hub.Stats(); st.DeliveryFailures != 1 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v: want one failure, nothing dead-lettered", st)
	}
}

func TestPipelined_OverdueHeadHoldsBackNewMessages(t *testing.T) {
	link := newFakeLink(true)
	link.hold = true
	e := newEnv(t, upstreamRoute, withLink(link))
	c := e.connect(leaf)
	c.send(t, "", nil, "0")
	waitFor(t, "the first message in flight", func() bool { return len(link.sent()) == 1 })
	first := time.Now()
	waitFor(t, "the first message overdue", func() bool { return time.Since(first) > 1100*time.Millisecond })
	c.send(t, "", nil, "1")
	// The second message is stored; it must not be sent while the first has no answer.
	stillOne := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(stillOne) {
		if n := len(link.sent()); n != 1 {
			t.Fatalf("%d messages sent while the first was overdue, want 1", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	link.finishOldest(nil)
	waitFor(t, "the second message sent", func() bool { return len(link.sent()) == 2 })
}
