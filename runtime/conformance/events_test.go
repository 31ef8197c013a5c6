package conformance

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

func TestCaptureHandler_RecordsInfoAndAbove(t *testing.T) {
	l := newEventLog()
	l.setInstance(2)
	log := slog.New(&captureHandler{log: l, next: slog.DiscardHandler})
	log.Debug("noise", "client_id", "e/m")
	log.With("client_id", "e/m").With("remote", "127.0.0.1:1").Info(msgConnected, "clean_session", false)
	log.WithGroup("g").Warn(msgPublishRefused, "client_id", "e/m", "topic", "devices/e/modules/x/messages/events/")
	evs, _ := l.snapshot()
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2 (debug is not recorded): %+v", len(evs), evs)
	}
	if e := evs[0]; e.Msg != msgConnected || e.Instance != 2 || e.Attrs["client_id"] != "e/m" || e.Attrs["remote"] != "127.0.0.1:1" || e.Attrs["clean_session"] != "false" {
		t.Errorf("first event %+v", e)
	}
	if e := evs[1]; e.Attrs["topic"] != "devices/e/modules/x/messages/events/" || e.Level != slog.LevelWarn {
		t.Errorf("second event %+v", e)
	}
}

func TestEventLog_Bounded(t *testing.T) {
	l := newEventLog()
	for range maxEvents + 5 {
		l.add(event{Msg: "x"})
	}
	evs, _ := l.snapshot()
	if len(evs) != maxEvents || l.dropped != 5 {
		t.Errorf("%d events kept, %d dropped", len(evs), l.dropped)
	}
}

func TestEventLog_WaitFor(t *testing.T) {
	l := newEventLog()
	match := func(e event) bool { return e.Msg == "b" }
	go func() {
		l.add(event{Msg: "a"})
		l.add(event{Msg: "b"})
	}()
	if e, ok := l.waitFor(context.Background(), 10*time.Second, match); !ok || e.Msg != "b" {
		t.Fatalf("waitFor = %+v, %v", e, ok)
	}
	if _, ok := l.waitFor(context.Background(), 10*time.Millisecond, func(e event) bool { return e.Msg == "c" }); ok {
		t.Error("waitFor matched an event that never came")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := l.waitFor(ctx, time.Hour, func(e event) bool { return e.Msg == "c" }); ok {
		t.Error("waitFor matched after its ctx ended")
	}
}
