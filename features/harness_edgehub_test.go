package features

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// The edge hub scenarios' pure helpers: a wrong one would let a scenario
// pass for the wrong reason.

func TestQuotedNames(t *testing.T) {
	tests := map[string][]string{
		`"a"`:                {"a"},
		`"a" and "b"`:        {"a", "b"},
		`"a", "b" and "c d"`: {"a", "b", "c d"},
	}
	for in, want := range tests {
		got, err := quotedNames(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("quotedNames(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := quotedNames("a and b"); err == nil {
		t.Error("a list without quotes was accepted")
	}
}

func event(sender string, seq string) hubEvent {
	dev, mod, _ := strings.Cut(sender, "/")
	return hubEvent{DeviceID: dev, ModuleID: mod, Properties: map[string]string{propSeq: seq}}
}

func TestArrival(t *testing.T) {
	evs := []hubEvent{
		event("edge1/a", "1"), event("leaf1", "1"), event("edge1/a", "2"),
		event("edge1/a", "2"), event("edge1/a", "1"), event("edge1/a", "3"), event("edge1/b", "9"),
	}
	a, err := arrivalOf(evs, "edge1/a")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.seqs, []int64{1, 2, 3}) || a.repeats != 2 {
		t.Errorf("got %v with %d repeats, want [1 2 3] with 2", a.seqs, a.repeats)
	}
	if _, err := arrivalOf([]hubEvent{{DeviceID: "leaf1"}}, "leaf1"); err == nil {
		t.Error("a message without a sequence number was accepted")
	}
}

func TestSameSeqs(t *testing.T) {
	tests := []struct {
		name      string
		got, want []int64
		err       string // substring; "" for none
	}{
		{name: "equal", got: []int64{1, 2, 3}, want: []int64{1, 2, 3}},
		{name: "missing", got: []int64{1, 3}, want: []int64{1, 2, 3}, err: "missing 2"},
		{name: "unexpected", got: []int64{1, 2, 3, 4}, want: []int64{1, 2, 3}, err: "unexpected 4"},
		{name: "out of order", got: []int64{1, 3, 2}, want: []int64{1, 2, 3}, err: "out of order: 1, 3, 2"},
		{name: "dropped oldest", got: []int64{4, 5}, want: []int64{1, 2, 3, 4, 5}, err: "missing 1-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sameSeqs("m", tt.got, tt.want)
			switch {
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			}
		})
	}
	if got := missingSeqs([]int64{2, 5}, []int64{1, 2, 3}); !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("missingSeqs = %v, want [1 3]", got)
	}
}

func TestMergePatch(t *testing.T) {
	doc := map[string]any{"a": 1.0, "b": map[string]any{"c": 1.0, "d": 2.0}}
	mergePatch(doc, map[string]any{"a": nil, "b": map[string]any{"c": nil, "e": 3.0}, "f": "x"})
	want := map[string]any{"b": map[string]any{"d": 2.0, "e": 3.0}, "f": "x"}
	if !sameJSON(doc, want) {
		t.Errorf("got %s, want %s", compactJSON(doc), compactJSON(want))
	}
}

func TestHubDesired(t *testing.T) {
	zero, ttl := 0, 5
	h := &hubSettings{
		routes: map[string]hubRoute{
			"plain":  {text: "FROM /messages/* INTO $upstream"},
			"urgent": {text: "FROM /messages/modules/a/* INTO $upstream", priority: &zero, ttlSecs: &ttl},
		},
		ttlSecs:  2,
		maxBytes: 6000,
	}
	b, _ := json.Marshal(h.desired())
	want := `{"routes":{"plain":"FROM /messages/* INTO $upstream","urgent":{"priority":0,"route":"FROM /messages/modules/a/* INTO $upstream","timeToLiveSecs":5}},` +
		`"schemaVersion":"1.1","storeAndForwardConfiguration":{"storeLimits":{"maxSizeBytes":6000},"timeToLiveSecs":2}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	h.maxBytes = 0
	sf := h.desired()["storeAndForwardConfiguration"].(map[string]any)
	if _, ok := sf["storeLimits"]; ok {
		t.Error("storeLimits rendered without a cap")
	}
}

func TestNewMessage(t *testing.T) {
	m := newMessage(7, map[string]string{"temperature": "35", "level": "critical"}, 10)
	var body map[string]any
	if err := json.Unmarshal(m.Body, &body); err != nil {
		t.Fatal(err)
	}
	// Numbers go into the body as numbers (for $body queries), and into the
	// properties as strings (as_number(temperature)).
	if body["seq"] != 7.0 || body["temperature"] != 35.0 || body["level"] != "critical" || len(body["padding"].(string)) != 10 {
		t.Errorf("body %s", m.Body)
	}
	if want := map[string]string{"seq": "7", "temperature": "35", "level": "critical"}; !maps.Equal(m.Properties, want) {
		t.Errorf("properties %v, want %v", m.Properties, want)
	}
	if m.System["ct"] != "application/json" || m.System["ce"] != "utf-8" {
		t.Errorf("system properties %v: routes read the body only with JSON in UTF-8", m.System)
	}
}
