package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyFile_Errors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string          // the command line besides --config-file
		env     map[string]string // the environment besides T_CONFIG_FILE
		wantIs  error
		wantErr []string // substrings; the file's path is always expected
	}{
		{name: "unknown key", file: "data-dir = \"/d\"\nnope = 1\n", wantIs: ErrUnknownKey,
			wantErr: []string{"line 2: nope: not a setting", "-h lists"}},
		{name: "underscores", file: "data_dir = \"/d\"", wantIs: ErrUnknownKey, wantErr: []string{"line 1: data_dir", "did you mean data-dir?"}},
		{name: "environment variable name", file: "T_MQTT_PORT = 1", wantIs: ErrUnknownKey, wantErr: []string{"did you mean mqtt-port?"}},
		{name: "upper case", file: "LOG-EVENTS = true", wantIs: ErrUnknownKey, wantErr: []string{"did you mean log-events?"}},
		{name: "no suggestion of a command-line-only flag", file: "print_config = true", wantIs: ErrUnknownKey, wantErr: []string{"-h lists"}},
		{name: "string for an int", file: "\n\nmqtt-port = \"8883\"", wantIs: ErrWrongType,
			wantErr: []string{"line 3: mqtt-port: wrong type: want an integer, not the string \"8883\""}},
		{name: "float for an int", file: "mqtt-port = 1.5", wantIs: ErrWrongType, wantErr: []string{"want an integer, not the float 1.5"}},
		{name: "int for a bool", file: "log-events = 1", wantIs: ErrWrongType, wantErr: []string{"log-events", "want a boolean"}},
		{name: "string for a bool", file: `log-events = "true"`, wantIs: ErrWrongType, wantErr: []string{"not the string \"true\""}},
		{name: "int for a duration", file: "period = 30", wantIs: ErrWrongType, wantErr: []string{"period", `want a duration in a string, such as "30s"`}},
		{name: "int for a string", file: "data-dir = 1", wantIs: ErrWrongType, wantErr: []string{"data-dir", "want a string, not the integer 1"}},
		{name: "bool for a float", file: "ratio = true", wantIs: ErrWrongType, wantErr: []string{"ratio", "want a number"}},
		{name: "string for a list", file: `device = "d1"`, wantIs: ErrWrongType, wantErr: []string{"device", "want an array of strings"}},
		{name: "number in a list", file: `device = ["d1", 2]`, wantIs: ErrWrongType, wantErr: []string{"device: item 1", "want a string, not the integer 2"}},
		{name: "date", file: "data-dir = 2024-01-02", wantIs: ErrWrongType, wantErr: []string{"not a date or time"}},
		{name: "table", file: "[log]\nevents = true\n", wantIs: ErrUnknownKey, wantErr: []string{"line 1: log: not a setting"}},
		{name: "table named after a flag", file: "[data-dir]\nx = 1\n", wantIs: ErrWrongType, wantErr: []string{"data-dir", "a table (settings are top-level keys"}},
		{name: "dotted key", file: "data-dir.x = 1\n", wantIs: ErrWrongType, wantErr: []string{"data-dir", "a table"}},
		{name: "array of tables", file: "[[device]]\nx = 1\n", wantIs: ErrWrongType, wantErr: []string{"device", "an array of tables"}},
		{name: "bad duration", file: `period = "5 minutes"`, wantErr: []string{"line 1: period: invalid value \"5 minutes\""}},
		{name: "out of range", file: "count = -1", wantErr: []string{"count: invalid value \"-1\""}},
		{name: "integer too large for TOML", file: "mqtt-port = 99999999999999999999", wantErr: []string{"line 1: not valid TOML"}},
		{name: "bad value overridden on the command line", file: "count = -1", args: []string{"--count", "1"},
			wantErr: []string{"line 1: count: invalid value \"-1\""}},
		{name: "bad duration overridden by the environment", file: `period = "soon"`, env: map[string]string{"T_PERIOD": "1s"},
			wantErr: []string{"period: invalid value \"soon\""}},
		{name: "wrong type overridden on the command line", file: `mqtt-port = "x"`, args: []string{"--mqtt-port", "1"}, wantIs: ErrWrongType},
		{name: "the file flag", file: `config-file = "other.toml"`, wantIs: ErrNotInFile, wantErr: []string{"config-file: cannot be set in the configuration file"}},
		{name: "command-line-only flag", file: "print-config = true", wantIs: ErrNotInFile},
		{name: "not-in-file flag", file: `start-time = "now"`, wantIs: ErrNotInFile, wantErr: []string{"start-time"}},
		{name: "syntax", file: "data-dir = \"/d\"\nmqtt-port = \n", wantErr: []string{"line 2: not valid TOML"}},
		{name: "duplicate key", file: "mqtt-port = 1\nmqtt-port = 2\n", wantErr: []string{"line 2: not valid TOML", "already been defined"}},
		{name: "first problem in file order", file: "zzz = 1\naaa = 2\n", wantErr: []string{"line 1: zzz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "c.toml", tt.file)
			var got settings
			_, err := Load(testFlags(&got), append([]string{"--config-file", path}, tt.args...), testOptions(tt.env))
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, w := range append([]string{"configuration file " + path}, tt.wantErr...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant one mentioning %q", err, w)
				}
			}
		})
	}
}

func TestApplyFile_Values(t *testing.T) {
	path := writeFile(t, "c.toml", `# every kind
data-dir = "/d"
mqtt-port = 0x10
max-bytes = 9_000_000_000
count = 3
ratio = 2
log-events = true
period = "1h30m"
device = []
`)
	var got settings
	if _, err := Load(testFlags(&got), []string{"--config-file", path}, testOptions(nil)); err != nil {
		t.Fatal(err)
	}
	want := settings{dir: "/d", port: 16, size: 9_000_000_000, count: 3, ratio: 2, on: true, period: 90 * 60e9, file: path}
	if got.dir != want.dir || got.port != want.port || got.size != want.size || got.count != want.count ||
		got.ratio != want.ratio || got.on != want.on || got.period != want.period || len(got.device) != 0 {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestApplyFile_FileProblems(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		wantIs     error
	}{
		{name: "missing", path: filepath.Join(dir, "nope.toml"), wantIs: os.ErrNotExist},
		{name: "too large", path: big, wantIs: ErrFileTooLarge},
		{name: "a directory", path: dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got settings
			_, err := Load(testFlags(&got), []string{"--config-file", tt.path}, testOptions(nil))
			if err == nil || !strings.Contains(err.Error(), "configuration file") || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("err = %v, want one naming the configuration file", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

func TestApplyFile_NoFileFlag(t *testing.T) {
	var got settings
	o := testOptions(nil)
	o.FileFlag = ""
	if _, err := Load(testFlags(&got), []string{"--config-file", "/does/not/exist"}, o); err != nil {
		t.Fatalf("Load read a file without a FileFlag: %v", err)
	}
	o.FileFlag = "nope"
	if _, err := Load(testFlags(&got), nil, o); err == nil {
		t.Fatal("Load accepted a FileFlag that is not a flag")
	}
}

func TestKeyLine(t *testing.T) {
	doc := []byte("# comment\na = 1\n\n\"b-c\" = [\n  \"x\",\n]\n[t]\nu = 1\nd.e = 2\n")
	tests := []struct {
		key  string
		want int
	}{
		{"a", 2}, {"b-c", 4}, {"t", 7}, {"u", 0}, {"missing", 0}, {"", 0}, {`q"uote`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := keyLine(doc, tt.key); got != tt.want {
				t.Errorf("keyLine(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}
