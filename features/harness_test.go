package features

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The harness's pure helpers: if they are wrong, scenarios pass or fail
// for the wrong reason.

func TestChooseBackends(t *testing.T) {
	up := func() error { return nil }
	down := func() error { return errors.New("connection refused") }
	tests := []struct {
		name             string
		choice           string
		required, skip   bool
		ping             func() error
		wantRun, wantErr []string // backends that run; substrings of the error
		skipReason       string   // substring of docker's skip reason
	}{
		{name: "default with an engine", ping: up, wantRun: []string{"docker", "process"}},
		{name: "default without an engine", ping: down, wantRun: []string{"process"}, skipReason: "no Docker Engine answers (connection refused)"},
		{name: "required without an engine", required: true, ping: down, wantErr: []string{"needs a Docker Engine"}},
		{name: "both without an engine", choice: "both", ping: down, wantErr: []string{"needs a Docker Engine"}},
		{name: "docker only", choice: "docker", ping: up, wantRun: []string{"docker"}},
		{name: "process only never pings", choice: "process", ping: func() error { panic("pinged") }, wantRun: []string{"process"}, skipReason: "=process"},
		{name: "skip docker", skip: true, ping: up, wantRun: []string{"process"}, skipReason: "OUTPOST_SKIP_DOCKER=1"},
		{name: "skip docker but asked for it", choice: "docker", skip: true, ping: up, wantErr: []string{"OUTPOST_SKIP_DOCKER"}},
		{name: "unknown choice", choice: "kubernetes", ping: up, wantErr: []string{`"kubernetes"`, "process, docker or both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := chooseBackends(tt.choice, tt.required, tt.skip, tt.ping)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, plan %v", plan)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var run []string
			for b, reason := range plan {
				if reason == "" {
					run = append(run, b)
				}
			}
			slices.Sort(run)
			if !slices.Equal(run, tt.wantRun) {
				t.Errorf("runs %v, want %v (plan %v)", run, tt.wantRun, plan)
			}
			if tt.skipReason != "" && !strings.Contains(plan["docker"], tt.skipReason) {
				t.Errorf("docker skip reason %q does not say %q", plan["docker"], tt.skipReason)
			}
			if tt.skipReason != "" && !strings.HasPrefix(plan["docker"], "skipping docker backend: ") {
				t.Errorf("docker skip reason %q does not start plainly", plan["docker"])
			}
		})
	}
}

func TestParseBehaviour(t *testing.T) {
	tests := []struct {
		text    string
		env     map[string]string
		health  bool
		trigger string
		wantErr string
	}{
		{text: "keeps running", env: map[string]string{}},
		{text: "keeps running with a health check", env: map[string]string{}, health: true},
		{text: "exits with code 1 after 1s", env: map[string]string{"TESTMODULE_EXIT_CODE": "1", "TESTMODULE_EXIT_AFTER": "1s"}, trigger: evExit},
		{text: "exits with code 0 after 0s", env: map[string]string{"TESTMODULE_EXIT_CODE": "0", "TESTMODULE_EXIT_AFTER": "0s"}, trigger: evExit},
		{text: "becomes unhealthy after 500ms", env: map[string]string{"TESTMODULE_UNHEALTHY_AFTER": "500ms"}, health: true, trigger: evUnhealthy},
		{text: "fails its first 2 starts", env: map[string]string{"TESTMODULE_FAIL_STARTS": "2"}},
		{text: "exits with code 1 after soon", wantErr: "not a duration"},
		{text: "dances", wantErr: "unknown module behaviour"},
		{text: "keeps running, with restart policy \"always\"", wantErr: "unknown module behaviour"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			b, err := parseBehaviour(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			env := b.env
			if env == nil {
				env = map[string]string{}
			}
			if !maps.Equal(env, tt.env) || b.health != tt.health || b.trigger != tt.trigger {
				t.Errorf("got env %v health %v trigger %q, want %v %v %q", env, b.health, b.trigger, tt.env, tt.health, tt.trigger)
			}
		})
	}
}

