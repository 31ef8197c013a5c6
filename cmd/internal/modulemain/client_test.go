package modulemain

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

const moduleString = "HostName=hub.example;DeviceId=edge1;ModuleId=m1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestNewClient(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string
	}{
		{name: "edge hub string", env: map[string]string{"EdgeHubConnectionString": moduleString}},
		{name: "IoT Hub string", env: map[string]string{"IotHubConnectionString": moduleString}},
		{name: "port", env: map[string]string{"EdgeHubConnectionString": moduleString, "OUTPOST_MQTT_PORT": "18883"}},
		{name: "nothing", env: nil, wantErr: []string{"EdgeHubConnectionString", "IotHubConnectionString"}},
		{name: "workload API only", env: map[string]string{"IOTEDGE_WORKLOADURI": "unix:///w.sock"}, wantErr: []string{"workload API"}},
		{name: "malformed string", env: map[string]string{"EdgeHubConnectionString": "nonsense"}, wantErr: []string{"EdgeHubConnectionString"}},
		{name: "device string", env: map[string]string{"EdgeHubConnectionString": "HostName=h;DeviceId=d;SharedAccessKey=AAAA"},
			wantErr: []string{"not a module"}},
		{name: "unreadable CA file", env: map[string]string{"EdgeHubConnectionString": moduleString, "EdgeModuleCACertificateFile": "/no/such/ca.pem"},
			wantErr: []string{"/no/such/ca.pem"}},
		{name: "bad port", env: map[string]string{"EdgeHubConnectionString": moduleString, "OUTPOST_MQTT_PORT": "0"}, wantErr: []string{"OUTPOST_MQTT_PORT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(func(k string) string { return tt.env[k] }, slog.New(slog.DiscardHandler))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if d, m := c.Identity(); d != "edge1" || m != "m1" {
					t.Errorf("identity %s/%s", d, m)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConnect_Retries(t *testing.T) {
	refused := errors.New("refused")
	fast := retryPolicy{attempts: 3, min: time.Millisecond, max: 2 * time.Millisecond}
	tests := []struct {
		name      string
		failures  int // attempts that fail before one succeeds
		wantCalls int
		wantErr   error
	}{
		{name: "first attempt", failures: 0, wantCalls: 1},
		{name: "after failures", failures: 2, wantCalls: 3},
		{name: "gives up", failures: 10, wantCalls: 3, wantErr: refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			dial := func(context.Context) error {
				calls++
				if calls <= tt.failures {
					return refused
				}
				return nil
			}
			err := connect(t.Context(), dial, slog.New(slog.DiscardHandler), fast)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("%d attempts, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestConnect_StopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	dial := func(context.Context) error {
		cancel() // the module is told to stop while it waits to retry
		return errors.New("refused")
	}
	slow := retryPolicy{attempts: 5, min: time.Hour, max: time.Hour}
	if err := connect(ctx, dial, slog.New(slog.DiscardHandler), slow); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestStopped(t *testing.T) {
	live := t.Context()
	done, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{name: "cancelled while stopping", ctx: done, err: context.Canceled, want: true},
		{name: "closed while stopping", ctx: done, err: moduleclient.ErrClosed, want: true},
		{name: "other error while stopping", ctx: done, err: moduleclient.ErrTooLarge},
		{name: "closed while running", ctx: live, err: moduleclient.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Stopped(tt.ctx, tt.err); got != tt.want {
				t.Errorf("Stopped = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewBatchID(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewBatchID(), NewBatchID()
	if !uuid4.MatchString(a) || a == b {
		t.Errorf("batch ids %q, %q", a, b)
	}
}
