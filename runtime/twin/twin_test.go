package twin

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNew_DeviceJSON(t *testing.T) {
	if got, want := string(New().DeviceJSON()), `{"desired":{"$version":1},"reported":{"$version":1}}`; got != want {
		t.Errorf("DeviceJSON = %s, want %s", got, want)
	}
}

func TestDeviceJSON_Patched(t *testing.T) {
	tw := New()
	must(t)(tw.PatchDesired(mustDecode(t, `{"telemetrySendFrequency":"5m","route":{"b":[1,2.5],"a":true}}`), at(0)))
	must(t)(tw.PatchReported(mustDecode(t, `{"z":"<html>&","a":null,"n":-4503599627370496}`), at(time.Second)))
	must(t)(tw.PatchReported(mustDecode(t, `{"z":"\n"}`), at(2*time.Second)))
	want := `{"desired":{"route":{"a":true,"b":[1,2.5]},"telemetrySendFrequency":"5m","$version":2},` +
		`"reported":{"n":-4503599627370496,"z":"\n","$version":3}}`
	if got := string(tw.DeviceJSON()); got != want {
		t.Errorf("DeviceJSON\n got %s\nwant %s", got, want)
	}
}

// must returns a checker for (version, error) results: must(t)(tw.PatchX(...)).
func must(t *testing.T) func(int64, error) int64 {
	return func(v int64, err error) int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// section gives uniform access to the three write paths for version tests.
type sectionOps struct {
	name     string
	patch    func(*Twin, map[string]any, time.Time) error
	replace  func(*Twin, map[string]any, time.Time) error
	version  func(*Twin) int64 // the section's own version; nil for tags
	maxBytes int
}

var sections = []sectionOps{
	{
		name:     "reported",
		maxBytes: MaxReportedBytes,
		patch: func(tw *Twin, p map[string]any, now time.Time) error {
			_, err := tw.PatchReported(p, now)
			return err
		},
		version: func(tw *Twin) int64 { return tw.ReportedVersion },
	},
	{
		name:     "desired",
		maxBytes: MaxDesiredBytes,
		patch: func(tw *Twin, p map[string]any, now time.Time) error {
			_, err := tw.PatchDesired(p, now)
			return err
		},
		replace: func(tw *Twin, p map[string]any, now time.Time) error {
			_, err := tw.ReplaceDesired(p, now)
			return err
		},
		version: func(tw *Twin) int64 { return tw.DesiredVersion },
	},
	{
		name:     "tags",
		maxBytes: MaxTagsBytes,
		patch:    (*Twin).PatchTags,
		replace:  (*Twin).ReplaceTags,
	},
}

func TestTwin_VersionRules(t *testing.T) {
	big := func(n int) map[string]any { // a valid patch that is not small
		m := map[string]any{}
		for i := 0; i < n; i++ {
			m[strings.Repeat("k", 3)+string(rune('a'+i))] = strings.Repeat("x", 4000)
		}
		return m
	}
	for _, ops := range sections {
		writes := []struct {
			name  string
			write func(*Twin, map[string]any, time.Time) error
		}{{"patch", ops.patch}, {"replace", ops.replace}}
		for _, w := range writes {
			if w.write == nil {
				continue
			}
			t.Run(ops.name+"/"+w.name, func(t *testing.T) {
				tw := New()
				for i, p := range []string{`{"a":1}`, `{"a":1}`, `{"a":null}`, `{}`} {
					before := tw.Clone()
					if err := w.write(tw, mustDecode(t, p), at(time.Duration(i)*time.Second)); err != nil {
						t.Fatalf("write %d %s: %v", i, p, err)
					}
					// Every successful write counts, even one that changes no value.
					if tw.Version != before.Version+1 {
						t.Errorf("write %d: Version %d -> %d, want +1", i, before.Version, tw.Version)
					}
					if ops.version != nil && ops.version(tw) != ops.version(before)+1 {
						t.Errorf("write %d: section version %d -> %d, want +1", i, ops.version(before), ops.version(tw))
					}
					// The other sections' versions do not move.
					for _, other := range sections {
						if other.name != ops.name && other.version != nil && other.version(tw) != other.version(before) {
							t.Errorf("write %d to %s moved the %s version", i, ops.name, other.name)
						}
					}
				}

				failures := map[string]map[string]any{
					"invalid key":   {"a b": 1},
					"depth":         nest(11, map[string]any{}),
					"null in array": {"a": []any{nil}},
					"patch size":    big(ops.maxBytes/4000 + 1),
				}
				if w.name == "patch" {
					// Fill the section to just under its limit; then a small
					// patch, valid on its own, overflows the merged document.
					n := ops.maxBytes / 4010 // each member is 4010 bytes with its comma
					if err := ops.patch(tw, big(n), at(time.Minute)); err != nil {
						t.Fatalf("priming with %d strings: %v", n, err)
					}
					failures["merged size"] = map[string]any{"other": strings.Repeat("y", 4000)}
				}
				for name, p := range failures {
					before := tw.Clone()
					err := w.write(tw, p, at(time.Hour))
					if !errors.Is(err, ErrLimit) {
						t.Errorf("%s: err = %v, want ErrLimit", name, err)
					}
					if !reflect.DeepEqual(tw, before) {
						t.Errorf("%s: failed write changed the twin", name)
					}
				}
			})
		}
	}
}

func TestTwin_PatchReturnsNewVersion(t *testing.T) {
	tw := New()
	for want := int64(2); want < 5; want++ {
		if v, err := tw.PatchReported(map[string]any{"a": int(want)}, at(0)); err != nil || v != want {
			t.Fatalf("PatchReported = %d, %v; want %d", v, err, want)
		}
		if v, err := tw.PatchDesired(map[string]any{"a": int(want)}, at(0)); err != nil || v != want {
			t.Fatalf("PatchDesired = %d, %v; want %d", v, err, want)
		}
	}
	if v, err := tw.ReplaceDesired(map[string]any{}, at(0)); err != nil || v != 5 {
		t.Fatalf("ReplaceDesired = %d, %v; want 5", v, err)
	}
	if tw.Version != 8 {
		t.Errorf("Version = %d, want 8", tw.Version)
	}
}

func TestTwin_MergedSizeLimit(t *testing.T) {
	tw := New()
	// Two patches of 20 KB each: each valid, the merge is not.
	first := map[string]any{}
	second := map[string]any{}
	for i := 0; i < 5; i++ {
		first["a"+string(rune('0'+i))] = strings.Repeat("x", 4000)
		second["b"+string(rune('0'+i))] = strings.Repeat("x", 4000)
	}
	if _, err := tw.PatchReported(first, at(0)); err != nil {
		t.Fatal(err)
	}
	_, err := tw.PatchReported(second, at(0))
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitSize || le.Path != "" || le.Section != Reported {
		t.Fatalf("second patch: %v, want a reported size LimitError", err)
	}
	// Deleting while adding keeps it under the limit.
	for k := range first {
		second[k] = nil
	}
	if _, err := tw.PatchReported(second, at(0)); err != nil {
		t.Fatalf("patch that deletes as much as it adds: %v", err)
	}
}

func TestTwin_CanonicalNumbers(t *testing.T) {
	tw := New()
	if _, err := tw.PatchReported(map[string]any{"i": 3, "f": 2.5, "a": []any{int64(1)}}, at(0)); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": json.Number("3"), "f": json.Number("2.5"), "a": []any{json.Number("1")}}
	if !reflect.DeepEqual(tw.Reported, want) {
		t.Errorf("Reported = %#v, want %#v", tw.Reported, want)
	}
}

func TestTwin_ReplaceDesired(t *testing.T) {
	tw := New()
	must(t)(tw.PatchDesired(mustDecode(t, `{"a":1,"b":{"c":2}}`), at(0)))
	must(t)(tw.ReplaceDesired(mustDecode(t, `{"b":{"d":3},"x":null}`), at(time.Second)))
	if got, want := string(tw.DeviceJSON()), `{"desired":{"b":{"d":3},"$version":3},"reported":{"$version":1}}`; got != want {
		t.Errorf("DeviceJSON = %s, want %s", got, want)
	}
}

func TestTwin_Tags(t *testing.T) {
	tw := New()
	if err := tw.PatchTags(mustDecode(t, `{"loc":{"building":"43","floor":1}}`), at(0)); err != nil {
		t.Fatal(err)
	}
	if err := tw.PatchTags(mustDecode(t, `{"loc":{"floor":null}}`), at(0)); err != nil {
		t.Fatal(err)
	}
	if want := mustDecode(t, `{"loc":{"building":"43"}}`); !reflect.DeepEqual(tw.Tags, want) {
		t.Errorf("Tags = %s", encode(tw.Tags, false, 0))
	}
	if err := tw.ReplaceTags(mustDecode(t, `{"env":"prod"}`), at(0)); err != nil {
		t.Fatal(err)
	}
	if want := mustDecode(t, `{"env":"prod"}`); !reflect.DeepEqual(tw.Tags, want) {
		t.Errorf("Tags = %s", encode(tw.Tags, false, 0))
	}
	if tw.Version != 4 || tw.DesiredVersion != 1 || tw.ReportedVersion != 1 {
		t.Errorf("versions = %d/%d/%d, want 4/1/1", tw.Version, tw.DesiredVersion, tw.ReportedVersion)
	}
}

func TestTwin_Properties(t *testing.T) {
	tw := New()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	must(t)(tw.PatchDesired(mustDecode(t, `{"cfg":{"rate":5,"mode":"x"},"flag":true}`), t0))
	must(t)(tw.PatchDesired(mustDecode(t, `{"cfg":{"rate":6}}`), t0.Add(1500*time.Millisecond)))
	must(t)(tw.PatchReported(mustDecode(t, `{"fw":"1.0","arr":[1,2]}`), t0.Add(time.Hour)))
	must(t)(tw.PatchReported(mustDecode(t, `{"arr":null}`), t0.Add(2*time.Hour)))

	got, err := json.Marshal(tw.Properties())
	if err != nil {
		t.Fatal(err)
	}
	// t0 is 10:00:00.123Z; timestamps are the injected now, in UTC, truncated to ms.
	want := `{"desired":{"$metadata":{` +
		`"$lastUpdated":"2024-05-01T10:00:01.623Z","$lastUpdatedVersion":3,` +
		`"cfg":{"$lastUpdated":"2024-05-01T10:00:01.623Z","$lastUpdatedVersion":3,` +
		`"mode":{"$lastUpdated":"2024-05-01T10:00:00.123Z","$lastUpdatedVersion":2},` +
		`"rate":{"$lastUpdated":"2024-05-01T10:00:01.623Z","$lastUpdatedVersion":3}},` +
		`"flag":{"$lastUpdated":"2024-05-01T10:00:00.123Z","$lastUpdatedVersion":2}},` +
		`"$version":3,"cfg":{"mode":"x","rate":6},"flag":true},` +
		`"reported":{"$metadata":{"$lastUpdated":"2024-05-01T12:00:00.123Z",` +
		`"fw":{"$lastUpdated":"2024-05-01T11:00:00.123Z"}},` +
		`"$version":3,"fw":"1.0"}}`
	if string(got) != want {
		t.Errorf("Properties\n got %s\nwant %s", got, want)
	}
	// Properties is a copy.
	tw.Properties()["desired"].(map[string]any)["cfg"].(map[string]any)["rate"] = "changed"
	if tw.Desired["cfg"].(map[string]any)["rate"] != json.Number("6") {
		t.Error("modifying Properties() changed the twin")
	}
}

func TestTwin_PropertiesOfNewTwin(t *testing.T) {
	got, err := json.Marshal(New().Properties())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"desired":{"$metadata":{"$lastUpdated":"0001-01-01T00:00:00.000Z","$lastUpdatedVersion":1},"$version":1},` +
		`"reported":{"$metadata":{"$lastUpdated":"0001-01-01T00:00:00.000Z"},"$version":1}}`
	if string(got) != want {
		t.Errorf("Properties\n got %s\nwant %s", got, want)
	}
}

func TestTwin_MetadataFollowsShapeChanges(t *testing.T) {
	tw := New()
	must(t)(tw.PatchReported(mustDecode(t, `{"a":{"b":{"c":1}}}`), at(0)))
	must(t)(tw.PatchReported(mustDecode(t, `{"a":"leaf"}`), at(time.Second)))
	must(t)(tw.PatchReported(mustDecode(t, `{"a":{"x":2}}`), at(2*time.Second)))
	md := tw.Metadata.Reported.Children["a"]
	if md == nil || len(md.Children) != 1 || md.Children["x"] == nil {
		t.Fatalf("metadata of a = %+v, want exactly child x", md)
	}
	if !md.Children["x"].LastUpdated.Equal(at(2 * time.Second)) {
		t.Errorf("x lastUpdated = %v", md.Children["x"].LastUpdated)
	}
}

func TestTwin_JSONRoundTrip(t *testing.T) {
	tw := New()
	must(t)(tw.PatchDesired(mustDecode(t, `{"f":1.50,"big":4503599627370495,"e":1e300,"o":{"a":[{"b":"<>"}]},"u":"日本\u2028"}`),
		time.Date(2024, 5, 1, 10, 0, 0, 999999999, time.FixedZone("X", -3600))))
	must(t)(tw.PatchReported(mustDecode(t, `{"r":{"s":{}}}`), at(time.Millisecond)))
	if err := tw.PatchTags(mustDecode(t, `{"t":[1,"x",false]}`), at(0)); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]*Twin{"new": New(), "patched": tw, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var out Twin
			if err := json.Unmarshal(data, &out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&out, in) {
				t.Errorf("round trip differs\n in  %#v\n out %#v", in, &out)
			}
			if !reflect.DeepEqual(out.DeviceJSON(), in.DeviceJSON()) || !reflect.DeepEqual(out.Properties(), in.Properties()) {
				t.Error("round trip changes the wire forms")
			}
		})
	}
}

func TestTwin_UnmarshalError(t *testing.T) {
	var tw Twin
	if err := json.Unmarshal([]byte(`{"desired":[1]}`), &tw); err == nil {
		t.Error("Unmarshal of an array as desired succeeded")
	}
}

func TestTwin_CloneIsDeep(t *testing.T) {
	tw := New()
	must(t)(tw.PatchDesired(mustDecode(t, `{"o":{"a":1}}`), at(0)))
	c := tw.Clone()
	must(t)(c.PatchDesired(mustDecode(t, `{"o":{"a":2,"b":3}}`), at(time.Hour)))
	c.Tags["x"] = "y"
	if got := string(tw.DeviceJSON()); got != `{"desired":{"o":{"a":1},"$version":2},"reported":{"$version":1}}` {
		t.Errorf("original changed: %s", got)
	}
	if tw.Metadata.Desired.Children["o"].Children["b"] != nil || !tw.Metadata.Desired.LastUpdated.Equal(at(0)) {
		t.Error("original metadata changed")
	}
	if len(tw.Tags) != 0 {
		t.Error("original tags changed")
	}
}

func TestTwin_ZeroValueIsUsable(t *testing.T) {
	var tw Twin
	if _, err := tw.PatchReported(map[string]any{"a": 1}, at(0)); err != nil {
		t.Fatal(err)
	}
	if err := tw.PatchTags(map[string]any{"a": 1}, at(0)); err != nil {
		t.Fatal(err)
	}
	if got, want := string(tw.DeviceJSON()), `{"desired":{"$version":0},"reported":{"a":1,"$version":1}}`; got != want {
		t.Errorf("DeviceJSON = %s, want %s", got, want)
	}
	_ = tw.Properties()
}

func TestDesiredNotification(t *testing.T) {
	tests := []struct {
		name    string
		patch   map[string]any
		version int64
		want    string
	}{
		{"doc example", map[string]any{"telemetrySendFrequency": "5m", "route": nil}, 8, `{"route":null,"telemetrySendFrequency":"5m","$version":8}`},
		{"empty", map[string]any{}, 2, `{"$version":2}`},
		{"nil", nil, 3, `{"$version":3}`},
		{"nested nulls kept", map[string]any{"o": map[string]any{"a": nil}}, 4, `{"o":{"a":null},"$version":4}`},
		{"stale $version replaced", map[string]any{"$version": json.Number("1"), "a": true}, 5, `{"a":true,"$version":5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(DesiredNotification(tt.patch, tt.version)); got != tt.want {
				t.Errorf("DesiredNotification = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStripReadOnly(t *testing.T) {
	in := mustDecode(t, `{"$version":4,"$metadata":{"$lastUpdated":"x"},"a":{"$version":1},"b":2}`)
	got := StripReadOnly(in)
	if want := mustDecode(t, `{"a":{"$version":1},"b":2}`); !reflect.DeepEqual(got, want) {
		t.Errorf("StripReadOnly = %s", encode(got, false, 0))
	}
	if _, ok := in["$version"]; !ok {
		t.Error("StripReadOnly modified its input")
	}
	got["a"].(map[string]any)["x"] = 1
	if len(in["a"].(map[string]any)) != 1 {
		t.Error("StripReadOnly result aliases its input")
	}
	if got := StripReadOnly(nil); got == nil || len(got) != 0 {
		t.Errorf("StripReadOnly(nil) = %#v, want empty map", got)
	}
}