func TestChunkCreateOptions(t *testing.T) {
	long := strings.Repeat("x", 2*createOptionsChunk+10)
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{name: "empty", in: "", want: map[string]string{"createOptions": "{}"}},
		{name: "short", in: `{"a":1}`, want: map[string]string{"createOptions": `{"a":1}`}},
		{name: "exactly one chunk", in: long[:createOptionsChunk], want: map[string]string{"createOptions": long[:createOptionsChunk]}},
		{name: "three chunks", in: long, want: map[string]string{
			"createOptions":   long[:createOptionsChunk],
			"createOptions01": long[createOptionsChunk : 2*createOptionsChunk],
			"createOptions02": long[2*createOptionsChunk:],
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := chunkCreateOptions(tt.in); !maps.Equal(got, tt.want) {
				t.Errorf("got %d chunks %v, want %v", len(got), slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want)))
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := backoff{unit: time.Second, cap: 5 * time.Second}
	for n, want := range []time.Duration{1, 2, 4, 5, 5} {
		if got := b.delay(n); got != want*time.Second {
			t.Errorf("delay(%d) = %s, want %s", n, got, want*time.Second)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := map[string][]string{
		"edgeHub, first, middle and last": {"edgeHub", "first", "middle", "last"},
		"1, 2 and 4":                      {"1", "2", "4"},
		"one":                             {"one"},
	}
	for in, want := range tests {
		if got := splitList(in); !slices.Equal(got, want) {
			t.Errorf("splitList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseHubReady(t *testing.T) {
	out := `{"time":"t","level":"INFO","msg":"fake IoT Hub started","mqtt_tls":"127.0.0.1:1"}
not json at all
{"time":"t","level":"INFO","msg":"fakehub ready","mqtt_address":"127.0.0.1:8883","http_address":"127.0.0.1:8443"}
`
	mqtt, http, ok := parseHubReady(out)
	if !ok || mqtt != "127.0.0.1:8883" || http != "127.0.0.1:8443" {
		t.Errorf("got %q %q %v", mqtt, http, ok)
	}
	if _, _, ok := parseHubReady(`{"msg":"fakehub ready","mqtt_address":"127.0.0.1:8883"}`); ok {
		t.Error("a ready line without the HTTP address was accepted")
	}
}

func TestTaggedScenarios(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.feature": "@docker\nFeature: A\n  Scenario: one\n    Given x\n  Scenario Outline: two <n>\n",
		"b.feature": "Feature: B\n  Scenario: three\n  @docker @slow\n  Scenario: four\n  Scenario: five\n",
	}
	var paths []string
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	got := taggedScenarios(paths, "@docker")
	if want := []string{"one", "two <n>", "four"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHasAll(t *testing.T) {
	env := []byte("A=1\x00OUTPOST_FEATURES_SCENARIO=7-3\x00TESTMODULE_NAME=probe\x00")
	tests := []struct {
		want []string
		ok   bool
	}{
		{[]string{"A=1"}, true},
		{[]string{"OUTPOST_FEATURES_SCENARIO=7-3", "TESTMODULE_NAME=probe"}, true},
		{[]string{"OUTPOST_FEATURES_SCENARIO=7-30"}, false}, // no prefix matches
		{[]string{"OUTPOST_FEATURES_SCENARIO=7-"}, false},
		{[]string{"TESTMODULE_NAME=pro"}, false},
	}
	for _, tt := range tests {
		if got := hasAll(env, tt.want); got != tt.ok {
			t.Errorf("hasAll(%q) = %v, want %v", tt.want, got, tt.ok)
		}
	}
	if run, ok := markerRun(env); !ok || run != 7 {
		t.Errorf("markerRun = %d, %v; want 7", run, ok)
	}
}
