package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/cmd/internal/modulemain/modulemaintest"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    faults
		wantErr bool
	}{
		{in: "", want: faults{}},
		{in: "identity", want: faults{identity: true}},
		{in: " Sigterm , memory ", want: faults{sigterm: true, memory: true}},
		{in: "identity,sigterm,reconnect,memory", want: faults{true, true, true, true}},
		{in: "reconnect,", want: faults{reconnect: true}},
		{in: "crash", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseFaults(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v (error %v)", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, modulemain.ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	if s := (faults{sigterm: true, memory: true}).String(); s != "sigterm,memory" {
		t.Errorf("String() = %q", s)
	}
}

// fakeClient records what the module sends and reports.
type fakeClient struct {
	mu       sync.Mutex
	outputs  []string
	sent     []iothub.Message
	reported []map[string]any
	closed   int
}

func (f *fakeClient) SendOutput(_ context.Context, output string, m iothub.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outputs, f.sent = append(f.outputs, output), append(f.sent, m)
	return nil
}

func (f *fakeClient) UpdateReported(_ context.Context, patch map[string]any) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reported = append(f.reported, patch)
	return int64(len(f.reported)), nil
}

func (f *fakeClient) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func TestModule_RelaysInput1(t *testing.T) {
	f := &fakeClient{}
	m := &module{client: f, log: slog.New(slog.DiscardHandler)}
	h := m.onInput(t.Context())
	h("input2", iothub.Message{Body: []byte("ignored")})
	h(inputName, iothub.Message{Body: []byte("b"), Properties: map[string]string{"k": "v"},
		System: map[string]string{iothub.SysMessageID: "m1", iothub.SysConnModuleID: "other"}})
	if len(f.sent) != 1 || f.outputs[0] != outputName || string(f.sent[0].Body) != "b" || f.sent[0].Properties["k"] != "v" ||
		f.sent[0].System[iothub.SysMessageID] != "m1" || f.sent[0].System[iothub.SysConnModuleID] != "" {
		t.Errorf("sent %+v on %v", f.sent, f.outputs)
	}
}

func TestModule_ReportsDesired(t *testing.T) {
	f := &fakeClient{}
	m := &module{client: f, log: slog.New(slog.DiscardHandler)}
	h := m.onDesired(t.Context())
	h(map[string]any{"$version": 3}, 3) // nothing to report
	h(map[string]any{"TemperatureThreshold": 30, "$version": 4}, 4)
	m.reports.Wait()
	if len(f.reported) != 1 || f.reported[0]["TemperatureThreshold"] != 30 || f.reported[0]["$version"] != nil {
		t.Errorf("reported %v", f.reported)
	}
}

func TestModule_NeverReconnectClosesOnce(t *testing.T) {
	f := &fakeClient{}
	m := &module{client: f, log: slog.New(slog.DiscardHandler)}
	m.neverReconnect(true, nil)
	m.neverReconnect(false, errors.New("EOF"))
	m.neverReconnect(false, errors.New("EOF"))
	modulemaintest.WaitFor(t, "the client closed", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.closed == 1
	})
}

func TestLeak_Grows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*leakInterval)
	defer cancel()
	before := len(leaked)
	leak(ctx)
	if len(leaked)-before < 2 {
		t.Errorf("leaked %d chunks in 3 intervals", len(leaked)-before)
	}
	leaked = nil
}

func TestRun_BadFaults(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "brokenmodule")
	env[envFaults] = "crash"
	m := modulemaintest.Start(t, run, env)
	if code := m.Wait(); code != modulemain.ExitConfig {
		t.Errorf("exit code %d, want %d", code, modulemain.ExitConfig)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "ERROR", envFaults)
}

// TestRun_AgainstTheFakeHub runs the module without faults against the fake IoT Hub: it
// answers ping, reports its desired properties, and stops within a second.
func TestRun_AgainstTheFakeHub(t *testing.T) {
	s := fakehubtest.New(t)
	m := modulemaintest.Start(t, run, modulemaintest.Env(t, s, "edge1", "brokenmodule"))
	modulemaintest.WaitFor(t, "brokenmodule started", func() bool {
		return modulemaintest.HasLogLine(m.Stderr(), "INFO", "brokenmodule started")
	})
	ctx, cancel := context.WithTimeout(context.Background(), modulemaintest.WaitTimeout)
	defer cancel()
	resp, err := s.InvokeMethod(ctx, "edge1", "brokenmodule", fakehubMethod("ping"))
	if err != nil || resp.Status != 200 {
		t.Fatalf("ping: %+v, %v", resp, err)
	}
	patchDesired(t, s, "edge1", "brokenmodule", map[string]any{"TemperatureThreshold": 30})
	modulemaintest.WaitReported(t, s, "edge1", "brokenmodule", "TemperatureThreshold", func(r map[string]any) bool {
		return fmt.Sprint(r["TemperatureThreshold"]) == "30"
	})
	start := time.Now()
	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to stop", d)
	}
}
