package agent_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

// convergedHarness runs the test deployment to convergence.
func convergedHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	return h
}

func TestMethod_Ping(t *testing.T) {
	h := convergedHarness(t)
	if status, body := h.twin.Call(t, "ping", "{}"); status != 200 || body != "" {
		t.Errorf("ping = %d %q, want 200 and no payload", status, body)
	}
}

func TestMethod_RestartModule(t *testing.T) {
	h := convergedHarness(t)
	for _, tc := range []struct {
		name, payload string
		status        int
		message       string // in the error body
		calls         []string
	}{
		{"restarts a running module", `{"schemaVersion":"1.0","id":"tempSensor"}`, 200, "", []string{"stop tempSensor", "start tempSensor"}},
		{"unknown module", `{"schemaVersion":"1.0","id":"nope"}`, 500, `module "nope" not found`, nil},
		{"module not running", `{"schemaVersion":"1.0","id":"archiver"}`, 500, "not running", nil},
		{"no id", `{"schemaVersion":"1.0"}`, 400, `"id"`, nil},
		{"no payload", ``, 400, "payload is missing", nil},
		{"not JSON", `{"id":`, 400, "invalid method payload", nil},
		{"schema 2", `{"schemaVersion":"2.0","id":"tempSensor"}`, 400, "schemaVersion", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.rt.ResetCalls()
			status, body := h.twin.Call(t, "RestartModule", tc.payload)
			if status != tc.status {
				t.Errorf("status %d (%s), want %d", status, body, tc.status)
			}
			if tc.message != "" {
				var e struct{ Message string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Message, tc.message) {
					t.Errorf("body %s, want a message containing %q", body, tc.message)
				}
			}
			var calls []string
			for _, c := range h.rt.CallStrings() {
				if strings.HasSuffix(c, " "+"tempSensor") && (strings.HasPrefix(c, "stop") || strings.HasPrefix(c, "start")) {
					calls = append(calls, c)
				}
			}
			if !slices.Equal(calls, tc.calls) {
				t.Errorf("calls %v, want %v", calls, tc.calls)
			}
		})
	}
}

func TestMethod_GetModuleLogs(t *testing.T) {
	h := convergedHarness(t)
	if err := h.rt.SetLogs("tempSensor", "<6> one\n<4> two\n<6> three\n<6> four\n"); err != nil {
		t.Fatal(err)
	}
	if err := h.rt.SetLogs("filter", "filtered\n"); err != nil {
		t.Fatal(err)
	}
	type item struct {
		ID           string  `json:"id"`
		Payload      *string `json:"payload"`
		PayloadBytes []byte  `json:"payloadBytes"`
	}
	for _, tc := range []struct {
		name, payload string
		status        int
		want          map[string]string // module -> logs
		gzip          bool
	}{
		{"tail", `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"tail":2}}],"encoding":"none","contentType":"text"}`,
			200, map[string]string{"tempSensor": "<6> three\n<6> four\n"}, false},
		{"regex over modules, defaults", `{"schemaVersion":"1.0","items":[{"id":"^(temp|fil)"}]}`,
			200, map[string]string{"tempSensor": "<6> one\n<4> two\n<6> three\n<6> four\n", "filter": "filtered\n"}, false},
		{"single item object and filters", `{"schemaVersion":"1.0","items":{"id":"tempSensor","filter":{"loglevel":6,"regex":"o"}}}`,
			200, map[string]string{"tempSensor": "<6> one\n<6> four\n"}, false},
		{"gzip", `{"schemaVersion":"1.0","items":[{"id":"filter"}],"encoding":"gzip"}`,
			200, map[string]string{"filter": "filtered\n"}, true},
		{"since as duration", `{"schemaVersion":"1.0","items":[{"id":"filter","filter":{"since":"10m","until":1700000000}}]}`,
			200, map[string]string{"filter": "filtered\n"}, false},
		{"no match", `{"schemaVersion":"1.0","items":[{"id":"nothing"}]}`, 200, map[string]string{}, false},
		{"bad regex", `{"schemaVersion":"1.0","items":[{"id":"("}]}`, 400, nil, false},
		{"bad encoding", `{"schemaVersion":"1.0","items":[{"id":"filter"}],"encoding":"zip"}`, 400, nil, false},
		{"bad content type", `{"schemaVersion":"1.0","items":[{"id":"filter"}],"contentType":"xml"}`, 400, nil, false},
		{"level without a prefix is 6, as in Azure", `{"schemaVersion":"1.0","items":[{"id":"filter","filter":{"loglevel":6}}]}`,
			200, map[string]string{"filter": "filtered\n"}, false},
		{"regex on the text after the level", `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"regex":"^t"}}]}`,
			200, map[string]string{"tempSensor": "<4> two\n<6> three\n"}, false},
		{"bad since", `{"schemaVersion":"1.0","items":[{"id":"filter","filter":{"since":"yesterday"}}]}`, 400, nil, false},
		{"no items", `{"schemaVersion":"1.0"}`, 400, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.twin.Call(t, "GetModuleLogs", tc.payload)
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, body, tc.status)
			}
			if tc.status != 200 {
				return
			}
			var items []item
			if err := json.Unmarshal([]byte(body), &items); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			got := map[string]string{}
			for _, it := range items {
				switch {
				case tc.gzip:
					zr, err := gzip.NewReader(bytes.NewReader(it.PayloadBytes))
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(zr)
					got[it.ID] = string(b)
				case it.Payload != nil:
					got[it.ID] = *it.Payload
				default:
					t.Errorf("item %q has no payload", it.ID)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got logs of %d modules, want %d: %v", len(got), len(tc.want), got)
			}
			for m, want := range tc.want {
				if got[m] != want {
					t.Errorf("%s logs = %q, want %q", m, got[m], want)
				}
			}
		})
	}
}

