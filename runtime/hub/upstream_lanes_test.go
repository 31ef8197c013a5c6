package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// offlineWhileDown is a fakeLink result: messages sent while the link is down fail with
// ErrOffline, the others are acknowledged.
func offlineWhileDown(_ int, _ string, up bool) error {
	if !up {
		return fmt.Errorf("%w: link down", hub.ErrOffline)
	}
	return nil
}

// waitOnLink makes the pump wait for the link (a minute of back-off otherwise).
var waitOnLink = withOptions(func(o *hub.Options) { o.RetryMin, o.RetryMax = time.Minute, time.Minute })

// downLink is a fakeLink that counts the times the pump found it down after a failure:
// then the sender waits for the link's change. (A sender whose failure is handled after
// the link came back waits a back-off instead, so the tests bring the link back only
// once every sender waits for it.)
type downLink struct {
	*fakeLink
	waits    atomic.Int32
	sends    atomic.Int64
	holdFrom atomic.Int64 // SendAsync call from which answers are held (0: none)
}

func (l *downLink) SendAsync(ctx context.Context, id sas.Identity, m iothub.Message) hub.Outcome {
	if n, from := l.sends.Add(1), l.holdFrom.Load(); from > 0 && n >= from {
		l.setHold(true)
	}
	return l.fakeLink.SendAsync(ctx, id, m)
}

func newDownLink() *downLink {
	l := &downLink{fakeLink: newFakeLink(false)}
	l.result = offlineWhileDown
	return l
}

func (l *downLink) LinkState() (bool, <-chan struct{}) {
	up, changed := l.fakeLink.LinkState()
	if !up {
		l.waits.Add(1)
	}
	return up, changed
}

func withDownLink(l *downLink) envOption {
	return withDeps(func(d *hub.Deps) { d.Upstream = l })
}

// upWhenWaiting brings the link up once n senders wait for it.
func (l *downLink) upWhenWaiting(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d senders waiting for the link", n), func() bool { return l.waits.Load() >= int32(n) })
	l.setUp(true)
}

func (f *fakeLink) setHold(hold bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = hold
}

func (f *fakeLink) openCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.open)
}

// finishAll completes every open outcome with err.
func (f *fakeLink) finishAll(err error) {
	f.mu.Lock()
	open := f.open
	f.open = nil
	f.mu.Unlock()
	for _, o := range open {
		o.err = err
		close(o.done)
	}
}

