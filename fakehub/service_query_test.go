package fakehub

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// queryGolden are queries and their canonical form ("" = rejected). They seed the fuzz
// target.
var queryGolden = []struct{ in, canonical string }{
	{"SELECT * FROM devices", "SELECT * FROM devices"},
	{"select * from devices", "SELECT * FROM devices"},
	{"  SELECT\t*\nFROM   devices  ", "SELECT * FROM devices"},
	{"SELECT * FROM devices.modules", "SELECT * FROM devices.modules"},
	{"SELECT * FROM Devices.Modules", "SELECT * FROM devices.modules"},
	{"SELECT * FROM devices WHERE deviceId = 'dev1'", "SELECT * FROM devices WHERE deviceId = 'dev1'"},
	{"SELECT * FROM devices WHERE capabilities.iotEdge = true", "SELECT * FROM devices WHERE capabilities.iotEdge = true"},
	{"SELECT * FROM devices WHERE capabilities.iotEdge=TRUE", "SELECT * FROM devices WHERE capabilities.iotEdge = true"},
	{"SELECT * FROM devices.modules WHERE deviceId = 'e1' and moduleId='$edgeAgent'", "SELECT * FROM devices.modules WHERE deviceId = 'e1' AND moduleId = '$edgeAgent'"},
	{"SELECT * FROM devices WHERE tags.floor = 3", "SELECT * FROM devices WHERE tags.floor = 3"},
	{"SELECT * FROM devices WHERE tags.t = -1.5", "SELECT * FROM devices WHERE tags.t = -1.5"},
	{"SELECT * FROM devices WHERE tags.t = 1e3", "SELECT * FROM devices WHERE tags.t = 1000"},
	{"SELECT * FROM devices WHERE tags.name = 'O''Brien'", "SELECT * FROM devices WHERE tags.name = 'O''Brien'"},
	{"SELECT * FROM devices WHERE properties.reported.$version = 2", "SELECT * FROM devices WHERE properties.reported.$version = 2"},
	{"", ""},
	{"SELECT deviceId FROM devices", ""},
	{"SELECT * FROM devices.jobs", ""},
	{"SELECT * FROM configurations", ""},
	{"SELECT * FROM devices WHERE", ""},
	{"SELECT * FROM devices WHERE deviceId", ""},
	{"SELECT * FROM devices WHERE deviceId =", ""},
	{"SELECT * FROM devices WHERE deviceId = 'unterminated", ""},
	{"SELECT * FROM devices WHERE deviceId != 'x'", ""},
	{"SELECT * FROM devices WHERE a = 1 OR b = 2", ""},
	{"SELECT * FROM devices WHERE a = nan", ""},
	{"SELECT * FROM devices WHERE a = 0x10", ""},
	{"SELECT * FROM devices WHERE a = 1 .5", ""},
	{"SELECT * FROM devices GROUP BY status", ""},
	{"SELECT COUNT() FROM devices", ""},
}

func TestParseTwinQuery(t *testing.T) {
	for _, tt := range queryGolden {
		t.Run(tt.in, func(t *testing.T) {
			q, err := parseTwinQuery(tt.in)
			if tt.canonical == "" {
				if err == nil {
					t.Fatalf("parsed as %q, want an error", q)
				}
				if !strings.Contains(err.Error(), "the fake hub supports") {
					t.Errorf("error %q does not say what is supported", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got := q.String(); got != tt.canonical {
				t.Errorf("canonical = %q, want %q", got, tt.canonical)
			}
		})
	}
}

func TestTwinQuery_Matches(t *testing.T) {
	doc := map[string]any{
		"deviceId":     "dev1",
		"capabilities": map[string]any{"iotEdge": true},
		"tags":         map[string]any{"floor": float64(3), "list": []any{1.0}},
	}
	tests := []struct {
		query string
		want  bool
	}{
		{"SELECT * FROM devices", true},
		{"SELECT * FROM devices WHERE deviceId = 'dev1'", true},
		{"SELECT * FROM devices WHERE deviceId = 'DEV1'", false},
		{"SELECT * FROM devices WHERE capabilities.iotEdge = true", true},
		{"SELECT * FROM devices WHERE capabilities.iotEdge = false", false},
		{"SELECT * FROM devices WHERE tags.floor = 3", true},
		{"SELECT * FROM devices WHERE tags.floor = '3'", false},
		{"SELECT * FROM devices WHERE tags.list = 1", false},
		{"SELECT * FROM devices WHERE tags.missing = 1", false},
		{"SELECT * FROM devices WHERE deviceId.x = 1", false},
		{"SELECT * FROM devices WHERE deviceId = 'dev1' AND tags.floor = 4", false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := parseTwinQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.matches(doc); got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzParseTwinQuery: parsing never panics, and an accepted query's canonical form parses
// back to the same query.
func FuzzParseTwinQuery(f *testing.F) {
	for _, g := range queryGolden {
		f.Add(g.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseTwinQuery(s)
		if err != nil {
			return
		}
		again, err := parseTwinQuery(q.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", q.String(), s, err)
		}
		if !reflect.DeepEqual(q, again) {
			t.Fatalf("%q -> %q -> %#v, want %#v", s, q.String(), again, q)
		}
		q.matches(map[string]any{"deviceId": "d", "tags": map[string]any{"a": []any{map[string]any{}}}})
	})
}

func TestService_Query(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("edge1", true)
	h.mustCreateDevice("leaf1", false)
	h.call("PATCH", "/twins/leaf1", `{"tags":{"floor":3}}`)

	ids := func(t *testing.T, query string) []string {
		t.Helper()
		resp := h.with(t).call("POST", "/devices/query?api-version=2021-04-12", map[string]string{"query": query})
		if resp.status != 200 {
			t.Fatalf("query %q: %d %s", query, resp.status, resp.body)
		}
		var twins []Twin
		svcDecode(t, resp, &twins)
		var out []string
		for _, tw := range twins {
			id := tw.DeviceID
			if tw.ModuleID != "" {
				id += "/" + tw.ModuleID
			}
			out = append(out, id)
		}
		sort.Strings(out)
		return out
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"SELECT * FROM devices", []string{"edge1", "leaf1"}},
		{"SELECT * FROM devices WHERE deviceId = 'leaf1'", []string{"leaf1"}},
		{"SELECT * FROM devices WHERE capabilities.iotEdge = true", []string{"edge1"}},
		{"SELECT * FROM devices WHERE tags.floor = 3", []string{"leaf1"}},
		{"SELECT * FROM devices WHERE deviceId = 'nobody'", nil},
		{"SELECT * FROM devices.modules WHERE deviceId = 'edge1'", []string{"edge1/$edgeAgent", "edge1/$edgeHub"}},
		{"SELECT * FROM devices.modules WHERE moduleId = '$edgeHub'", []string{"edge1/$edgeHub"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := ids(t, tt.query); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("unsupported", func(t *testing.T) {
		h := h.with(t)
		resp := h.call("POST", "/devices/query", `{"query":"SELECT COUNT() AS n FROM devices"}`)
		e := wantError(t, resp, 400, 400004, "ArgumentInvalid")
		if !strings.Contains(e.message, "the fake hub supports") {
			t.Errorf("message %q", e.message)
		}
	})
	t.Run("result is an empty array, not null", func(t *testing.T) {
		h := h.with(t)
		resp := h.call("POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE deviceId = 'x'"}`)
		if strings.TrimSpace(string(resp.body)) != "[]" {
			t.Errorf("body = %s, want []", resp.body)
		}
	})
}
