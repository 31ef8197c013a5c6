package perclient

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

func TestRenewDue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		vouched time.Time
		expiry  time.Time
		again   bool
		want    time.Time
	}{
		{"an hour left: renewed after 48 min", t0, t0.Add(time.Hour), false, t0.Add(48 * time.Minute)},
		{"a day left", t0, t0.Add(24 * time.Hour), false, t0.Add(time.Duration(0.8 * float64(24*time.Hour)))},
		{"the same token again: not before it expires", t0, t0.Add(time.Hour), true, t0.Add(time.Hour)},
		{"already expired: due now", t0, t0.Add(-time.Minute), false, t0.Add(-time.Minute)},
		{"expires right now", t0, t0, false, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renewDue(tt.vouched, tt.expiry, tt.again); !got.Equal(tt.want) {
				t.Fatalf("renewDue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	fail := errors.New("refused")
	tests := []struct {
		name string
		rc   byte
		err  error
		want attemptKind
	}{
		{"accepted", packets.Accepted, nil, attemptOK},
		{"not authorized (0x05)", packets.ErrRefusedNotAuthorised, fail, attemptRefused},
		{"bad user name or password (0x04)", packets.ErrRefusedBadUsernameOrPassword, fail, attemptRefused},
		{"server unavailable (0x03, throttled): retried", packets.ErrRefusedServerUnavailable, fail, attemptOffline},
		{"network error", packets.ErrNetworkError, fail, attemptOffline},
		{"identifier rejected: retried", packets.ErrRefusedIDRejected, fail, attemptOffline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.rc, tt.err); got != tt.want {
				t.Fatalf("classify(%#02x) = %v, want %v", tt.rc, got, tt.want)
			}
		})
	}
}

func TestIdle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		attached bool
		lastUsed time.Time
		want     bool
	}{
		{"client connected: never idle", true, t0.Add(-2 * time.Hour), false},
		{"client gone, used a minute ago", false, t0.Add(-time.Minute), false},
		{"client gone, unused for the timeout", false, t0.Add(-time.Hour), true},
		{"client gone, unused for longer", false, t0.Add(-3 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idle(tt.attached, tt.lastUsed, t0, time.Hour); got != tt.want {
				t.Fatalf("idle = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		u       float64
		want    time.Duration
	}{
		{0, 0, 500 * time.Millisecond},
		{0, 1, time.Second},
		{1, 0, time.Second},
		{3, 1, 8 * time.Second},
		{10, 0, 15 * time.Second}, // capped at 30 s: [15 s, 30 s]
		{10, 1, 30 * time.Second},
		{2, -1, 2 * time.Second}, // bad u: the low end
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempt %d u %v", tt.attempt, tt.u), func(t *testing.T) {
			if got := backoff(tt.attempt, time.Second, 30*time.Second, tt.u); got != tt.want {
				t.Fatalf("backoff = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestErrors_MatchBothInterfaces(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	tests := []struct {
		name  string
		err   error
		match []error
		not   []error
	}{
		{"offline", &offlineError{msg: "identity \"leaf1\": not connected", cause: cause},
			[]error{hub.ErrOffline, upstream.ErrOffline, cause}, []error{hub.ErrRejected}},
		{"offline waiting for a token", &offlineError{msg: "x", cause: ErrExpired},
			[]error{hub.ErrOffline, upstream.ErrOffline, ErrExpired}, []error{ErrRefused}},
		{"rejected", &rejectedError{fmt.Errorf("send: %w", cause)},
			[]error{hub.ErrRejected, upstream.ErrRejected, cause}, []error{hub.ErrOffline}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range tt.match {
				if !errors.Is(tt.err, m) {
					t.Errorf("%v does not match %v", tt.err, m)
				}
			}
			for _, m := range tt.not {
				if errors.Is(tt.err, m) {
					t.Errorf("%v matches %v", tt.err, m)
				}
			}
		})
	}
}

func TestTelemetryTopic(t *testing.T) {
	big := make([]byte, iothub.MaxMessageSize+1)
	long := map[string]string{"p": string(make([]byte, iothub.MaxTopicLength))}
	tests := []struct {
		name    string
		id      sas.Identity
		m       iothub.Message
		want    string
		wantErr bool
	}{
		{"the hub's stamps are left out", sas.Identity{DeviceID: "edge1", ModuleID: "m1"},
			iothub.Message{Body: []byte("x"), System: map[string]string{iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "m1", iothub.SysMessageID: "42"}},
			"devices/edge1/modules/m1/messages/events/%24.mid=42", false},
		{"device with a property", sas.Identity{DeviceID: "leaf1"},
			iothub.Message{Properties: map[string]string{"seq": "1"}}, "devices/leaf1/messages/events/seq=1", false},
		{"over 256 KB", sas.Identity{DeviceID: "leaf1"}, iothub.Message{Body: big}, "", true},
		{"topic over the MQTT limit", sas.Identity{DeviceID: "leaf1"}, iothub.Message{Properties: long}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := telemetryTopic(tt.id, tt.m)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("telemetryTopic = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFiltersFor(t *testing.T) {
	all := hub.Subscriptions{Desired: true, Methods: true, C2D: true}
	tests := []struct {
		name     string
		dev, mod string
		subs     hub.Subscriptions
		want     map[string]byte
	}{
		{"nothing: twin answers only", "leaf1", "", hub.Subscriptions{}, map[string]byte{iothub.TwinResponseFilter: 1}},
		{"device: everything", "leaf1", "", all, map[string]byte{iothub.TwinResponseFilter: 1, iothub.DesiredPatchFilter: 1,
			iothub.MethodRequestFilter: 0, iothub.C2DFilter("leaf1"): 1}},
		{"module: no C2D", "edge1", "m1", all, map[string]byte{iothub.TwinResponseFilter: 1, iothub.DesiredPatchFilter: 1,
			iothub.MethodRequestFilter: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filtersFor(tt.dev, tt.mod, tt.subs)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("filtersFor = %v, want %v", got, tt.want)
			}
		})
	}
}