// fillBacklog appends n messages from sender to queue directly in the store, from 16
// writers (the store group-commits them): writer w's k-th message is "{prefix}-{w}-{k}",
// so the store's order keeps each writer's k increasing.
func fillBacklog(t *testing.T, st *store.Store, queue string, sender sas.Identity, prefix string, n int) {
	t.Helper()
	const writers = 16
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; w+k*writers < n; k++ {
				body := fmt.Sprintf("%s-%d-%d", prefix, w, k)
				if err := st.Append(context.Background(), hub.StoredMessage(sender, body), []store.Target{{Queue: queue}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// inWriterOrder checks that bodies (of fillBacklog's prefix) hold each message once, each
// writer's in order.
func inWriterOrder(bodies []string, n int) error {
	next := map[string]int{}
	for _, b := range bodies {
		i := strings.LastIndexByte(b, '-')
		w, k := b[:i], b[i+1:]
		if want := fmt.Sprint(next[w]); k != want {
			return fmt.Errorf("%s sent after %s-%d, want %s-%s", b, w, next[w]-1, w, want)
		}
		next[w]++
	}
	if len(bodies) != n {
		return fmt.Errorf("%d messages sent, want %d", len(bodies), n)
	}
	return nil
}

// storeWhileStopped stops e's hub, lets fill append to its store directly (as an earlier
// run or version left it), and starts the hub again on it.
func (e *env) storeWhileStopped(fill func(ctx context.Context, st *store.Store)) {
	t := e.t
	t.Helper()
	e.stop()
	st, err := store.Open(e.sopts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	fill(ctx, st)
	cancel()
	<-done
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	e.start(storeRunning)
}

func withPrefix(bodies []string, prefix string) []string {
	var out []string
	for _, b := range bodies {
		if strings.HasPrefix(b, prefix) {
			out = append(out, b)
		}
	}
	return out
}

// TestUpstreamLanes_LiveMessagesOvertakeABacklog is the store-and-forward promise: with a
// backlog of 50,000 messages from one sender, another sender's live messages reach the
// cloud at once, both when the link comes back and in the middle of the drain, while the
// backlog drains in order. Only the order of the sends at the link is asserted.
func TestUpstreamLanes_LiveMessagesOvertakeABacklog(t *testing.T) {
	const backlog = 50_000
	link := newDownLink()
	e := newEnv(t, upstreamRoute, withDownLink(link), waitOnLink)
	fillBacklog(t, e.store, "$upstream/edge1/modA", modA, "a", backlog)
	l := e.connect(leaf)
	l.send(t, "", nil, "live1")
	// Each sender tried one message, failed offline, and waits for the link.
	link.holdFrom.Store(2 + 10_000) // see below
	link.upWhenWaiting(t, 2)
	down := 2
	if n := len(withPrefix(link.sent()[:down], "a-")); n != 1 {
		t.Fatalf("sent %q while the link was down, want one attempt per sender", link.sent()[:down])
	}
	waitFor(t, "live1 sent", func() bool { return slices.Contains(link.sent()[down:], "live1") })
	if i := slices.Index(link.sent()[down:], "live1"); i > 200 {
		t.Fatalf("live1 was sent %d after the link came back, want it within the first turns (at most 200)", i)
	}

	// In the middle of the drain: the link holds its answers from the 10,000th message of
	// the backlog on, until the window is full; then a live message is stored, and once
	// the link answers again, it goes out within a turn.
	waitFor(t, "the window full", func() bool { return link.openCount() == hub.DefaultUpstreamWindow })
	l.send(t, "", nil, "live2")
	stored := len(link.sent())
	if want := down + 10_000 + hub.DefaultUpstreamWindow - 1; stored != want {
		t.Fatalf("%d messages sent when live2 was stored, want %d", stored, want)
	}
	link.holdFrom.Store(0)
	link.setHold(false)
	link.finishAll(nil)
	waitFor(t, "live2 sent", func() bool { return slices.Contains(link.sent(), "live2") })
	i := slices.Index(link.sent(), "live2")
	if i-stored > 200 {
		t.Fatalf("live2 was sent %d messages after it was stored, want at most one turn of the backlog (200)", i-stored)
	}
	if left := backlog + down - i; left < backlog/2 {
		t.Fatalf("live2 went out with only %d of the backlog left: it waited for the backlog", left)
	}

	waitFor(t, "the backlog drained", func() bool { return e.hub.Stats().SentUpstream == backlog+2 })
	if err := inWriterOrder(withPrefix(link.sent()[down:], "a-"), backlog); err != nil {
		t.Fatalf("backlog: %v", err)
	}
	if st := e.hub.Stats(); st.Sent["$upstream"] != backlog+2 || st.DeliveryFailures != 0 {
		t.Fatalf("stats %+v: want every message counted under $upstream, no failure", st)
	}
}

// TestUpstreamLanes_OrderPerSenderUnderConcurrentSenders: three clients publish at once;
// each one's messages reach the cloud in its order. A transient failure of one sender's
// message makes that sender alone start again from it: the others' messages are each sent
// once.
func TestUpstreamLanes_OrderPerSenderUnderConcurrentSenders(t *testing.T) {
	const n = 200
	link := newFakeLink(true)
	var once sync.Once
	link.result = func(_ int, body string, _ bool) error {
		var err error
		if body == "modA-7" {
			once.Do(func() { err = errors.New("throttled") })
		}
		return err
	}
	e := newEnv(t, upstreamRoute, withLink(link))
	senders := map[string]sas.Identity{"modA": modA, "modB": modB, "leaf": leaf}
	var wg sync.WaitGroup
	for name, id := range senders {
		c := e.connect(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				tok := c.Publish(c.topic("", nil), 1, false, fmt.Sprintf("%s-%d", name, i))
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Errorf("%s publish %d: no PUBACK (%v)", name, i, tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every message acknowledged", func() bool { return e.hub.Stats().SentUpstream == 3*n })

	sent := link.sent()
	seq := func(name string, from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("%s-%d", name, i))
		}
		return out
	}
	for _, name := range []string{"modB", "leaf"} {
		if got := withPrefix(sent, name+"-"); !slices.Equal(got, seq(name, 0, n)) {
			t.Errorf("%s: sent %d messages %q..., want %d in order, once each", name, len(got), got[:min(5, len(got))], n)
		}
	}
	// Nothing of modA is sent after its failed message until that one is sent again.
	if got, want := withPrefix(sent, "modA-"), append(seq("modA", 0, 8), seq("modA", 7, n)...); !slices.Equal(got, want) {
		t.Errorf("modA: sent %q..., want 0..7, then 7..%d again from the failed one", got[:min(12, len(got))], n-1)
	}
	if st := e.hub.Stats(); st.DeliveryFailures != 1 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: want one failure, nothing dead-lettered", st)
	}
	// One store queue per sender, named for it.
	for _, q := range []string{"$upstream/edge1/modA", "$upstream/edge1/modB", "$upstream/leaf1"} {
		if !slices.Contains(e.store.Queues(), q) {
			t.Errorf("store queues %q: no %q", e.store.Queues(), q)
		}
	}
}

// TestUpstreamLanes_SharedQueueOfEarlierVersionsDrains: messages stored by an earlier
// version in the one "$upstream" queue still reach the cloud, in order, next to the
// senders' queues, also when no route leads to $upstream any more.
func TestUpstreamLanes_SharedQueueOfEarlierVersionsDrains(t *testing.T) {
	tests := []struct {
		name   string
		routes envOption
		live   bool // a client sends to $upstream too
	}{
		{"with the route", upstreamRoute, true},
		{"route removed", withRoutes(map[string]string{}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const old = 300
			link := newDownLink()
			e := newEnv(t, tt.routes, withDownLink(link), waitOnLink)
			// What an earlier version left: one queue for all senders, in order.
			e.storeWhileStopped(func(ctx context.Context, st *store.Store) {
				for i := range old {
					sender := []sas.Identity{modA, leaf}[i%2]
					if err := st.Append(ctx, hub.StoredMessage(sender, fmt.Sprint("old-", i)), []store.Target{{Queue: "$upstream"}}); err != nil {
						t.Fatal(err)
					}
				}
			})
			want, senders := old, 1
			if tt.live {
				e.connect(leaf).send(t, "", nil, "new-0")
				want, senders = want+1, 2
			}
			link.upWhenWaiting(t, senders)
			waitFor(t, "everything sent", func() bool { return e.hub.Stats().SentUpstream == int64(want) })
			var got []string
			for i := range old {
				got = append(got, fmt.Sprint("old-", i))
			}
			if sent := withPrefix(link.sent(), "old-"); !slices.Equal(dedupFirstAttempt(sent), got) {
				t.Fatalf("the shared queue sent %d messages %q..., want %d in order", len(sent), sent[:min(5, len(sent))], old)
			}
			if err := e.store.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, q := range e.store.Stats().Queues {
				if q.Len != 0 {
					t.Errorf("queue %q priority %d still holds %d messages", q.Queue, q.Priority, q.Len)
				}
			}
		})
	}
}

// dedupFirstAttempt drops a leading attempt made while the link was down (the first
// message, sent again once it is up).
func dedupFirstAttempt(sent []string) []string {
	if len(sent) > 1 && sent[0] == sent[1] {
		return sent[1:]
	}
	return sent
}

// TestUpstreamLanes_TurnsShareTheWindow: with the link holding every answer, the window
// fills with turns of hub.UpstreamTurn messages per sender, in the order of the senders'
// queues, and one sender alone fills it too.
func TestUpstreamLanes_TurnsShareTheWindow(t *testing.T) {
	const turn, window = hub.UpstreamTurn, hub.DefaultUpstreamWindow
	seq := func(name string, from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("%s-%d", name, i))
		}
		return out
	}
	tests := []struct {
		name    string
		senders []sas.Identity // n messages each, stored before the hub starts
		n       int
		want    []string // the first window of sends
	}{
		{
			name: "one sender", senders: []sas.Identity{leaf}, n: 2 * window,
			want: seq("leaf1", 0, window),
		},
		{
			name: "three senders", senders: []sas.Identity{leaf, modB, modA}, n: 100,
			// Queues in name order: $upstream/edge1/modA, $upstream/edge1/modB,
			// $upstream/leaf1. A turn ends early when its sender has nothing left.
			want: slices.Concat(seq("modA", 0, turn), seq("modB", 0, turn), seq("leaf1", 0, turn),
				seq("modA", turn, 100), seq("modB", turn, turn+window-3*turn-(100-turn))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link := newFakeLink(true)
			link.hold = true
			e := newEnv(t, upstreamRoute, withLink(link))
			e.storeWhileStopped(func(ctx context.Context, st *store.Store) {
				for _, id := range tt.senders {
					name := id.ModuleID
					q := "$upstream/" + id.DeviceID + "/" + id.ModuleID
					if name == "" {
						name, q = id.DeviceID, "$upstream/"+id.DeviceID
					}
					for i := range tt.n {
						if err := st.Append(ctx, hub.StoredMessage(id, fmt.Sprintf("%s-%d", name, i)), []store.Target{{Queue: q}}); err != nil {
							t.Fatal(err)
						}
					}
				}
			})
			waitFor(t, "the window full", func() bool { return link.openCount() == window })
			if got := link.sent(); !slices.Equal(got, tt.want) {
				t.Fatalf("sent %d messages:\n%q\nwant %d:\n%q", len(got), got, len(tt.want), tt.want)
			}
			link.setHold(false)
			link.finishAll(nil)
			waitFor(t, "everything sent", func() bool { return e.hub.Stats().SentUpstream == int64(tt.n*len(tt.senders)) })
		})
	}
}
