package deployment

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles returns every JSON file under testdata.
func seedFiles(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, pattern := range []string{"testdata/manifests/*.json", "testdata/invalid/*.json", "testdata/hub/*.json", "testdata/createoptions/*.json"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			out = append(out, readFile(t, f))
		}
	}
	if len(out) == 0 {
		t.Fatal("no seed files")
	}
	return out
}

// desiredSeeds extracts the $edgeAgent or $edgeHub desired documents of the
// seed manifests.
func desiredSeeds(t testing.TB, twin string) [][]byte {
	var out [][]byte
	for _, data := range seedFiles(t) {
		var doc struct {
			ModulesContent map[string]map[string]json.RawMessage `json:"modulesContent"`
		}
		if json.Unmarshal(data, &doc) != nil {
			continue
		}
		if d, ok := doc.ModulesContent[twin][desiredKey]; ok {
			out = append(out, d)
		}
	}
	return out
}

// checkFuzzError asserts that err is an *Error with one of the codes.
func checkFuzzError(t *testing.T, err error, codes ...int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	for _, c := range codes {
		if e.Code == c {
			return
		}
	}
	t.Fatalf("code %d not in %v: %v", e.Code, codes, err)
}

func checkModule(t *testing.T, m Module) {
	t.Helper()
	if m.Type != "docker" || m.Image == "" || m.Name == "" {
		t.Fatalf("module %+v", m)
	}
	if m.Status != StatusRunning && m.Status != StatusStopped {
		t.Fatalf("status %q", m.Status)
	}
	switch m.RestartPolicy {
	case RestartNever, RestartOnFailure, RestartOnUnhealthy, RestartAlways:
	default:
		t.Fatalf("restart policy %q", m.RestartPolicy)
	}
	if m.ImagePullPolicy != PullOnCreate && m.ImagePullPolicy != PullNever {
		t.Fatalf("pull policy %q", m.ImagePullPolicy)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(m.CreateOptions), &obj); err != nil {
		t.Fatalf("createOptions %q is not a JSON object: %v", m.CreateOptions, err)
	}
	// Chunking for reported properties gives the same text back.
	joined, err := JoinCreateOptions(ChunkCreateOptions(m.CreateOptions))
	if err != nil || joined != m.CreateOptions {
		t.Fatalf("createOptions round trip: %v", err)
	}
}

func FuzzParseAgent(f *testing.F) {
	for _, s := range desiredSeeds(f, EdgeAgentTwin) {
		f.Add(s)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schemaVersion":"1.1","modules":{"m":{"settings":{"createOptions":"{","createOptions01":"}"}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseAgent(data)
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			checkFuzzError(t, err, CodeInvalid, CodeSchemaVersion, CodeEmpty)
			return
		}
		a := c.SystemModules.EdgeAgent
		if a.StartupOrder != 0 || a.RestartPolicy != RestartAlways || a.Status != StatusRunning {
			t.Fatalf("edgeAgent not forced: %+v", a)
		}
		checkModule(t, a)
		checkModule(t, c.SystemModules.EdgeHub)
		for name, m := range c.Modules {
			if name != m.Name {
				t.Fatalf("module %q named %q", name, m.Name)
			}
			checkModule(t, m)
		}
		for _, rc := range c.Redacted().Runtime.Settings.RegistryCredentials {
			if rc.Password != "***" {
				t.Fatal("password not redacted")
			}
		}
	})
}

func FuzzParseHub(f *testing.F) {
	for _, s := range desiredSeeds(f, EdgeHubTwin) {
		f.Add(s)
	}
	f.Add(readFile(f, "testdata/hub/route-priority-ttl.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseHub(data)
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			checkFuzzError(t, err, CodeInvalid)
			return
		}
		for name, r := range c.Routes {
			if name != r.Name || strings.TrimSpace(r.Expr) == "" || strings.TrimSpace(name) == "" {
				t.Fatalf("route %q: %+v", name, r)
			}
			if (r.Priority < 0 || r.Priority > 9) && r.Priority != DefaultPriority {
				t.Fatalf("priority %d", r.Priority)
			}
		}
		if c.StoreAndForward.MaxSizeBytes < 0 {
			t.Fatalf("maxSizeBytes %d", c.StoreAndForward.MaxSizeBytes)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if m != nil {
				t.Fatal("manifest and error")
			}
			checkFuzzError(t, err, CodeInvalid, CodeSchemaVersion, CodeEmpty)
			return
		}
		if m.Agent == nil || m.Hub == nil {
			t.Fatal("missing agent or hub")
		}
		for name, raw := range m.Desired {
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("desired %s: %v", name, err)
			}
		}
		// The agent document parses the same on its own.
		if _, err := ParseAgent(m.Desired[EdgeAgentTwin]); err != nil {
			t.Fatalf("agent desired re-parse: %v", err)
		}
		if _, err := ParseHub(m.Desired[EdgeHubTwin]); err != nil {
			t.Fatalf("hub desired re-parse: %v", err)
		}
	})
}
