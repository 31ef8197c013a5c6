package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestWriteTOML(t *testing.T) {
	path := writeFile(t, "c.toml", "mqtt-port = 1000\nperiod = \"90s\"\n")
	var got settings
	s, err := Load(testFlags(&got), []string{"--config-file", path, "--device", "a,b\"c", "--log-events", "--start-time", "t0"},
		testOptions(map[string]string{"T_DATA_DIR": "/d\tx\\y\x01"}))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := s.WriteTOML(&out, "test configuration"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"# test configuration\n",
		"# Configuration file: " + path + " (--config-file, from the command line).\n",
		`data-dir = "/d\tx\\y\u0001"  # environment variable T_DATA_DIR` + "\n",
		"mqtt-port = 1000  # file " + path + " line 1\n",
		`period = "1m30s"  # file ` + path + " line 2\n",
		`device = ["a", "b\"c"]  # command line` + "\n",
		"log-events = true  # command line\n",
		"ratio = 0.5  # default\n",
		"# Not settable in a configuration file:\n# start-time = \"\"  # command line\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "print-config") || strings.Contains(text, "config-file =") {
		t.Errorf("output shows command-line-only settings:\n%s", text)
	}

	// Read back as a configuration file, it gives the same settings.
	again := writeFile(t, "again.toml", text)
	var back settings
	if _, err := Load(testFlags(&back), []string{"--config-file", again, "--start-time", "t0"}, testOptions(nil)); err != nil {
		t.Fatalf("the output is not a valid configuration file: %v\n%s", err, text)
	}
	back.file, got.file = "", ""
	if !reflect.DeepEqual(back, got) {
		t.Errorf("read back\n got %+v\nwant %+v", back, got)
	}
}

func TestWriteTOML_NoFile(t *testing.T) {
	var got settings
	s, err := Load(testFlags(&got), nil, testOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := s.WriteTOML(&out, "t"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# No configuration file (--config-file).") || !strings.Contains(out.String(), "device = []  # default") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestTOMLString(t *testing.T) {
	tests := []string{"", "plain", `quote " and \ back`, "tab\tnl\nlf\rff\fbs\b", "ctl \x00\x1f\x7f", "unicode é ✓ \uFFFD", "bad \xff utf8"}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			var doc struct{ V string }
			if _, err := toml.Decode("V = "+tomlString(s), &doc); err != nil {
				t.Fatalf("tomlString(%q) = %s: %v", s, tomlString(s), err)
			}
			want := strings.ToValidUTF8(s, "\uFFFD")
			if doc.V != want {
				t.Errorf("round trip of %q = %q, want %q", s, doc.V, want)
			}
		})
	}
}
