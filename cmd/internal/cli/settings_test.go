package cli

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad_Precedence(t *testing.T) {
	file := `data-dir = "/file"
mqtt-port = 1000
log-events = true
period = "5s"
device = ["f1", "f2"]
`
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // the configuration file's content; none when empty
		want func(s *settings)
		// origins expected for some flags, by name
		origins map[string]Origin
	}{
		{name: "defaults", want: func(*settings) {},
			origins: map[string]Origin{"data-dir": {}, "mqtt-port": {}}},
		{name: "file over defaults", file: file,
			want: func(s *settings) {
				s.dir, s.port, s.on, s.period, s.device = "/file", 1000, true, 5*time.Second, List{"f1", "f2"}
			},
			origins: map[string]Origin{"data-dir": {Source: SourceFile, Line: 1}, "device": {Source: SourceFile, Line: 5}, "ratio": {}}},
		{name: "fallback over file", file: file, env: map[string]string{"AZURE_DIR": "/azure"},
			want: func(s *settings) {
				s.dir, s.port, s.on, s.period, s.device = "/azure", 1000, true, 5*time.Second, List{"f1", "f2"}
			},
			origins: map[string]Origin{"data-dir": {Source: SourceEnvironment, Name: "AZURE_DIR"}}},
		{name: "first fallback wins", env: map[string]string{"AZURE_DIR_2": "/two", "AZURE_DIR": "/one"},
			want:    func(s *settings) { s.dir = "/one" },
			origins: map[string]Origin{"data-dir": {Source: SourceEnvironment, Name: "AZURE_DIR"}}},
		{name: "second fallback when the first is unset", env: map[string]string{"AZURE_DIR_2": "/two"},
			want: func(s *settings) { s.dir = "/two" }},
		{name: "environment over fallback and file", file: file,
			env: map[string]string{"AZURE_DIR": "/azure", "T_DATA_DIR": "/env", "T_MQTT_PORT": "2000", "T_DEVICE": "e1,e2"},
			want: func(s *settings) {
				s.dir, s.port, s.on, s.period, s.device = "/env", 2000, true, 5*time.Second, List{"e1", "e2"}
			},
			origins: map[string]Origin{"data-dir": {Source: SourceEnvironment, Name: "T_DATA_DIR"}, "log-events": {Source: SourceFile, Line: 3}}},
		{name: "command line over everything", file: file,
			env:  map[string]string{"AZURE_DIR": "/azure", "T_DATA_DIR": "/env", "T_DEVICE": "e1"},
			args: []string{"--data-dir", "/cli", "--device", "c1", "--log-events=false"},
			want: func(s *settings) {
				s.dir, s.port, s.on, s.period, s.device = "/cli", 1000, false, 5*time.Second, List{"c1"}
			},
			origins: map[string]Origin{"data-dir": {Source: SourceCommandLine}, "device": {Source: SourceCommandLine}, "mqtt-port": {Source: SourceFile, Line: 2}}},
		{name: "file named by the environment", file: file, env: map[string]string{"T_CONFIG_FILE": "@file"},
			want: func(s *settings) {
				s.dir, s.port, s.on, s.period, s.device = "/file", 1000, true, 5*time.Second, List{"f1", "f2"}
			}},
		{name: "empty variables are unset", env: map[string]string{"T_DATA_DIR": "", "AZURE_DIR": ""},
			want: func(*settings) {}},
		{name: "other prefixes ignored", env: map[string]string{"U_DATA_DIR": "/u", "DATA_DIR": "/x"},
			want: func(*settings) {}},
		{name: "command-line-only flag ignores the environment", env: map[string]string{"T_PRINT_CONFIG": "true"},
			want: func(*settings) {}},
		{name: "command-line-only flag on the command line", args: []string{"--print-config"},
			want: func(s *settings) { s.print = true }},
		{name: "not-in-file flag from the environment", env: map[string]string{"T_START_TIME": "t0"},
			want: func(s *settings) { s.start = "t0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			args := tt.args
			if tt.file != "" {
				path = writeFile(t, "c.toml", tt.file)
				if env["T_CONFIG_FILE"] == "@file" {
					env["T_CONFIG_FILE"] = path
				} else {
					args = append([]string{"--config-file", path}, args...)
				}
			}
			var got settings
			s, err := Load(testFlags(&got), args, testOptions(env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := defaultSettings
			want.file = path
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("settings\n got %+v\nwant %+v", got, want)
			}
			for name, o := range tt.origins {
				if o.Source == SourceFile {
					o.Name = path
				}
				if g := s.Origin(name); g != o {
					t.Errorf("Origin(%s) = %+v (%s), want %+v", name, g, g, o)
				}
			}
			if s.File() != path {
				t.Errorf("File() = %q, want %q", s.File(), path)
			}
		})
	}
}

