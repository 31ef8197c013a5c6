package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
)

// sampleFile is the documented sample configuration.
const sampleFile = "../../docs/config/fakehub.toml"

// TestSampleConfig fails when docs/config/fakehub.toml misses a setting or documents a
// default other than the flag's.
func TestSampleConfig(t *testing.T) {
	if err := cli.CheckSample(newFlagSet(&config{}, io.Discard), settingsOptions(nil), sampleFile); err != nil {
		t.Fatalf("%s is out of date (fix it or the flags):\n%v", sampleFile, err)
	}
	// And it loads as a configuration file, to the defaults.
	c, err := parseConfig([]string{"--config-file", sampleFile}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := parseConfig(nil, func(string) string { return "" }, io.Discard)
	want.configFile = sampleFile
	if !reflect.DeepEqual(c, want) {
		t.Errorf("the sample gives %+v, want the defaults %+v", c, want)
	}
}

func TestParseConfig_ConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fakehub.toml")
	writeConfig(t, file, `hostname = "file.test"
mqtt-addr = "127.0.0.1:1"
log-level = "debug"
log-events = true
device = ["f1", "f2"]
`)
	fromFile := func(c *config) {
		c.configFile, c.hostname, c.mqttAddr, c.logLevel, c.logEvents, c.devices = file, "file.test", "127.0.0.1:1", "debug", true, []string{"f1", "f2"}
	}
	defaults := config{dataDir: "./fakehub-data", hostname: "localhost", mqttAddr: ":8883", httpAddr: ":8443", logFormat: "text", logLevel: "info"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		content string // when set: the content of a file of the case's own, the only argument
		want    func(c *config)
		wantErr []string
	}{
		{name: "file", args: []string{"--config-file", file}, want: fromFile},
		{name: "file from the environment", env: map[string]string{"FAKEHUB_CONFIG_FILE": file}, want: fromFile},
		{name: "environment over file", args: []string{"--config-file", file},
			env: map[string]string{"FAKEHUB_HOSTNAME": "env.test", "FAKEHUB_DEVICE": "e1"},
			want: func(c *config) {
				fromFile(c)
				c.hostname, c.devices = "env.test", []string{"e1"}
			}},
		{name: "command line over environment and file", args: []string{"--config-file", file, "--hostname", "cli.test", "--log-events=false"},
			env: map[string]string{"FAKEHUB_HOSTNAME": "env.test"},
			want: func(c *config) {
				fromFile(c)
				c.hostname, c.logEvents = "cli.test", false
			}},
		{name: "unknown key", content: "hostname = \"h\"\nhost-name = \"x\"\n",
			wantErr: []string{" line 2: host-name: not a setting"}},
		{name: "wrong type", content: "mqtt-addr = 8883\n",
			wantErr: []string{" line 1: mqtt-addr: wrong type: want a string"}},
		{name: "bad value", content: "\nlog-format = \"xml\"\n",
			wantErr: []string{`--log-format "xml": want text or json (--log-format from file `, " line 2)"}},
		{name: "print-config is command line only", content: "print-config = true\n",
			wantErr: []string{"print-config: cannot be set in the configuration file"}},
		{name: "missing file", args: []string{"--config-file", filepath.Join(dir, "nope.toml")}, wantErr: []string{"nope.toml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.content != "" { // a file of its own
				p := filepath.Join(t.TempDir(), "fakehub.toml")
				writeConfig(t, p, tt.content)
				tt.args = []string{"--config-file", p}
			}
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("parseConfig succeeded with %+v, want an error", c)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant one mentioning %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("config\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestPrintConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fakehub.toml")
	writeConfig(t, file, "hostname = \"file.test\"\n")
	c, s, err := loadConfig([]string{"--config-file", file, "--print-config", "--device", "d1"},
		func(k string) string { return map[string]string{"FAKEHUB_LOG_LEVEL": "warn"}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.printConfig {
		t.Fatal("--print-config not set")
	}
	var out strings.Builder
	if err := s.WriteTOML(&out, "fakehub configuration"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`hostname = "file.test"  # file ` + file + " line 1",
		`log-level = "warn"  # environment variable FAKEHUB_LOG_LEVEL`,
		`device = ["d1"]  # command line`,
		`data-dir = "./fakehub-data"  # default`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--print-config output lacks %q:\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"--print-config", "--data-dir", t.TempDir()}, func(string) string { return "" }, io.Discard); code != exitOK {
		t.Errorf("run --print-config = %d, want %d", code, exitOK)
	}
}

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
