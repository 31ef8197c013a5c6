package main

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		in   []float64
		want summary
	}{
		{name: "empty", in: nil, want: summary{}},
		{name: "only failed runs", in: []float64{nan, nan}, want: summary{}},
		{name: "one", in: []float64{7}, want: summary{Median: 7, Min: 7, Max: 7, N: 1}},
		{name: "odd count, unsorted", in: []float64{5, 1, 9, 3, 7}, want: summary{Median: 5, Min: 1, Max: 9, N: 5}},
		{name: "even count takes the mean of the middle two", in: []float64{4, 1, 3, 2}, want: summary{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{name: "failed runs are left out", in: []float64{nan, 10, 20, nan, 30}, want: summary{Median: 20, Min: 10, Max: 30, N: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Fatalf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "empty", sorted: nil, p: 50, want: 0},
		{name: "single", sorted: []time.Duration{3}, p: 99, want: 3},
		{name: "p50 of 1..100", sorted: hundred, p: 50, want: 50 * time.Millisecond},
		{name: "p99 of 1..100", sorted: hundred, p: 99, want: 99 * time.Millisecond},
		{name: "p100 is the max", sorted: hundred, p: 100, want: 100 * time.Millisecond},
		{name: "tiny p is the min", sorted: hundred, p: 0.001, want: time.Millisecond},
		{name: "p99 of 10 values is the max", sorted: hundred[:10], p: 99, want: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestPayload_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		size int
		id   uint64
		sent time.Duration
	}{
		{name: "1 KB", size: 1024, id: 12345, sent: 3 * time.Second},
		{name: "smaller than the header still carries it", size: 4, id: 1, sent: 1},
		{name: "largest id", size: 256, id: math.MaxUint64, sent: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := payload(tt.size, tt.id, tt.sent)
			if len(b) != max(tt.size, headerSize) {
				t.Fatalf("len = %d, want %d", len(b), max(tt.size, headerSize))
			}
			id, sent, ok := parsePayload(b)
			if !ok || id != tt.id || sent != tt.sent {
				t.Fatalf("parsePayload = %d, %v, %v; want %d, %v, true", id, sent, ok, tt.id, tt.sent)
			}
		})
	}
	if _, _, ok := parsePayload(make([]byte, headerSize-1)); ok {
		t.Fatal("a payload shorter than the header parsed")
	}
}
