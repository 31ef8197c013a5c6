package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/cmd/internal/modulemain/modulemaintest"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

// These tests run the module against the fake IoT Hub over MQTT/TLS on loopback.

func TestRun_SendsCountThenExits(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "loadgen")
	env["MessageCount"] = "60"
	env["MessageSize"] = "300"
	env["Outputs"] = "a,b,c"
	env["InFlight"] = "8"
	m := modulemaintest.Start(t, run, env)
	if code := m.Wait(); code != modulemain.ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "INFO", `msg="loadgen summary" module=loadgen sent=60 failed=0 unfinished=0`)

	evs := modulemaintest.Events(t, s, "edge1", "loadgen", 0, 60)
	seen := map[uint64]bool{}
	batch := evs[0].Properties["batchId"]
	for _, ev := range evs {
		var b body
		if err := json.Unmarshal(ev.Body, &b); err != nil {
			t.Fatalf("body %s: %v", ev.Body, err)
		}
		if len(ev.Body) != 300 {
			t.Errorf("seq %d: %d bytes, want 300", b.Seq, len(ev.Body))
		}
		if b.Sender != "loadgen" || ev.Properties["sequenceNumber"] != strconv.FormatUint(b.Seq, 10) || ev.Properties["batchId"] != batch {
			t.Errorf("seq %d: sender %q, properties %v", b.Seq, b.Sender, ev.Properties)
		}
		if want := []string{"a", "b", "c"}[(b.Seq-1)%3]; ev.SystemProperties["$.on"] != want {
			t.Errorf("seq %d on output %q, want %q", b.Seq, ev.SystemProperties["$.on"], want)
		}
		if ev.SystemProperties["content-type"] != "application/json" {
			t.Errorf("seq %d: system properties %v", b.Seq, ev.SystemProperties)
		}
		if seen[b.Seq] {
			t.Errorf("seq %d sent twice", b.Seq)
		}
		seen[b.Seq] = true
	}
	for n := uint64(1); n <= 60; n++ {
		if !seen[n] {
			t.Errorf("seq %d missing", n)
		}
	}
}

func TestRun_RateIsRespected(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "loadgen")
	env["MessageCount"] = "11"
	env["Rate"] = "50"
	m := modulemaintest.Start(t, run, env)
	if code := m.Wait(); code != modulemain.ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	// The 11th message is due 10/50 s = 200 ms after the first: the run cannot be shorter.
	match := regexp.MustCompile(`msg="loadgen summary" .*sent=11 .*elapsed=(\S+)`).FindStringSubmatch(m.Stderr())
	if match == nil {
		t.Fatalf("no summary line in:\n%s", m.Stderr())
	}
	elapsed, err := time.ParseDuration(match[1])
	if err != nil || elapsed < 200*time.Millisecond {
		t.Errorf("elapsed %q (%v), want at least 200ms at 50 messages/s", match[1], err)
	}
}

func TestRun_StopsOnSignalWithSummary(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "loadgen")
	env["Rate"] = "200" // MessageCount 0: forever
	m := modulemaintest.Start(t, run, env)
	modulemaintest.Events(t, s, "edge1", "loadgen", 0, 5)
	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "INFO", "loadgen summary")
}

func TestRun_BadConfiguration(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "loadgen")
	env["Rate"] = "-1"
	env["InFlight"] = "none"
	m := modulemaintest.Start(t, run, env)
	if code := m.Wait(); code != modulemain.ExitConfig {
		t.Errorf("exit code %d, want %d", code, modulemain.ExitConfig)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "ERROR", "Rate")
	modulemaintest.RequireLogLine(t, m.Stderr(), "ERROR", "InFlight")
}

func TestBinary_StaticAndStopsOnSIGTERM(t *testing.T) {
	bin := modulemaintest.BuildStatic(t)
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "loadgen")
	env["Rate"] = "100"
	p := modulemaintest.StartProcess(t, bin, env)
	modulemaintest.Events(t, s, "edge1", "loadgen", 0, 3)
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	modulemaintest.RequireLogLine(t, p.Stderr(), "INFO", "loadgen summary")
}
