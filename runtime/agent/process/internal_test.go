package process

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

func TestParseStat(t *testing.T) {
	tail := " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21\n"
	for _, tc := range []struct {
		name, text string
		want       procStat
		ok         bool
	}{
		{"plain", "42 (sleep)" + tail, procStat{State: 'S', Start: 987654}, true},
		{"spaces-and-parens-in-name", "42 (a) b (c)" + tail, procStat{State: 'S', Start: 987654}, true},
		{"zombie", "42 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5 20", procStat{State: 'Z', Start: 5}, true},
		{"no-name", "42 sleep S 1", procStat{}, false},
		{"short", "42 (x) S 1 2 3", procStat{}, false},
		{"bad-start", "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 20", procStat{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.text))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("got %+v, %v; want %+v, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
	t.Run("self", func(t *testing.T) {
		st, err := readStat(os.Getpid())
		if err != nil || st.Start == 0 || !alive(os.Getpid(), st.Start) || alive(os.Getpid(), st.Start+1) {
			t.Errorf("own stat %+v, %v", st, err)
		}
		if alive(0, 0) || alive(-1, 0) {
			t.Error("pid 0 or -1 alive")
		}
	})
}

func TestResolveImage(t *testing.T) {
	for _, tc := range []struct {
		image, dir, want string
	}{
		{"outpost/tempsensor:1.0", "/img", "/img/tempsensor"},
		{"localhost:5000/tempsensor", "/img", "/img/tempsensor"},
		{"localhost:5000/team/tempsensor:latest", "/img", "/img/tempsensor"},
		{"tempsensor", "/img", "/img/tempsensor"},
		{"x.azurecr.io/ts@sha256:abcd", "/img", "/img/ts"},
		{"$upstream:443/tempsensor:1.0", "/img", "/img/tempsensor"},
		{"exec:/usr/local/bin/x", "", "/usr/local/bin/x"},
		{"exec:/usr/local/bin/x:latest", "/img", "/usr/local/bin/x"},
		{"exec:/opt/a:b/x:1.0", "", "/opt/a:b/x"},
		{"exec:/opt/../bin/x", "", "/bin/x"},
		{"exec:bin/x:latest", "/img", ""},
		{"outpost/x:1.0", "", ""},
		{"outpost/:1.0", "/img", ""},
		{"outpost/..:1", "/img", ""},
	} {
		t.Run(tc.image, func(t *testing.T) {
			got, err := resolveImage(tc.image, tc.dir)
			if tc.want == "" {
				if !errors.Is(err, agent.ErrImageNotFound) {
					t.Errorf("got %q, %v; want ErrImageNotFound", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseCreateOptions(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       options
	}{
		{"empty", "", options{}},
		{"null", "null", options{}},
		{"object", "{}", options{}},
		{"all", `{"Cmd":["a","b"],"Entrypoint":"/bin/x","WorkingDir":"/w","Env":["A=1"]}`,
			options{Cmd: []string{"a", "b"}, Entrypoint: []string{"/bin/x"}, WorkingDir: "/w"}},
		{"case-insensitive", `{"cmd":["a"],"workingdir":"/w"}`, options{Cmd: []string{"a"}, WorkingDir: "/w"}},
		{"ignored", `{"HostConfig":{"Privileged":true},"User":"x","Cmd":null}`, options{Ignored: []string{"HostConfig", "User"}}},
		{"health-defaults", `{"Healthcheck":{"Test":["CMD","/bin/check","-q"]}}`, options{Health: &healthSpec{
			Test: []string{"/bin/check", "-q"}, Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3}}},
		{"health-shell", `{"Healthcheck":{"Test":["CMD-SHELL","curl -f","localhost"],"Interval":1000000,"Timeout":2000000000,"StartPeriod":5000000000,"Retries":1}}`,
			options{Health: &healthSpec{Test: []string{"/bin/sh", "-c", "curl -f localhost"}, Interval: time.Millisecond, Timeout: 2 * time.Second, StartPeriod: 5 * time.Second, Retries: 1}}},
		{"health-none", `{"Healthcheck":{"Test":["NONE"]}}`, options{}},
		{"health-no-test", `{"Healthcheck":{"Interval":1000000000}}`, options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCreateOptions(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v (health %+v), want %+v (health %+v)", got, got.Health, tc.want, tc.want.Health)
			}
		})
	}
}

func FuzzParseCreateOptions(f *testing.F) {
	for _, s := range []string{
		"", "{}", `{"Cmd":["a"],"Entrypoint":"b","WorkingDir":"/w"}`,
		`{"Healthcheck":{"Test":["CMD-SHELL","x"],"Interval":1000000,"Retries":2}}`,
		`{"Healthcheck":{"Test":["CMD"]}}`, `{"Cmd":1}`, `[1]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseCreateOptions(s)
		if err != nil {
			if !errors.Is(err, ErrCreateOptions) {
				t.Fatalf("error %v does not wrap ErrCreateOptions", err)
			}
			return
		}
		if o.WorkingDir != "" && !strings.HasPrefix(o.WorkingDir, "/") {
			t.Fatalf("relative WorkingDir %q accepted", o.WorkingDir)
		}
		if h := o.Health; h != nil {
			if len(h.Test) == 0 || h.Interval < minHealthDuration || h.Timeout < minHealthDuration || h.Retries < 1 || h.StartPeriod < 0 {
				t.Fatalf("unusable health check accepted: %+v", h)
			}
		}
	})
}

// TestCopyLines checks the log records the supervisor writes: one per line,
// a final line without a newline kept, long lines split, and rotation.
func TestCopyLines(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("x", 3600))
	long := strings.Repeat("y", maxLogLine+10)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"no-final-newline", "a\nb", []string{"a", "b"}},
		{"empty-lines", "\n\n", []string{"", ""}},
		{"long", long + "\nz\n", []string{long[:maxLogLine], long[maxLogLine:], "z"}},
		{"exactly-buffer", long[:maxLogLine] + "\n", []string{long[:maxLogLine]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.log")
			w, err := openLog(path, DefaultLogMaxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if err := copyLines(strings.NewReader(tc.in), w, func() time.Time { return at }); err != nil {
				t.Fatal(err)
			}
			w.Close()
			b, _ := os.ReadFile(path)
			var want bytes.Buffer
			for _, l := range tc.want {
				want.WriteString("2026-03-01T11:00:00.000000005Z " + l + "\n")
			}
			if got := string(b); got != want.String() {
				t.Errorf("got %.200q, want %.200q", got, want.String())
			}
			for _, rec := range strings.SplitAfter(string(b), "\n") {
				if rec == "" {
					continue
				}
				ts, text := parseRecord([]byte(strings.TrimSuffix(rec, "\n")))
				if !ts.Equal(at) || !strings.HasPrefix(rec, string(ts.UTC().Format(logTimeLayout))+" "+string(text)) {
					t.Errorf("record %.80q parses to %v %.40q", rec, ts, text)
				}
			}
		})
	}
	t.Run("rotation", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.log")
		w, err := openLog(path, 100)
		if err != nil {
			t.Fatal(err)
		}
		// Each record is 30 + 1 + 20 + 1 = 52 bytes: one per file.
		in := strings.Repeat(strings.Repeat("r", 20)+"\n", 3)
		if err := copyLines(strings.NewReader(in), w, func() time.Time { return at }); err != nil {
			t.Fatal(err)
		}
		w.Close()
		cur, _ := os.ReadFile(path)
		old, _ := os.ReadFile(path + rotatedExt)
		if len(cur) != 52 || len(old) != 52 {
			t.Errorf("current %d bytes, rotated %d bytes; want 52 each", len(cur), len(old))
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("2026-03-01T11:00:00.000000005Z hello"))
	f.Add([]byte("not a time"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, rec []byte) {
		ts, text := parseRecord(rec)
		if ts.IsZero() {
			if !bytes.Equal(text, rec) {
				t.Fatalf("untimed record %q lost text: %q", rec, text)
			}
			return
		}
		if !bytes.HasSuffix(rec, text) || len(text) >= len(rec) {
			t.Fatalf("record %q split into %v and %q", rec, ts, text)
		}
	})
}
