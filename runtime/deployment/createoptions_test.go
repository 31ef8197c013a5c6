package deployment

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"unicode/utf16"
)

// agentWithSettings returns a desired document whose tempSensor module has
// the given settings members next to its image.
func agentWithSettings(t *testing.T, settings map[string]any) []byte {
	t.Helper()
	doc := baseAgent()
	s := map[string]any{"image": "img:1"}
	for k, v := range settings {
		s[k] = v
	}
	set(doc, "modules.tempSensor.settings", s)
	return mustJSON(t, doc)
}

func TestCreateOptions_Reader(t *testing.T) {
	const full = `{"HostConfig":{"Privileged":true}}`
	tests := []struct {
		name     string
		settings map[string]any
		want     string // joined createOptions on success
		field    string // offending field on failure, relative to settings
	}{
		{name: "absent", settings: map[string]any{}, want: "{}"},
		{name: "empty string", settings: map[string]any{"createOptions": ""}, want: "{}"},
		{name: "null text", settings: map[string]any{"createOptions": "null"}, want: "{}"},
		{name: "NULL text", settings: map[string]any{"createOptions": " NULL "}, want: "{}"},
		{name: "JSON null", settings: map[string]any{"createOptions": nil}, want: "{}"},
		{name: "single", settings: map[string]any{"createOptions": full}, want: full},
		{name: "unbroken sequence joined", settings: map[string]any{
			"createOptions": full[:5], "createOptions01": full[5:20], "createOptions02": full[20:],
		}, want: full},
		{name: "keys are case-insensitive", settings: map[string]any{
			"CreateOptions": full[:5], "CREATEOPTIONS01": full[5:20], "createoptions02": full[20:],
		}, want: full},
		{name: "object form is serialized", settings: map[string]any{"createOptions": map[string]any{"HostConfig": map[string]any{"Privileged": true}}}, want: full},
		{name: "gap", settings: map[string]any{"createOptions": full[:5], "createOptions02": full[5:]}, field: "createOptions02"},
		{name: "first chunk missing", settings: map[string]any{"createOptions01": full}, field: "createOptions01"},
		{name: "one-digit number", settings: map[string]any{"createOptions": full[:5], "createOptions1": full[5:]}, field: "createOptions1"},
		{name: "three-digit number", settings: map[string]any{"createOptions": full[:5], "createOptions001": full[5:]}, field: "createOptions001"},
		{name: "number zero", settings: map[string]any{"createOptions": full[:5], "createOptions00": full[5:]}, field: "createOptions00"},
		{name: "number 100", settings: map[string]any{"createOptions": full[:5], "createOptions100": full[5:]}, field: "createOptions100"},
		{name: "duplicate spelling", settings: map[string]any{"createOptions": full, "CreateOptions": full}, field: "createOptions"},
		{name: "joined text not JSON", settings: map[string]any{"createOptions": full[:5], "createOptions01": full[5 : len(full)-1]}, field: "createOptions"},
		{name: "joined text an array", settings: map[string]any{"createOptions": "[]"}, field: "createOptions"},
		{name: "unrelated keys ignored", settings: map[string]any{"createOptionsX": 1, "xcreateOptions": 2, "createOptions": full}, want: full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseAgent(agentWithSettings(t, tt.settings))
			if tt.field != "" {
				wantError(t, err, CodeInvalid, "modules.tempSensor.settings."+tt.field)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := c.Modules["tempSensor"].CreateOptions; got != tt.want {
				t.Errorf("createOptions %q, want %q", got, tt.want)
			}
		})
	}
}

// longCreateOptions is a realistic createOptions longer than one twin value.
func longCreateOptions() string {
	var ports []string
	bindings := map[string]any{}
	for p := 8000; p < 8040; p++ {
		ports = append(ports, fmt.Sprint(p))
		bindings[fmt.Sprintf("%d/tcp", p)] = []any{map[string]any{"HostPort": fmt.Sprint(p)}}
	}
	b, _ := json.Marshal(map[string]any{
		"Env":        []string{"PORTS=" + strings.Join(ports, ",")},
		"HostConfig": map[string]any{"PortBindings": bindings, "Binds": []string{"/data:/data"}},
	})
	return string(b)
}

