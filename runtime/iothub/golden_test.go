package iothub_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// readInputs returns the inputs listed in testdata/parse/{name}.txt: one per line, blank lines
// and "#"/"# ..." comment lines skipped, lines starting with '"' Go-unquoted (for empty
// strings, surrounding spaces and a bare "#").
func readInputs(tb testing.TB, name string) []string {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "parse", name+".txt"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var inputs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || line == "#" || strings.HasPrefix(line, "# "):
			continue
		case strings.HasPrefix(line, `"`):
			s, err := strconv.Unquote(line)
			if err != nil {
				tb.Fatalf("%s.txt:%d: bad quoted line: %v", name, n, err)
			}
			inputs = append(inputs, s)
		default:
			inputs = append(inputs, line)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return inputs
}

// checkGolden compares got with the golden file, or rewrites it under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./runtime/iothub -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update and review the diff):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func marshalEntries(t *testing.T, entries any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(entries); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// propView renders a Null property as "value": null.
type propView struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

func bagView(b iothub.Bag) []propView {
	var out []propView
	for _, p := range b {
		v := propView{Key: p.Key}
		if !p.Null {
			v.Value = &p.Value
		}
		out = append(out, v)
	}
	return out
}

type topicView struct {
	Kind      string     `json:"kind"`
	DeviceID  string     `json:"deviceId,omitempty"`
	ModuleID  string     `json:"moduleId,omitempty"`
	Input     string     `json:"input,omitempty"`
	Bag       []propView `json:"bag,omitempty"`
	RequestID string     `json:"rid,omitempty"`
	Status    *int       `json:"status,omitempty"`
	Version   *int64     `json:"version,omitempty"`
	Method    string     `json:"method,omitempty"`
	Canonical string     `json:"canonical"`
}

type topicEntry struct {
	Input  string     `json:"input"`
	Result *topicView `json:"result,omitempty"`
	Error  string     `json:"error,omitempty"`
}

func TestParseTopic_Golden(t *testing.T) {
	var entries []topicEntry
	for _, in := range readInputs(t, "topics") {
		e := topicEntry{Input: in}
		tp, err := iothub.ParseTopic(in)
		if err != nil {
			e.Error = err.Error()
		} else {
			v := &topicView{
				Kind: tp.Kind.String(), DeviceID: tp.DeviceID, ModuleID: tp.ModuleID, Input: tp.Input,
				Bag: bagView(tp.Bag), RequestID: tp.RequestID, Method: tp.Method, Canonical: tp.String(),
			}
			if tp.Kind == iothub.KindTwinResponse || tp.Kind == iothub.KindMethodResponse {
				v.Status = &tp.Status
			}
			if tp.HasVersion {
				v.Version = &tp.Version
			}
			e.Result = v
		}
		entries = append(entries, e)
	}
	checkGolden(t, filepath.Join("testdata", "parse", "topics.golden"), marshalEntries(t, entries))
}

type bagEntry struct {
	Input      string            `json:"input"`
	Bag        []propView        `json:"bag,omitempty"`
	Encoded    *string           `json:"encoded,omitempty"`
	System     map[string]string `json:"system,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	Error      string            `json:"error,omitempty"`
}

func TestParseBag_Golden(t *testing.T) {
	var entries []bagEntry
	for _, in := range readInputs(t, "bags") {
		e := bagEntry{Input: in}
		b, err := iothub.ParseBag(in)
		if err != nil {
			e.Error = err.Error()
		} else {
			enc := b.Encode()
			m := iothub.MessageFromBag(nil, b)
			e.Bag, e.Encoded, e.System, e.Properties = bagView(b), &enc, m.System, m.Properties
		}
		entries = append(entries, e)
	}
	checkGolden(t, filepath.Join("testdata", "parse", "bags.golden"), marshalEntries(t, entries))
}

type usernameView struct {
	Host       string            `json:"host"`
	DeviceID   string            `json:"deviceId"`
	ModuleID   string            `json:"moduleId,omitempty"`
	Params     map[string]string `json:"params"`
	Legacy     bool              `json:"legacy,omitempty"`
	APIVersion string            `json:"apiVersion"`
	Formatted  string            `json:"formatted"`
}

type usernameEntry struct {
	Input  string        `json:"input"`
	Result *usernameView `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
}

func TestParseUsername_Golden(t *testing.T) {
	var entries []usernameEntry
	for _, in := range readInputs(t, "usernames") {
		e := usernameEntry{Input: in}
		u, err := iothub.ParseUsername(in)
		if err != nil {
			e.Error = err.Error()
		} else {
			e.Result = &usernameView{
				Host: u.Host, DeviceID: u.DeviceID, ModuleID: u.ModuleID, Params: u.Params,
				Legacy: u.Legacy, APIVersion: u.APIVersion(),
				Formatted: iothub.FormatUsername(u.Host, u.DeviceID, u.ModuleID, u.Params),
			}
		}
		entries = append(entries, e)
	}
	checkGolden(t, filepath.Join("testdata", "parse", "usernames.golden"), marshalEntries(t, entries))
}

