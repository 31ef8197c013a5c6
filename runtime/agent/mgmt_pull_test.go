package agent_test

import (
	"testing"

	"github.com/outpost-edge/outpost/runtime/agent"
)

func TestPullStatus_Percent(t *testing.T) {
	tests := []struct {
		name   string
		status agent.PullStatus
		want   int
		wantOK bool
	}{
		{name: "no size known", status: agent.PullStatus{Layers: 2}, wantOK: false},
		{name: "nothing yet", status: agent.PullStatus{Total: 100}, want: 0, wantOK: true},
		{name: "exact, no float rounding", status: agent.PullStatus{Current: 29, Total: 100}, want: 29, wantOK: true},
		{name: "rounded down", status: agent.PullStatus{Current: 999, Total: 1000}, want: 99, wantOK: true},
		{name: "all", status: agent.PullStatus{Current: 3 << 30, Total: 3 << 30}, want: 100, wantOK: true},
		{name: "over is capped", status: agent.PullStatus{Current: 150, Total: 100}, want: 100, wantOK: true},
		{name: "negative is zero", status: agent.PullStatus{Current: -5, Total: 100}, want: 0, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.status.Percent()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Percent = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
