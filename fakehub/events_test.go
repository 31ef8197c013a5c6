package fakehub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func TestEvents_PagingWaitAndStream(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connectRaw(t, s, cs)
	send := func(i int) {
		t.Helper()
		c.publish("devices/dev1/messages/events/", []byte(fmt.Sprint(i)), 1, uint16(i))
		if typ, _, err := c.read(); err != nil || typ != 0x40 {
			t.Fatalf("PUBACK: %#x %v", typ, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	stream := s.SubscribeEvents(ctx, 1) // a buffer of one, never read until the end
	waited := make(chan []int64, 1)
	go func() {
		evs, err := s.WaitEvents(context.Background(), 0, 10)
		if err != nil {
			waited <- nil
			return
		}
		var seqs []int64
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		waited <- seqs
	}()
	for i := 1; i <= 4; i++ {
		send(i)
	}
	select {
	case seqs := <-waited:
		if len(seqs) == 0 || seqs[0] != 1 {
			t.Fatalf("WaitEvents returned %v", seqs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitEvents did not return")
	}

	evs := s.Events(1, 2)
	if len(evs) != 2 || evs[0].Seq != 2 || evs[1].Seq != 3 || string(evs[1].Body) != "3" {
		t.Fatalf("Events(1, 2) = %+v", evs)
	}
	if evs := s.Events(4, 0); len(evs) != 0 {
		t.Fatalf("Events(4, 0) = %+v", evs)
	}
	// The returned events are copies.
	evs[0].Properties["x"] = "y"
	if s.Events(1, 1)[0].Properties["x"] == "y" {
		t.Fatal("Events shares maps with the log")
	}

	// The stream kept the first event; the other three did not fit and were counted.
	if got := s.DroppedEvents(); got != 3 {
		t.Fatalf("DroppedEvents = %d, want 3", got)
	}
	if ev := <-stream; ev.Seq != 1 {
		t.Fatalf("streamed %+v", ev)
	}
	cancel()
	waitFor(t, "stream closed", func() bool {
		select {
		case _, ok := <-stream:
			return !ok
		default:
			return false
		}
	})

	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := s.WaitEvents(ctx2, 4, 0); err == nil {
		t.Fatal("WaitEvents without new events returned no error")
	}
}
