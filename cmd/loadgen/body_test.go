package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type body struct {
	Seq    uint64 `json:"seq"`
	Sender string `json:"sender"`
	SentAt string `json:"sentAt"`
	Pad    string `json:"pad"`
}

func TestBuildBody(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600, time.FixedZone("X", 2*3600))
	tests := []struct {
		name     string
		seq      uint64
		sender   string
		size     int
		wantSize int // 0: exactly size
	}{
		{name: "default size", seq: 1, sender: "loadgen", size: 1024},
		{name: "big sequence number", seq: 1<<64 - 1, sender: "loadgen", size: 1024},
		{name: "large", seq: 7, sender: "loadgen", size: maxMessageSize},
		{name: "exactly the unpadded size", seq: 1, sender: "lg", size: len(`{"seq":1,"sender":"lg","sentAt":"2025-01-02T01:04:05.000000600Z","pad":""}`)},
		{name: "too small to pad", seq: 1, sender: "lg", size: 10,
			wantSize: len(`{"seq":1,"sender":"lg","sentAt":"2025-01-02T01:04:05.000000600Z","pad":""}`)},
		{name: "zero", seq: 1, sender: "lg", size: 0,
			wantSize: len(`{"seq":1,"sender":"lg","sentAt":"2025-01-02T01:04:05.000000600Z","pad":""}`)},
		{name: "sender needing escapes", seq: 3, sender: `a"b\c`, size: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildBody(tt.seq, tt.sender, at, tt.size)
			want := tt.size
			if tt.wantSize != 0 {
				want = tt.wantSize
			}
			if len(b) != want {
				t.Errorf("%d bytes, want %d", len(b), want)
			}
			var got body
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", b, err)
			}
			if got.Seq != tt.seq || got.Sender != tt.sender || strings.Trim(got.Pad, "x") != "" {
				t.Errorf("decoded %+v", got)
			}
			sent, err := time.Parse(time.RFC3339Nano, got.SentAt)
			if err != nil || !sent.Equal(at) || !strings.HasSuffix(got.SentAt, "Z") {
				t.Errorf("sentAt %q (%v), want %v in UTC", got.SentAt, err, at)
			}
		})
	}
}

func TestBuildBody_ConstantSizeAcrossTimes(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2025, 6, 1, 12, 0, 0, 100, time.Local),
	} {
		if n := len(buildBody(42, "loadgen", at, 512)); n != 512 {
			t.Errorf("%v: %d bytes, want 512", at, n)
		}
	}
}

// FuzzBuildBody checks that every body is JSON that decodes back to its inputs and has the
// asked size whenever that size can hold it.
func FuzzBuildBody(f *testing.F) {
	f.Add(uint64(1), "loadgen", int64(0), 1024)
	f.Add(uint64(1<<63), `odd"name\`, int64(1<<40), 10)
	f.Add(uint64(0), "", int64(-1<<40), 150)
	f.Fuzz(func(t *testing.T, seq uint64, sender string, unixNano int64, size int) {
		if size < 0 || size > 1<<16 {
			return
		}
		at := time.Unix(0, unixNano)
		b := buildBody(seq, sender, at, size)
		var got body
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("body %q is not JSON: %v", b, err)
		}
		if got.Seq != seq {
			t.Fatalf("seq %d, want %d", got.Seq, seq)
		}
		unpadded := len(buildBody(seq, sender, at, 0))
		if size >= unpadded && len(b) != size {
			t.Fatalf("%d bytes, want %d", len(b), size)
		}
		if size < unpadded && len(b) != unpadded {
			t.Fatalf("%d bytes, want the unpadded %d", len(b), unpadded)
		}
	})
}