func TestMethod_GetModuleLogsRuntimeError(t *testing.T) {
	h := convergedHarness(t)
	h.rt.Fail(agenttest.OpLogs, "filter", io.ErrUnexpectedEOF)
	status, body := h.twin.Call(t, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"filter"}]}`)
	if status != 500 || !strings.Contains(body, "unexpected EOF") {
		t.Errorf("= %d %s, want 500 with the runtime's error", status, body)
	}
}

func TestMethod_GetModuleLogsFitsAMethodResponse(t *testing.T) {
	h := convergedHarness(t)
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "line %04d %s\n", i, strings.Repeat(`"quoted" \ `, 20))
	}
	for _, m := range []string{"tempSensor", "filter"} {
		if err := h.rt.SetLogs(m, b.String()); err != nil {
			t.Fatal(err)
		}
	}
	for _, enc := range []string{"none", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			status, body := h.twin.Call(t, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"tempSensor|filter"}],"encoding":"`+enc+`"}`)
			if status != 200 {
				t.Fatalf("status %d: %.200s", status, body)
			}
			if len(body) > 128*1024 {
				t.Errorf("response of %d bytes is over IoT Hub's 128 KB", len(body))
			}
			var items []struct {
				ID           string
				Payload      string
				PayloadBytes []byte
			}
			if err := json.Unmarshal([]byte(body), &items); err != nil || len(items) != 2 {
				t.Fatalf("%d items, %v", len(items), err)
			}
			text := items[0].Payload
			if enc == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(items[0].PayloadBytes))
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(zr)
				text = string(raw)
			}
			if !strings.HasSuffix(text, strings.Repeat(`"quoted" \ `, 20)+"\n") || !strings.Contains(text, "line 0999 ") {
				t.Error("the most recent line is missing")
			}
			if strings.Contains(text, "line 0000 ") {
				t.Error("the oldest line was kept although the logs do not fit")
			}
		})
	}
}

