package docker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/outpost-edge/outpost/runtime/agent"
)

func die(name string, at time.Time) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionDie, TimeNano: at.UnixNano(),
		Actor: events.Actor{ID: "id-" + name, Attributes: map[string]string{"name": name, "exitCode": "137"}}}
}

// recv reads one name from ch, failing after timeout.
func recv(t *testing.T, ch <-chan string, timeout time.Duration) string {
	t.Helper()
	select {
	case name, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return name
	case <-time.After(timeout):
		t.Fatalf("no exit within %s", timeout)
		return ""
	}
}

func TestWatchExits_ReconnectsAndReplays(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	f := &fakeEngine{streams: []fakeStream{
		{msgs: []events.Message{die("tempSensor", t1)}, err: errors.New("unexpected EOF")},
		{err: errors.New("connection refused")},
		{msgs: []events.Message{die("filter", t1.Add(time.Second))}},
	}}
	rt := newRuntime(f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := rt.WatchExits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, 5*time.Second); got != "tempSensor" {
		t.Errorf("first exit %q, want tempSensor", got)
	}
	if got := recv(t, ch, 5*time.Second); got != "filter" {
		t.Errorf("exit after the reconnects %q, want filter", got)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("an exit after ctx ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}

	f.mu.Lock()
	opts := f.eventsOpts
	f.mu.Unlock()
	if len(opts) < 3 {
		t.Fatalf("%d Events calls, want 3 (two reconnects)", len(opts))
	}
	for i, o := range opts {
		for _, want := range [][2]string{{"type", "container"}, {"event", "die"}, {"label", agent.LabelOwner + "=" + agent.Owner}} {
			if !o.Filters.ExactMatch(want[0], want[1]) {
				t.Errorf("call %d: filter %s=%s missing: %v", i, want[0], want[1], o.Filters)
			}
		}
	}
	// After the first stream broke, the replay starts at its last event.
	if want := "1772366400.123456789"; opts[1].Since != want || opts[2].Since != want {
		t.Errorf("reconnects since %q, %q; want %q (the last event seen)", opts[1].Since, opts[2].Since, want)
	}
}

func TestWatchExits_NeverBlocksOnAFullChannel(t *testing.T) {
	now := time.Now()
	var msgs []events.Message
	for range watchBuffer * 3 {
		msgs = append(msgs, die("m", now))
	}
	f := &fakeEngine{streams: []fakeStream{{msgs: msgs}, {msgs: []events.Message{die("last", now)}}}}
	rt := newRuntime(f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := rt.WatchExits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The stream is drained although nobody reads: the watch drops what
	// does not fit, and stays on its stream (no reconnect).
	checkFor(t, 5*time.Second, func() error {
		if len(ch) != watchBuffer {
			return errors.New("buffer not full yet")
		}
		return nil
	})
	f.mu.Lock()
	calls := len(f.eventsOpts)
	f.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d Events calls, want 1", calls)
	}
}

func TestWatchExits_EndedContext(t *testing.T) {
	rt := newRuntime(&fakeEngine{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rt.WatchExits(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("WatchExits on an ended ctx: %v, want context.Canceled", err)
	}
}
