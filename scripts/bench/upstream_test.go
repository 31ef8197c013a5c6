package main

import (
	"context"
	"errors"
	"testing"
	"time"
	"unicode/utf8"
)

func TestUpBody_RoundTrip(t *testing.T) {
	sent := time.Unix(1_800_000_000, 123456789)
	cases := []struct {
		name   string
		size   int
		sender int
		seq    uint64
	}{
		{"1 KB", 1024, 3, 77},
		{"smaller than the header", 4, 0, 0},
		{"largest sender and seq", 256, 65535, 1<<64 - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := upBody(tc.size, tc.sender, tc.seq, sent)
			if len(b) != max(tc.size, upHeaderSize) {
				t.Fatalf("%d bytes, want %d", len(b), max(tc.size, upHeaderSize))
			}
			if utf8.Valid(b) {
				t.Fatal("the body is valid UTF-8: the fake hub would return it twice (base64 and text)")
			}
			sender, seq, at, ok := parseUpBody(b)
			if !ok || sender != tc.sender || seq != tc.seq || !at.Equal(sent) {
				t.Fatalf("parsed (%d, %d, %v, %v), want (%d, %d, %v, true)", sender, seq, at, ok, tc.sender, tc.seq, sent)
			}
		})
	}
	for _, bad := range [][]byte{nil, []byte("hello, world: not ours at all"), make([]byte, upHeaderSize)} {
		if _, _, _, ok := parseUpBody(bad); ok {
			t.Errorf("parseUpBody(%q) accepted a body that is not the scenarios'", bad)
		}
	}
}

func TestCheckArrivals(t *testing.T) {
	ev := func(sender int, seq uint64) cloudEvent { return cloudEvent{Body: upBody(32, sender, seq, time.Now())} }
	cases := []struct {
		name  string
		evs   []cloudEvent
		acked []int
		want  arrivals
	}{
		{"in order", []cloudEvent{ev(0, 0), ev(1, 0), ev(0, 1), ev(1, 1)}, []int{2, 2}, arrivals{Unique: 4}},
		{"senders interleave freely", []cloudEvent{ev(1, 0), ev(1, 1), ev(0, 0)}, []int{1, 2}, arrivals{Unique: 3}},
		{"a duplicate", []cloudEvent{ev(0, 0), ev(0, 1), ev(0, 1)}, []int{2}, arrivals{Unique: 2, Dups: 1}},
		{"resent after a loss: duplicates, in order", []cloudEvent{ev(0, 0), ev(0, 1), ev(0, 0), ev(0, 1), ev(0, 2)}, []int{3}, arrivals{Unique: 3, Dups: 2}},
		{"missing", []cloudEvent{ev(0, 0), ev(0, 2)}, []int{3}, arrivals{Unique: 2, Missing: 1}},
		{"out of order", []cloudEvent{ev(0, 1), ev(0, 0)}, []int{2}, arrivals{Unique: 2, OutOfOrder: 1}},
		{"not acknowledged but arrived", []cloudEvent{ev(0, 0), ev(0, 1)}, []int{1}, arrivals{Unique: 2}},
		{"unknown sender", []cloudEvent{ev(5, 0)}, []int{0}, arrivals{Unknown: 1}},
		{"not our body", []cloudEvent{{Body: []byte("{}")}}, []int{0}, arrivals{Unknown: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkArrivals(tc.evs, tc.acked); got != tc.want {
				t.Fatalf("checkArrivals = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSeqSearch_FindsTheLatestEvent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		known, last int64
	}{
		{"none", 0, 0},
		{"one", 0, 1},
		{"known is the latest", 40, 40},
		{"far ahead", 3, 1_000_003},
		{"just ahead", 99, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			got, err := seqSearch(context.Background(), tc.known, func(_ context.Context, seq int64) (bool, error) {
				asked++
				return seq >= 1 && seq <= tc.last, nil
			})
			if err != nil || got != tc.last {
				t.Fatalf("seqSearch = %d, %v; want %d", got, err, tc.last)
			}
			if asked > 2*64 {
				t.Fatalf("%d questions: not a logarithmic search", asked)
			}
		})
	}
	boom := errors.New("boom")
	if _, err := seqSearch(context.Background(), 0, func(context.Context, int64) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the probe's", err)
	}
}

func TestParseMetricLine(t *testing.T) {
	cases := []struct {
		line         string
		name, labels string
		value        float64
		ok           bool
	}{
		{`outpost_edgehub_store_bytes{edge_device="e1",iothub="h"} 1.6776084e+07`, "outpost_edgehub_store_bytes", `edge_device="e1",iothub="h"`, 16776084, true},
		{`up 1`, "up", "", 1, true},
		{`# HELP up whether it is up`, "", "", 0, false},
		{``, "", "", 0, false},
		{`broken`, "", "", 0, false},
		{`x{} notanumber`, "x", "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			name, labels, v, ok := parseMetricLine(tc.line)
			if ok != tc.ok || (ok && (name != tc.name || labels != tc.labels || v != tc.value)) {
				t.Fatalf("parseMetricLine = (%q, %q, %v, %v), want (%q, %q, %v, %v)", name, labels, v, ok, tc.name, tc.labels, tc.value, tc.ok)
			}
		})
	}
}

func TestLiveLatencies_OncePerMessage(t *testing.T) {
	var ls liveLatencies
	now := time.Now()
	for i := range 100 {
		ls.add(liveKey{sender: 1, seq: uint64(i)}, now, time.Duration(i+1)*time.Millisecond)
	}
	ls.add(liveKey{sender: 1, seq: 99}, now, time.Hour) // a duplicate arrival: not a second sample
	got := ls.stats()
	want := liveStats{P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, N: 100}
	if got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
	if (&liveLatencies{}).stats() != (liveStats{}) {
		t.Fatal("no samples must give the zero stats")
	}
}
