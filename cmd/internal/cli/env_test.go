package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestEnvName(t *testing.T) {
	tests := []struct {
		name, prefix, flag, want string
	}{
		{name: "one word", prefix: "FAKEHUB", flag: "hostname", want: "FAKEHUB_HOSTNAME"},
		{name: "dashes", prefix: "EDGEHUB", flag: "data-dir", want: "EDGEHUB_DATA_DIR"},
		{name: "many dashes", prefix: "EDGEAGENT", flag: "restart-backoff-unit", want: "EDGEAGENT_RESTART_BACKOFF_UNIT"},
		{name: "mixed case", prefix: "EDGEHUB", flag: "maxSize", want: "EDGEHUB_MAXSIZE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EnvName(tt.prefix, tt.flag); got != tt.want {
				t.Errorf("EnvName(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
			}
		})
	}
}

// settings is what testFlags parses into.
type settings struct {
	dir  string
	port int
	on   bool
}

func testFlags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.dir, "data-dir", "./data", "")
	fs.IntVar(&s.port, "mqtt-port", 8883, "")
	fs.BoolVar(&s.on, "log-events", false, "")
	return fs
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    settings
		wantErr []string // substrings of the error; none for success
	}{
		{name: "defaults", want: settings{dir: "./data", port: 8883}},
		{name: "from the environment",
			env:  map[string]string{"T_DATA_DIR": "/d", "T_MQTT_PORT": "1883", "T_LOG_EVENTS": "true"},
			want: settings{dir: "/d", port: 1883, on: true}},
		{name: "command line wins",
			env:  map[string]string{"T_DATA_DIR": "/d", "T_MQTT_PORT": "1883"},
			args: []string{"--mqtt-port", "2883"},
			want: settings{dir: "/d", port: 2883}},
		{name: "empty variable ignored", env: map[string]string{"T_DATA_DIR": ""}, want: settings{dir: "./data", port: 8883}},
		{name: "other prefix ignored", env: map[string]string{"U_DATA_DIR": "/u", "DATA_DIR": "/x"}, want: settings{dir: "./data", port: 8883}},
		{name: "bad value", env: map[string]string{"T_MQTT_PORT": "many"},
			wantErr: []string{"environment variable T_MQTT_PORT=\"many\"", "parse error"}},
		{name: "bad bool", env: map[string]string{"T_LOG_EVENTS": "maybe"},
			wantErr: []string{"T_LOG_EVENTS", "maybe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got settings
			fs := testFlags(&got)
			err := ApplyEnv(fs, "T", func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ApplyEnv succeeded with %+v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want one mentioning %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestApplyEnvStopsAtFirstError(t *testing.T) {
	// Flags are visited in name order: data-dir, then log-events, then mqtt-port.
	var got settings
	fs := testFlags(&got)
	env := map[string]string{"T_LOG_EVENTS": "maybe", "T_MQTT_PORT": "1883", "T_DATA_DIR": "/d"}
	err := ApplyEnv(fs, "T", func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "T_LOG_EVENTS") {
		t.Fatalf("err = %v, want one naming T_LOG_EVENTS", err)
	}
	if got.dir != "/d" || got.port != 8883 {
		t.Errorf("got %+v, want data-dir set before the error and mqtt-port left alone after it", got)
	}
}