type filterView struct {
	Kind      string `json:"kind"`
	DeviceID  string `json:"deviceId,omitempty"`
	ModuleID  string `json:"moduleId,omitempty"`
	AnyDevice bool   `json:"anyDevice,omitempty"`
	Canonical string `json:"canonical"`
}

type filterEntry struct {
	Input  string      `json:"input"`
	Result *filterView `json:"result,omitempty"`
	Error  string      `json:"error,omitempty"`
}

func TestParseFilter_Golden(t *testing.T) {
	var entries []filterEntry
	for _, in := range readInputs(t, "filters") {
		e := filterEntry{Input: in}
		s, err := iothub.ParseFilter(in)
		if err != nil {
			e.Error = err.Error()
		} else {
			e.Result = &filterView{
				Kind: s.Kind.String(), DeviceID: s.DeviceID, ModuleID: s.ModuleID,
				AnyDevice: s.AnyDevice, Canonical: s.Filter(),
			}
		}
		entries = append(entries, e)
	}
	checkGolden(t, filepath.Join("testdata", "parse", "filters.golden"), marshalEntries(t, entries))
}

// TestBuild_Golden pins the exact bytes of every outbound form (section 11).
func TestBuild_Golden(t *testing.T) {
	c2dBag := iothub.Bag{
		{Key: "$.mid", Value: "6b822696-f75a-46f5-8b02-0680db65abf5"},
		{Key: "$.to", Value: iothub.C2DTo("dev1")},
		{Key: "custom", Value: "a b&c=d/e?f+g$h~i"},
	}
	everything := iothub.Message{
		System: map[string]string{
			"iothub-operation": "op", "iothub-ack": "full", "diagctx": "k=v", "diagid": "d1",
			"sub": "thermostat1", "ifid": "urn:x", "schema": "s", "cmid": "sender", "cdid": "edge1",
			"on": "out1", "ctime": "2024-01-02T03:04:05Z", "ce": "utf-8", "ct": "application/json",
			"exp": "2030-01-01T00:00:00Z", "to": "/devices/d/messages/devicebound", "uid": "u",
			"cid": "c", "mid": "m", "zz-unknown": "z", "aa-unknown": "a",
		},
		Properties: map[string]string{"zeta": "last", "alpha": "first", "temperature": "21.5", "empty": ""},
	}
	cases := []struct{ name, got string }{
		{"telemetry device, empty bag", iothub.TelemetryTopic("d", "", nil)},
		{"telemetry module output", iothub.TelemetryTopic("edge1", "filter", iothub.Bag{{Key: "$.on", Value: "alert"}})},
		{"telemetry null and empty values", iothub.TelemetryTopic("d", "", iothub.Bag{{Key: "prop1", Null: true}, {Key: "prop2"}, {Key: "prop3", Value: "a string"}})},
		{"c2d with to, mid and a custom property", iothub.C2DTopic("dev1", c2dBag)},
		{"c2d to value", iothub.C2DTo("dev1")},
		{"input from a module", iothub.InputTopic("edge1", "sink", "in1", iothub.Bag{{Key: "$.cdid", Value: "edge1"}, {Key: "$.cmid", Value: "filter"}, {Key: "temp", Value: "21"}})},
		{"input from a leaf device", iothub.InputTopic("edge1", "sink", "in1", iothub.Bag{{Key: "$.cdid", Value: "leaf%1"}})},
		{"twin get", iothub.TwinGetTopic("1")},
		{"twin reported patch", iothub.TwinPatchReportedTopic("reported_prop")},
		{"twin res 200 without version", iothub.TwinResponseTopic(iothub.StatusOK, "1", 0)},
		{"twin res 204 with version", iothub.TwinResponseTopic(iothub.StatusNoContent, "reported_prop", 2)},
		{"twin res 400", iothub.TwinResponseTopic(iothub.StatusBadRequest, "0d1e8a8c-7c0e-4f33-9f4b-3a0b6c9d2e11", 0)},
		{"desired patch", iothub.DesiredPatchTopic(8)},
		{"method request", iothub.MethodRequestTopic("reboot", "42")},
		{"method response", iothub.MethodResponseTopic(iothub.StatusOK, "42")},
		{"c2d filter", iothub.C2DFilter("dev1")},
		{"input filter", iothub.InputFilter("edge1", "sink")},
		{"client id device", iothub.ClientID("d", "")},
		{"client id module", iothub.ClientID("edge1", "$edgeHub")},
		{"username device default api-version", iothub.FormatUsername("contoso.azure-devices.net", "d", "", nil)},
		{"username module with params", iothub.FormatUsername("contoso.azure-devices.net", "edge1", "filter", map[string]string{
			"DeviceClientType": "outpost/0.1 (go; linux)", "model-id": "dtmi:com:example:Thermostat;1", "api-version": "2020-09-30",
		})},
		{"message bag, every system property", iothub.TelemetryTopic("d", "", everything.Bag())},
	}
	var sb strings.Builder
	sb.WriteString("# Outbound forms built by this package; regenerate with go test ./runtime/iothub -update.\n")
	for _, c := range cases {
		sb.WriteString(c.name + "\n\t" + c.got + "\n")
	}
	checkGolden(t, filepath.Join("testdata", "build.golden"), []byte(sb.String()))
}
