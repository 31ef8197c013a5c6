package cli

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// settings is what testFlags parses into: one flag of every kind the loader knows.
type settings struct {
	dir    string
	port   int
	size   int64
	count  uint
	ratio  float64
	on     bool
	period time.Duration
	device List
	start  string // a flag.Func flag, not settable in a file
	file   string
	print  bool
}

// testOptions are the Options of testFlags: prefix T, file flag config-file, one fallback.
func testOptions(env map[string]string) Options {
	return Options{
		Prefix:          "T",
		Getenv:          func(k string) string { return env[k] },
		FileFlag:        "config-file",
		Fallbacks:       []Fallback{{Flag: "data-dir", Env: "AZURE_DIR"}, {Flag: "data-dir", Env: "AZURE_DIR_2"}},
		CommandLineOnly: []string{"print-config"},
		NotInFile:       []string{"start-time"},
	}
}

func testFlags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.dir, "data-dir", "./data", "")
	fs.IntVar(&s.port, "mqtt-port", 8883, "")
	fs.Int64Var(&s.size, "max-bytes", 0, "")
	fs.UintVar(&s.count, "count", 1, "")
	fs.Float64Var(&s.ratio, "ratio", 0.5, "")
	fs.BoolVar(&s.on, "log-events", false, "")
	fs.DurationVar(&s.period, "period", time.Minute, "")
	fs.Var(&s.device, "device", "")
	fs.Func("start-time", "", func(v string) error { s.start = v; return nil })
	fs.StringVar(&s.file, "config-file", "", "")
	fs.BoolVar(&s.print, "print-config", false, "")
	return fs
}

// defaultSettings are testFlags' defaults.
var defaultSettings = settings{dir: "./data", port: 8883, count: 1, ratio: 0.5, period: time.Minute}

// writeFile writes content to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