func TestChunkCreateOptions_RoundTrip(t *testing.T) {
	long := longCreateOptions()
	if len(long) <= 3*chunkSize {
		t.Fatalf("test data too short: %d", len(long))
	}
	chunks := ChunkCreateOptions(long)
	var keys []string
	for k, v := range chunks {
		keys = append(keys, k)
		if n := len(utf16.Encode([]rune(v))); n > chunkSize {
			t.Errorf("%s holds %d UTF-16 units", k, n)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		if k != chunkKey(i) {
			t.Fatalf("keys %v are not an unbroken sequence", keys)
		}
	}
	joined, err := JoinCreateOptions(chunks)
	if err != nil || joined != long {
		t.Fatalf("JoinCreateOptions: %v, equal=%v", err, joined == long)
	}
	settings := map[string]any{}
	for k, v := range chunks {
		settings[k] = v
	}
	c, err := ParseAgent(agentWithSettings(t, settings))
	if err != nil {
		t.Fatal(err)
	}
	if c.Modules["tempSensor"].CreateOptions != long {
		t.Error("ParseAgent does not join the chunks back")
	}
}

func TestChunkCreateOptions_Edges(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		if got := ChunkCreateOptions(""); len(got) != 1 || got["createOptions"] != "" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("exactly one chunk", func(t *testing.T) {
		if got := ChunkCreateOptions(strings.Repeat("a", chunkSize)); len(got) != 1 {
			t.Errorf("512 characters gave %d chunks", len(got))
		}
		if got := ChunkCreateOptions(strings.Repeat("a", chunkSize+1)); len(got) != 2 || got["createOptions01"] != "a" {
			t.Errorf("513 characters gave %v", got)
		}
	})
	t.Run("surrogate pair not split", func(t *testing.T) {
		s := strings.Repeat("a", chunkSize-1) + "😀" + "b"
		got := ChunkCreateOptions(s)
		if got["createOptions"] != strings.Repeat("a", chunkSize-1) || got["createOptions01"] != "😀b" {
			t.Errorf("got %q / %q", got["createOptions"], got["createOptions01"])
		}
	})
	t.Run("more than 100 chunks keeps the rest", func(t *testing.T) {
		s := strings.Repeat("x", maxChunks*chunkSize+10)
		got := ChunkCreateOptions(s)
		if len(got) != maxChunks || len(got["createOptions99"]) != chunkSize+10 {
			t.Fatalf("%d chunks, last %d", len(got), len(got["createOptions99"]))
		}
		if joined, err := JoinCreateOptions(got); err == nil || joined != "" {
			// The text is not a JSON object, so the reader rejects it; what
			// matters is that no piece was dropped.
			t.Errorf("join accepted non-JSON")
		}
		var b strings.Builder
		for i := 0; i < maxChunks; i++ {
			b.WriteString(got[chunkKey(i)])
		}
		if b.String() != s {
			t.Error("chunks lost text")
		}
	})
}

// TestCreateOptions_DesignNoteExamples parses the three twin fragments of the
// "Extending createOptions Length" design note.
func TestCreateOptions_DesignNoteExamples(t *testing.T) {
	const want = `{"HostConfig":{"PortBindings":{"8883/tcp":[{"HostPort":"8883"}],"443/tcp":[{"HostPort":"443"}],"5671/tcp":[{"HostPort":"5671"}]}}}`
	for _, tt := range []struct {
		file  string
		field string
	}{
		{"extended-ordered.json", ""},
		{"extended-unordered.json", ""},
		{"extended-gap.json", "systemModules.edgeHub.settings.createOptions03"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(readFile(t, "testdata/createoptions/"+tt.file), &doc); err != nil {
				t.Fatal(err)
			}
			doc["schemaVersion"] = "1.0"
			doc["runtime"] = map[string]any{"type": "docker"}
			c, err := ParseAgent(mustJSON(t, doc))
			if tt.field != "" {
				wantError(t, err, CodeInvalid, tt.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.SystemModules.EdgeHub.CreateOptions; got != want {
				t.Errorf("got %s", got)
			}
			if got := c.SystemModules.EdgeAgent.Env["RuntimeLogLevel"]; got != "Debug" {
				t.Errorf("edgeAgent env %q", got)
			}
		})
	}
}
