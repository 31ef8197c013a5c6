package main

import (
	"math"
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"thousands small", thousands(999), "999"},
		{"thousands", thousands(1234567.4), "1,234,567"},
		{"thousands rounds", thousands(19999.5), "20,000"},
		{"thousands negative", thousands(-4321), "-4,321"},
		{"thousands NaN", thousands(math.NaN()), "n/a"},
		{"rate failed", rate(summary{}), "failed"},
		{"rate single run", rate(summary{Median: 9329, Min: 9329, Max: 9329, N: 1}), "9,329"},
		{"rate spread", rate(summary{Median: 9000, Min: 8000, Max: 12000, N: 5}), "9,000 (8,000–12,000)"},
		{"millis small", millis(summary{Median: float64(580 * time.Microsecond), N: 1}), "0.58"},
		{"millis tens", millis(summary{Median: float64(15080 * time.Microsecond), N: 1}), "15.1"},
		{"millis spread", millis(summary{Median: 1e6, Min: 5e5, Max: 2e8, N: 3}), "1.00 (0.50–200)"},
		{"mebibytes", mebibytes(summary{Median: 21 << 20, Min: 20 << 20, Max: 22 << 20, N: 2}), "21.0 MiB (20.0–22.0)"},
		{"ratio", ratio(summary{Median: 1, N: 1}, summary{Median: 4, N: 1}), "0.25x"},
		{"ratio without reference", ratio(summary{Median: 1, N: 1}, summary{}), "n/a"},
		{"size bytes", sizeLabel(256), "256 B"},
		{"size KB", sizeLabel(1024), "1 KB"},
		{"verdict met", verdict(true), "met"},
		{"verdict missed", verdict(false), "**missed**"},
		{"meminfo", kibToGiB("24684084 kB"), "23.5 GiB"},
		{"meminfo in another unit", kibToGiB("3 MB"), "3 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestNiceStep(t *testing.T) {
	tests := []struct{ in, want float64 }{
		{0, 1}, {0.7, 1}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {9000, 10000}, {12000, 20000}, {45000, 50000},
	}
	for _, tt := range tests {
		if got := niceStep(tt.in); got != tt.want {
			t.Errorf("niceStep(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
