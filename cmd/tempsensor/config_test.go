package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr []string
	}{
		{name: "defaults", env: nil, check: func(t *testing.T, c config) {
			if c.messageCount != 500 || c.interval != 5*time.Second || c.sim != defaultSimParams {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "forever", env: map[string]string{"MessageCount": "-1"}, check: func(t *testing.T, c config) {
			if c.messageCount != -1 {
				t.Errorf("messageCount %d", c.messageCount)
			}
		}},
		{name: "interval as a Go duration", env: map[string]string{"SendInterval": "250ms"}, check: wantInterval(250 * time.Millisecond)},
		{name: "interval in seconds", env: map[string]string{"SendInterval": "2"}, check: wantInterval(2 * time.Second)},
		{name: "Azure's MessageDelay", env: map[string]string{"MessageDelay": "00:00:10"}, check: wantInterval(10 * time.Second)},
		{name: "seed", env: map[string]string{"Seed": "-5"}, check: func(t *testing.T, c config) {
			if c.seed != uint64(1<<64-5) {
				t.Errorf("seed %d", c.seed)
			}
		}},
		{name: "simulator bounds", env: map[string]string{"machineTempMin": "10", "machineTempMax": "50.5", "ambientHumidity": "60"},
			check: func(t *testing.T, c config) {
				if c.sim.machineTempMin != 10 || c.sim.machineTempMax != 50.5 || c.sim.ambientHumidity != 60 {
					t.Errorf("sim %+v", c.sim)
				}
			}},
		{name: "bad count", env: map[string]string{"MessageCount": "many"}, wantErr: []string{"MessageCount", "integer"}},
		{name: "bad interval", env: map[string]string{"SendInterval": "soon"}, wantErr: []string{"SendInterval", "duration"}},
		{name: "negative interval", env: map[string]string{"SendInterval": "-1s"}, wantErr: []string{"SendInterval", "negative"}},
		{name: "both interval names", env: map[string]string{"SendInterval": "1s", "MessageDelay": "00:00:01"}, wantErr: []string{"not both"}},
		{name: "bad seed", env: map[string]string{"Seed": "x"}, wantErr: []string{"Seed"}},
		{name: "max not above min", env: map[string]string{"machineTempMax": "21"}, wantErr: []string{"machineTempMax", "above"}},
		{name: "every error at once", env: map[string]string{"MessageCount": "x", "ambientTemp": "warm"},
			wantErr: []string{"MessageCount", "ambientTemp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if !errors.Is(err, modulemain.ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func wantInterval(want time.Duration) func(t *testing.T, c config) {
	return func(t *testing.T, c config) {
		if c.interval != want {
			t.Errorf("interval %v, want %v", c.interval, want)
		}
	}
}
