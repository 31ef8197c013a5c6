package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// These tests run the harness's measurements end to end against the real edgehub (built
// once from ./cmd/edgehub) and, when installed, Mosquitto. They check that the
// measurements complete and are consistent, never how fast anything is.

var hubBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if hubBuild.dir != "" {
		os.RemoveAll(hubBuild.dir)
	}
	os.Exit(code)
}

// mustHub builds cmd/edgehub once per test binary.
func mustHub(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs cmd/edgehub")
	}
	hubBuild.once.Do(func() {
		if hubBuild.dir, hubBuild.err = os.MkdirTemp("", "bench-test-"); hubBuild.err != nil {
			return
		}
		hubBuild.bin = filepath.Join(hubBuild.dir, "edgehub")
		cmd := exec.Command("go", "build", "-o", hubBuild.bin, "./cmd/edgehub")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			hubBuild.err = &buildError{err: err, out: string(out)}
		}
	})
	if hubBuild.err != nil {
		t.Fatalf("building edgehub: %v", hubBuild.err)
	}
	return hubBuild.bin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// testKinds is the hub and, when installed, Mosquitto.
func testKinds(t *testing.T) []brokerKind {
	kinds := []brokerKind{hubKind("Outpost hub", mustHub(t), nil)}
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return append(kinds, mosquittoKind(path))
		}
	}
	t.Log("mosquitto is not installed: testing against the hub only")
	return kinds
}

func mustStart(t *testing.T, ctx context.Context, k brokerKind, publishers int) *broker {
	t.Helper()
	b, err := k.start(ctx, t.TempDir(), publishers)
	if err != nil {
		t.Fatalf("start %s: %v", k.Label, err)
	}
	t.Cleanup(func() {
		if err := b.stop(); err != nil {
			t.Errorf("stop %s: %v", k.Label, err)
		}
	})
	return b
}

// testContext bounds a test that talks to a broker (a hang fails, it does not block).
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestMeasureThroughput(t *testing.T) {
	for _, k := range testKinds(t) {
		t.Run(k.ID, func(t *testing.T) {
			ctx := testContext(t)
			b := mustStart(t, ctx, k, 3)
			r, err := measureThroughput(ctx, b, 3, 300, 601, 8) // 601 rounds down to 600, 200 each
			if err != nil {
				t.Fatal(err)
			}
			if r.Delivered <= 0 || r.Acked <= 0 || r.Dups != 0 || r.CPU.Broker < 0 {
				t.Fatalf("run = %+v: want positive rates and no duplicate", r)
			}
		})
	}
}

func TestMeasureLatency(t *testing.T) {
	for _, k := range testKinds(t) {
		t.Run(k.ID, func(t *testing.T) {
			ctx := testContext(t)
			b := mustStart(t, ctx, k, 2)
			r, err := measureLatency(ctx, b, 2, 1024, 400, 100*time.Millisecond, 500*time.Millisecond, 100)
			if err != nil {
				t.Fatal(err)
			}
			// 400 msg/s for 0.5 s after the warm-up: about 200 samples (pacing may shift one or two).
			if r.Samples < 150 || r.Samples > 240 {
				t.Errorf("samples = %d, want about 200", r.Samples)
			}
			if r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max {
				t.Errorf("run = %+v: want 0 < p50 <= p99 <= max", r)
			}
			if r.Offered <= 0 {
				t.Errorf("offered rate %v", r.Offered)
			}
		})
	}
}

func TestMeasureMemory(t *testing.T) {
	for _, k := range testKinds(t) {
		t.Run(k.ID, func(t *testing.T) {
			ctx := testContext(t)
			b := mustStart(t, ctx, k, 5)
			r, err := measureMemory(ctx, b, 5, 256, 100, 50*time.Millisecond, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if r.Idle <= 0 || r.Loaded <= 0 || r.Loaded > r.Peak {
				t.Fatalf("run = %+v: want 0 < idle, 0 < loaded <= peak", r)
			}
		})
	}
}

func TestMeasureThroughput_FailsWhenMessagesDoNotArrive(t *testing.T) {
	ctx := testContext(t)
	b := mustStart(t, ctx, hubKind("Outpost hub", mustHub(t), nil), 1)
	// The publisher sends to an output no route reads: the hub acknowledges and drops
	// every message, none can arrive, and the run must end with an error when its context
	// does, not hang or report a rate.
	routed := b.publisher
	b.publisher = func(i int) clientSpec {
		s := routed(i)
		s.Topic = iothub.TelemetryTopic(benchDevice, publisherModule(i), iothub.Bag{{Key: "$.on", Value: "unrouted"}})
		return s
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := measureThroughput(short, b, 1, 64, 10, 4)
	if err == nil || !strings.Contains(err.Error(), "0 of 10 messages delivered") {
		t.Fatalf("err = %v, want 0 of 10 delivered", err)
	}
}

func TestHubConfig_IsValid(t *testing.T) {
	var cfg struct {
		EdgeHub    json.RawMessage `json:"edgeHub"`
		Identities []struct {
			DeviceID, ModuleID string
		} `json:"identities"`
	}
	if err := json.Unmarshal(hubConfig(3, "QUFBQQ=="), &cfg); err != nil {
		t.Fatal(err)
	}
	hc, err := deployment.ParseHub(cfg.EdgeHub)
	if err != nil {
		t.Fatalf("edgeHub section does not parse: %v", err)
	}
	if len(hc.Routes) != 3 || len(cfg.Identities) != 4 {
		t.Fatalf("%d routes and %d identities, want 3 and 4 (3 publishers and the sink)", len(hc.Routes), len(cfg.Identities))
	}
}
