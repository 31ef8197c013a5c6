package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// fakeClient records what the sensor sends and reports.
type fakeClient struct {
	mu       sync.Mutex
	sent     []iothub.Message
	outputs  []string
	reported []map[string]any
}

func (f *fakeClient) SendOutput(ctx context.Context, output string, m iothub.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	f.outputs = append(f.outputs, output)
	return nil
}

func (f *fakeClient) UpdateReported(ctx context.Context, patch map[string]any) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reported = append(f.reported, patch)
	return 0, nil
}

func (f *fakeClient) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func (f *fakeClient) message(t *testing.T, i int) (iothub.Message, reading) {
	t.Helper()
	f.mu.Lock()
	m := f.sent[i]
	f.mu.Unlock()
	var r reading
	if err := json.Unmarshal(m.Body, &r); err != nil {
		t.Fatalf("message %d body %q: %v", i, m.Body, err)
	}
	return m, r
}

// startSensor runs a sensor with a fake client inside the current synctest bubble.
func startSensor(t *testing.T, cfg config) (*sensor, *fakeClient, func() error) {
	f := &fakeClient{}
	s := newSensor(cfg, f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() error {
		cancel()
		return <-done
	}
	return s, f, stop
}

func testConfig(count int, interval time.Duration) config {
	return config{messageCount: count, interval: interval, seed: 1, sim: defaultSimParams}
}

func TestSensor_SendsCountThenWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f, stop := startSensor(t, testConfig(3, time.Second))
		synctest.Wait()
		if n := f.count(); n != 1 {
			t.Fatalf("%d messages at start, want 1 (sent at once)", n)
		}
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		if n := f.count(); n != 3 {
			t.Fatalf("%d messages after 2 s, want 3", n)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := f.count(); n != 3 {
			t.Fatalf("%d messages an hour later, want still 3", n)
		}
		for i := range 3 {
			m, r := f.message(t, i)
			if f.outputs[i] != "temperatureOutput" {
				t.Errorf("message %d on output %q", i, f.outputs[i])
			}
			if m.Properties["sequenceNumber"] != strconv.Itoa(i+1) || m.Properties["batchId"] != s.batchID {
				t.Errorf("message %d properties %v", i, m.Properties)
			}
			if m.System[iothub.SysContentType] != "application/json" || m.System[iothub.SysContentEncoding] != "utf-8" {
				t.Errorf("message %d system properties %v", i, m.System)
			}
			if r.Machine.Temperature == 0 || r.TimeCreated.IsZero() {
				t.Errorf("message %d reading %+v", i, r)
			}
		}
		if err := stop(); err != nil {
			t.Errorf("Run returned %v, want nil after ctx is done", err)
		}
	})
}

func TestSensor_SendDataPausesWithoutSkippingSequenceNumbers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f, stop := startSensor(t, testConfig(-1, time.Second))
		defer stop()
		synctest.Wait()
		s.applyDesired(map[string]any{"SendData": false}, 2)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := f.count(); n != 1 {
			t.Fatalf("%d messages while paused, want only the first", n)
		}
		s.applyDesired(map[string]any{"SendData": true}, 3)
		time.Sleep(time.Second)
		synctest.Wait()
		if n := f.count(); n < 2 {
			t.Fatalf("%d messages after resuming, want at least 2", n)
		}
		if m, _ := f.message(t, 1); m.Properties["sequenceNumber"] != "2" {
			t.Errorf("first message after the pause has sequenceNumber %q, want 2", m.Properties["sequenceNumber"])
		}
	})
}

func TestSensor_NewIntervalAppliesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f, stop := startSensor(t, testConfig(-1, time.Hour))
		defer stop()
		synctest.Wait()
		time.Sleep(time.Minute)
		s.applyDesired(map[string]any{"SendInterval": json.Number("1")}, 2)
		synctest.Wait()
		// A minute has passed since the first message, more than the new interval.
		if n := f.count(); n != 2 {
			t.Fatalf("%d messages right after the interval shrank, want 2", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := f.count(); n != 3 {
			t.Fatalf("%d messages a second later, want 3", n)
		}
	})
}

func TestSensor_Reset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f, stop := startSensor(t, testConfig(-1, time.Second))
		defer stop()
		time.Sleep(60 * time.Second)
		synctest.Wait()
		n := f.count()
		if _, r := f.message(t, n-1); r.Machine.Temperature < 30 {
			t.Fatalf("temperature %v after a minute, want it to have climbed", r.Machine.Temperature)
		}
		status, body := s.resetMethod(t.Context(), []byte("null"))
		if status != 200 || string(body) != `{"message":"reset"}` {
			t.Errorf("reset answered %d %s", status, body)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, r := f.message(t, n); r.Machine.Temperature >= 21+1.25 {
			t.Errorf("temperature %v after reset, want back near 21", r.Machine.Temperature)
		}
	})
}

func TestSensor_ControlInput(t *testing.T) {
	s := newSensor(testConfig(1, time.Second), &fakeClient{}, slog.New(slog.DiscardHandler))
	s.onInput("other", iothub.Message{Body: []byte(`{"command":"reset"}`)})
	if s.resetReq.Load() {
		t.Fatal("a message on another input reset the sensor")
	}
	s.onInput("control", iothub.Message{Body: []byte(`{"command":"explode"}`)})
	if s.resetReq.Load() {
		t.Fatal("a bad control message reset the sensor")
	}
	s.onInput("control", iothub.Message{Body: []byte(`{"command":"reset"}`)})
	if !s.resetReq.Load() {
		t.Fatal("a reset control message did not reset the sensor")
	}
}

func TestSensor_OnDesiredReports(t *testing.T) {
	f := &fakeClient{}
	s := newSensor(testConfig(1, 5*time.Second), f, slog.New(slog.DiscardHandler))
	s.onDesired(t.Context())(map[string]any{"SendInterval": json.Number("2"), "SendData": false}, 4)
	if len(f.reported) != 1 || f.reported[0]["SendInterval"] != 2.0 || f.reported[0]["SendData"] != false {
		t.Errorf("reported %v, want SendInterval 2 and SendData false", f.reported)
	}
}