func TestLoad_EnvironmentErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		opts    func(*Options)
		wantErr []string
	}{
		{name: "bad int", env: map[string]string{"T_MQTT_PORT": "many"},
			wantErr: []string{`environment variable T_MQTT_PORT="many"`, "parse error"}},
		{name: "bad bool", env: map[string]string{"T_LOG_EVENTS": "maybe"}, wantErr: []string{"T_LOG_EVENTS", "maybe"}},
		{name: "bad fallback", env: map[string]string{"AZURE_DIR": "x"},
			opts: func(o *Options) {
				o.Fallbacks = []Fallback{{Flag: "data-dir", Env: "AZURE_DIR", Value: func(string) (string, error) { return "", errors.New("not a dir") }}}
			},
			wantErr: []string{`environment variable AZURE_DIR="x" (for --data-dir)`, "not a dir"}},
		{name: "fallback value rejected by the flag", env: map[string]string{"AZURE_PORT": "x"},
			opts:    func(o *Options) { o.Fallbacks = []Fallback{{Flag: "mqtt-port", Env: "AZURE_PORT"}} },
			wantErr: []string{"AZURE_PORT", "--mqtt-port", "parse error"}},
		{name: "fallback for no flag", env: map[string]string{"AZURE_X": "x"},
			opts:    func(o *Options) { o.Fallbacks = []Fallback{{Flag: "nope", Env: "AZURE_X"}} },
			wantErr: []string{"no flag --nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got settings
			o := testOptions(tt.env)
			if tt.opts != nil {
				tt.opts(&o)
			}
			_, err := Load(testFlags(&got), nil, o)
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want one mentioning %q", err, w)
				}
			}
		})
	}
}

func TestLoad_EnvironmentStopsAtFirstError(t *testing.T) {
	// Flags are visited in name order: data-dir, then log-events, then mqtt-port.
	var got settings
	env := map[string]string{"T_LOG_EVENTS": "maybe", "T_MQTT_PORT": "1883", "T_DATA_DIR": "/d"}
	_, err := Load(testFlags(&got), nil, testOptions(env))
	if err == nil || !strings.Contains(err.Error(), "T_LOG_EVENTS") {
		t.Fatalf("err = %v, want one naming T_LOG_EVENTS", err)
	}
	if got.dir != "/d" || got.port != 8883 {
		t.Errorf("got %+v, want data-dir set before the error and mqtt-port left alone after it", got)
	}
}

func TestLoad_Help(t *testing.T) {
	var got settings
	if _, err := Load(testFlags(&got), []string{"-h"}, testOptions(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
}

func TestFill(t *testing.T) {
	var got settings
	s := NewSettings(testFlags(&got), testOptions(nil))
	if err := s.Parse([]string{"--data-dir", "/cli"}); err != nil {
		t.Fatal(err)
	}
	origin := Origin{Source: SourceFile, Name: "edge.json"}
	if set, err := s.Fill("data-dir", "/json", origin); set || err != nil {
		t.Errorf("Fill over the command line = %v, %v; want false, nil", set, err)
	}
	if set, err := s.Fill("mqtt-port", "99", origin); !set || err != nil {
		t.Errorf("Fill of an unset flag = %v, %v; want true, nil", set, err)
	}
	if _, err := s.Fill("count", "-1", origin); err == nil {
		t.Error("Fill with a bad value succeeded")
	}
	if got.dir != "/cli" || got.port != 99 || s.Origin("mqtt-port") != origin || s.IsSet("count") {
		t.Errorf("got %+v, origin %v, count set %v", got, s.Origin("mqtt-port"), s.IsSet("count"))
	}
}

func TestOrigin_String(t *testing.T) {
	tests := []struct {
		o    Origin
		want string
	}{
		{Origin{}, "default"},
		{Origin{Source: SourceCommandLine}, "command line"},
		{Origin{Source: SourceEnvironment, Name: "T_X"}, "environment variable T_X"},
		{Origin{Source: SourceFile, Name: "/etc/x.toml", Line: 4}, "file /etc/x.toml line 4"},
		{Origin{Source: SourceFile, Name: "edge.json"}, "file edge.json"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.o.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAnnotate(t *testing.T) {
	path := writeFile(t, "c.toml", "\nmqtt-port = 0\n")
	var got settings
	s, err := Load(testFlags(&got), []string{"--config-file", path, "--count", "0"},
		testOptions(map[string]string{"T_DATA_DIR": "/d"}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: ""},
		{name: "from a file", err: errors.New("--mqtt-port 0: want 1..65535"),
			want: "--mqtt-port 0: want 1..65535 (--mqtt-port from file " + path + " line 2)"},
		{name: "from the environment", err: errors.New("--data-dir /d is not writable"),
			want: "--data-dir /d is not writable (--data-dir from environment variable T_DATA_DIR)"},
		{name: "several, each once", err: errors.New("--data-dir and --mqtt-port and --data-dir again"),
			want: "--data-dir and --mqtt-port and --data-dir again (--data-dir from environment variable T_DATA_DIR; --mqtt-port from file " + path + " line 2)"},
		{name: "command line and defaults say nothing", err: errors.New("--count 0 and --ratio"), want: "--count 0 and --ratio"},
		{name: "unknown flags ignored", err: errors.New("--nope --"), want: "--nope --"},
		{name: "help untouched", err: flag.ErrHelp, want: flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Annotate(tt.err)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("Annotate(nil) = %v", got)
				}
				return
			}
			if got.Error() != tt.want {
				t.Errorf("Annotate = %q\n          want %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("Annotate does not wrap the error")
			}
		})
	}
}

func TestList(t *testing.T) {
	var l List
	for _, v := range []string{"a,b", " c ", ",,", ""} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if want := (List{"a", "b", "c"}); !reflect.DeepEqual(l, want) {
		t.Errorf("List = %q, want %q", l, want)
	}
	if l.String() != "a,b,c" || !reflect.DeepEqual(l.Get(), []string{"a", "b", "c"}) {
		t.Errorf("String() = %q, Get() = %v", l.String(), l.Get())
	}
}
