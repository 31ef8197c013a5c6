package main

import (
	"bytes"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *report {
	ch := &chart{Title: "throughput", Series: []string{"Outpost hub", "Mosquitto"},
		Groups: []barGroup{
			{Label: "1 KB x1", Bars: []summary{{Median: 2000, Min: 1900, Max: 2100, N: 3}, {Median: 40000, Min: 38000, Max: 41000, N: 3}}},
			{Label: "1 KB x16", Bars: []summary{{Median: 9000, Min: 8000, Max: 9500, N: 3}, {}}},
		},
		Lines: []refLine{{Value: 20000, Label: "target", From: 0, To: 2}}}
	return &report{
		Sections: []*section{{
			ID: "throughput", Title: "Durable routed throughput", Intro: "How it is measured.",
			Tables: []table{{Header: []string{"case", "msg/s"}, Rows: [][]string{{"a|b", "9,000"}}}},
			Code:   []string{"flat  flat%"},
			Notes:  []string{"run 2 failed"},
			Checks: []check{{ID: checkDurable, Area: "durable", Target: "≥ 20,000 msg/s", Measured: "9,000 msg/s"},
				{ID: "memory", Area: "memory", Target: "≤ 40 MB", Measured: "21 MiB", Met: true}},
			Chart: ch,
		}},
		Machine:  machine{CPU: "AMD EPYC", Cores: 2, Kernel: "6.1", Go: "go1.26.8", Commit: "abc123", Date: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)},
		Settings: settings{Runs: 3},
		Command:  "BENCH_RUNS=3 make bench",
		Findings: "The pump waits.\n",
		Chart:    "benchmarks.png",
		Elapsed:  90 * time.Second,
	}
}

func TestReport_Write(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().write(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"# Benchmarks",
		"BENCH_RUNS=3 make bench",
		"3 runs per case",
		"| durable | ≥ 20,000 msg/s | 9,000 msg/s | **missed** |",
		"| memory | ≤ 40 MB | 21 MiB | met |",
		"![Durable routed throughput, Outpost hub and Mosquitto](benchmarks.png)",
		"## Durable routed throughput",
		`| a\|b | 9,000 |`, // a pipe in a cell does not split it
		"```text\nflat  flat%\n```",
		"- run 2 failed",
		"| CPU | AMD EPYC |",
		"| commit | abc123 |",
		"## Findings\n\nThe pump waits.\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "quick mode") {
		t.Error("a full run is labelled quick")
	}
	r := sampleReport()
	r.Settings.Quick = true
	buf.Reset()
	_ = r.write(&buf)
	if !strings.Contains(buf.String(), "quick mode") {
		t.Error("a quick run is not labelled so")
	}
}

func TestChart_Render(t *testing.T) {
	img := sampleReport().Sections[0].Chart.render(960, 480)
	if b := img.Bounds(); b.Dx() != 960 || b.Dy() != 480 {
		t.Fatalf("size %v", b)
	}
	count := func(c color.RGBA) int {
		n := 0
		for y := range 480 {
			for x := range 960 {
				if img.RGBAAt(x, y) == c {
					n++
				}
			}
		}
		return n
	}
	hub, ref, target := count(colSeries[0]), count(colSeries[1]), count(colTarget)
	if hub == 0 || ref == 0 || target == 0 {
		t.Fatalf("pixels: hub %d, reference %d, target %d; want all drawn", hub, ref, target)
	}
	// The reference's one bar (40,000) is taller than both hub bars together (11,000).
	if ref <= hub {
		t.Errorf("reference bar area %d <= hub's %d", ref, hub)
	}

	path := filepath.Join(t.TempDir(), "c.png")
	if err := writePNG(path, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("written chart does not decode: %v", err)
	}
}

func TestChart_RenderEmpty(t *testing.T) {
	// No successful run at all still draws axes, not a panic or a NaN scale.
	c := &chart{Title: "t", Series: []string{"a", "b"}, Groups: []barGroup{{Label: "x", Bars: []summary{{}, {}}}}}
	_ = c.render(320, 200)
}

func TestGlyphs_Wellformed(t *testing.T) {
	for r, g := range glyphs {
		for i, row := range g {
			if len(row) != glyphW || strings.Trim(row, ".#") != "" {
				t.Errorf("glyph %q row %d = %q: want %d of '.' and '#'", r, i, row, glyphW)
			}
		}
	}
	texts := "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ ,.:;/()-+=<>%" + throughputChartTitle + throughputChartXLabel +
		"Outpost hub Mosquitto target 20,000 (1 KB) 256 B x16"
	for _, r := range strings.ToUpper(texts) {
		if _, ok := glyphs[r]; !ok {
			t.Errorf("no glyph for %q", r)
		}
	}
}