// TestMethod_GetModuleLogsJSON asks for contentType "json": each line
// becomes Azure's ModuleLogMessage, with the level and time the line
// starts with, filters apply to the parsed level and text, secrets are
// redacted, and gzip compresses the same JSON.
func TestMethod_GetModuleLogsJSON(t *testing.T) {
	h := convergedHarness(t)
	logs := "<6> 2019-02-14 16:15:35.243 -08:00 [INF] started\n" +
		"<3> 2026-03-01 12:00:00.000 +00:00 cannot log in as myacr with " + password + "\n" +
		"[2026-03-01 12:00:01.500 WRN] the edge runtime's own format\n" +
		"a plain line\n"
	if err := h.rt.SetLogs("tempSensor", logs); err != nil {
		t.Fatal(err)
	}
	type message struct {
		IoTHub    string  `json:"iothub"`
		Device    string  `json:"device"`
		ID        string  `json:"id"`
		Stream    string  `json:"stream"`
		LogLevel  int     `json:"loglevel"`
		Text      string  `json:"text"`
		Timestamp *string `json:"timestamp"`
	}
	ts := func(s string) *string { return &s }
	msg := func(level int, text string, stamp *string) message {
		return message{IoTHub: "hub.example.net", Device: "edge1", ID: "tempSensor", Stream: "stdout", LogLevel: level, Text: text, Timestamp: stamp}
	}
	all := []message{
		msg(6, "[INF] started", ts("2019-02-14T16:15:35.243-08:00")),
		msg(3, "cannot log in as myacr with ***", ts("2026-03-01T12:00:00.000Z")),
		msg(6, "[2026-03-01 12:00:01.500 WRN] the edge runtime's own format", ts("2026-03-01T12:00:01.500")),
		msg(6, "a plain line", nil),
	}
	tests := []struct {
		name, filter, encoding string
		want                   []message
	}{
		{name: "every line", want: all},
		{name: "gzip", encoding: "gzip", want: all},
		{name: "level", filter: `{"loglevel":3}`, want: all[1:2]},
		{name: "regex on the text", filter: `{"regex":"^a plain|format$"}`, want: all[2:]},
		{name: "tail", filter: `{"tail":1}`, want: all[3:]},
		{name: "nothing matches", filter: `{"regex":"nothing"}`, want: []message{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			filter := tc.filter
			if filter == "" {
				filter = "{}"
			}
			enc := tc.encoding
			if enc == "" {
				enc = "none"
			}
			status, body := h.twin.Call(t, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"^tempSensor$","filter":`+filter+`}],"encoding":"`+enc+`","contentType":"json"}`)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var items []struct {
				ID           string  `json:"id"`
				Payload      *string `json:"payload"`
				PayloadBytes []byte  `json:"payloadBytes"`
			}
			if err := json.Unmarshal([]byte(body), &items); err != nil || len(items) != 1 || items[0].ID != "tempSensor" {
				t.Fatalf("body %s: %v", body, err)
			}
			var payload []byte
			if enc == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(items[0].PayloadBytes))
				if err != nil {
					t.Fatal(err)
				}
				payload, _ = io.ReadAll(zr)
			} else if items[0].Payload != nil {
				payload = []byte(*items[0].Payload)
			}
			var got []message
			if err := json.Unmarshal(payload, &got); err != nil {
				t.Fatalf("payload %s is not a JSON array of messages: %v", payload, err)
			}
			if !slices.EqualFunc(got, tc.want, func(a, b message) bool {
				return a.IoTHub == b.IoTHub && a.Device == b.Device && a.ID == b.ID && a.Stream == b.Stream && a.LogLevel == b.LogLevel &&
					a.Text == b.Text && (a.Timestamp == nil) == (b.Timestamp == nil) && (a.Timestamp == nil || *a.Timestamp == *b.Timestamp)
			}) {
				t.Errorf("messages\n %s\nwant\n %+v", payload, tc.want)
			}
			if strings.Contains(string(payload), password) {
				t.Errorf("the payload holds the registry password: %s", payload)
			}
		})
	}
}

func TestMethod_GetModuleLogsJSONFitsAMethodResponse(t *testing.T) {
	h := convergedHarness(t)
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "<6> 2026-03-01 12:00:00.000 +00:00 line %04d %s\n", i, strings.Repeat(`"quoted" \ `, 20))
	}
	if err := h.rt.SetLogs("tempSensor", b.String()); err != nil {
		t.Fatal(err)
	}
	status, body := h.twin.Call(t, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"tempSensor"}],"contentType":"json"}`)
	if status != 200 {
		t.Fatalf("status %d: %.200s", status, body)
	}
	if len(body) > 128*1024 {
		t.Errorf("response of %d bytes is over IoT Hub's 128 KB", len(body))
	}
	var items []struct{ Payload string }
	if err := json.Unmarshal([]byte(body), &items); err != nil || len(items) != 1 {
		t.Fatalf("%d items, %v", len(items), err)
	}
	var msgs []struct{ Text string }
	if err := json.Unmarshal([]byte(items[0].Payload), &msgs); err != nil || len(msgs) == 0 {
		t.Fatalf("payload: %d messages, %v", len(msgs), err)
	}
	if last := msgs[len(msgs)-1].Text; !strings.HasPrefix(last, "line 0999 ") {
		t.Errorf("the most recent line is missing: last %q", last)
	}
	if strings.HasPrefix(msgs[0].Text, "line 0000 ") {
		t.Error("the oldest line was kept although the logs do not fit")
	}
}
