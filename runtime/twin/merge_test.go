package twin

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMerge(t *testing.T) {
	tests := []struct {
		name        string
		dst, patch  string
		want        string
		wantChanged bool
	}{
		{"add", `{}`, `{"a":1}`, `{"a":1}`, true},
		{"replace scalar", `{"a":1}`, `{"a":"x"}`, `{"a":"x"}`, true},
		{"same value is no change", `{"a":1,"b":{"c":[1,2]}}`, `{"a":1,"b":{"c":[1,2]}}`, `{"a":1,"b":{"c":[1,2]}}`, false},
		{"null deletes", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`, true},
		{"delete missing key is no change", `{"b":2}`, `{"a":null}`, `{"b":2}`, false},
		{"nested merge keeps siblings", `{"o":{"x":1,"y":2}}`, `{"o":{"y":3,"z":4}}`, `{"o":{"x":1,"y":3,"z":4}}`, true},
		{"nested delete", `{"o":{"x":1,"y":2}}`, `{"o":{"x":null}}`, `{"o":{"y":2}}`, true},
		{"nested delete of missing key", `{"o":{"y":2}}`, `{"o":{"x":null}}`, `{"o":{"y":2}}`, false},
		{"arrays replace", `{"a":[1,2,3]}`, `{"a":[4]}`, `{"a":[4]}`, true},
		{"arrays are not merged element-wise", `{"a":[{"x":1}]}`, `{"a":[{"y":2}]}`, `{"a":[{"y":2}]}`, true},
		{"object replaces scalar", `{"a":1}`, `{"a":{"b":2}}`, `{"a":{"b":2}}`, true},
		{"scalar replaces object", `{"a":{"b":2}}`, `{"a":true}`, `{"a":true}`, true},
		{"object into missing key drops nulls", `{}`, `{"a":{"b":null,"c":{"d":null}}}`, `{"a":{"c":{}}}`, true},
		{"empty object patch is no change", `{"a":{"b":1}}`, `{"a":{}}`, `{"a":{"b":1}}`, false},
		{"empty patch", `{"a":1}`, `{}`, `{"a":1}`, false},
		{"empty object into missing key", `{}`, `{"a":{}}`, `{"a":{}}`, true},
		{"number text matters", `{"a":1}`, `{"a":1.0}`, `{"a":1.0}`, true},
		{"nulls inside arrays are kept", `{}`, `{"a":[null]}`, `{"a":[null]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := mustDecode(t, tt.dst)
			patch := mustDecode(t, tt.patch)
			changed := Merge(dst, patch)
			if want := mustDecode(t, tt.want); !reflect.DeepEqual(dst, want) {
				t.Errorf("Merge result %s, want %s", encode(dst, false, 0), tt.want)
			}
			if changed != tt.wantChanged {
				t.Errorf("Merge changed = %v, want %v", changed, tt.wantChanged)
			}
		})
	}
}

func TestMerge_DoesNotAliasPatch(t *testing.T) {
	dst := map[string]any{}
	patch := mustDecode(t, `{"a":[1,{"b":2}],"o":{"c":[3]}}`)
	Merge(dst, patch)
	patch["a"].([]any)[1].(map[string]any)["b"] = "changed"
	patch["o"].(map[string]any)["c"].([]any)[0] = "changed"
	if got, want := string(encode(dst, false, 0)), `{"a":[1,{"b":2}],"o":{"c":[3]}}`; got != want {
		t.Errorf("dst after mutating the patch = %s, want %s", got, want)
	}
}

func TestMerge_TypedNilMap(t *testing.T) {
	dst := map[string]any{"o": map[string]any(nil)}
	if Merge(dst, map[string]any{"o": map[string]any{}}) {
		t.Error("merging {} into a nil object reported a change")
	}
	if !Merge(dst, map[string]any{"o": map[string]any{"a": json.Number("1")}}) {
		t.Error("adding a member to a nil object reported no change")
	}
	if got := string(encode(dst, false, 0)); got != `{"o":{"a":1}}` {
		t.Errorf("dst = %s", got)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{"equal", `{"a":1,"o":{"b":[1]}}`, `{"a":1,"o":{"b":[1]}}`, `{}`},
		{"both empty", `{}`, `{}`, `{}`},
		{"added", `{}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
		{"removed", `{"a":1,"b":2}`, `{"b":2}`, `{"a":null}`},
		{"changed", `{"a":1}`, `{"a":2}`, `{"a":2}`},
		{"nested", `{"o":{"x":1,"y":2,"z":{"k":1}}}`, `{"o":{"x":1,"y":3,"z":{"k":1}}}`, `{"o":{"y":3}}`},
		{"nested removal", `{"o":{"x":1,"y":2}}`, `{"o":{"x":1}}`, `{"o":{"y":null}}`},
		{"array changed", `{"a":[1,2]}`, `{"a":[1]}`, `{"a":[1]}`},
		{"object to scalar", `{"a":{"b":1}}`, `{"a":1}`, `{"a":1}`},
		{"scalar to empty object", `{"a":1}`, `{"a":{}}`, `{"a":{}}`},
		{"object to empty object", `{"a":{"b":1}}`, `{"a":{}}`, `{"a":{"b":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := mustDecode(t, tt.from), mustDecode(t, tt.to)
			got := Diff(from, to)
			if got == nil {
				t.Fatal("Diff returned nil")
			}
			if want := mustDecode(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("Diff = %s, want %s", encode(got, false, 0), tt.want)
			}
			assertDiffRoundTrip(t, from, to)
		})
	}
}

// assertDiffRoundTrip checks the Diff property: Merge(Clone(from),
// Diff(from, to)) deep-equals to, reports a change exactly when the
// documents differ, and leaves from untouched.
func assertDiffRoundTrip(t testing.TB, from, to map[string]any) {
	t.Helper()
	before := Clone(from)
	patch := Diff(from, to)
	got := Clone(from)
	if got == nil {
		got = map[string]any{}
	}
	changed := Merge(got, patch)
	if !reflect.DeepEqual(got, to) {
		t.Fatalf("Merge(from, Diff(from, to)) = %s, want %s (patch %s)",
			encode(got, false, 0), encode(to, false, 0), encode(patch, false, 0))
	}
	if changed != !equal(from, to) {
		t.Fatalf("Merge changed = %v for from %s to %s", changed, encode(from, false, 0), encode(to, false, 0))
	}
	if !reflect.DeepEqual(before, from) {
		t.Fatal("Diff or Merge modified from")
	}
	if !equal(from, to) && len(patch) == 0 {
		t.Fatal("Diff of different documents is empty")
	}
}

func TestClone_IsDeep(t *testing.T) {
	orig := mustDecode(t, `{"o":{"a":[1,{"b":2}]}}`)
	c := Clone(orig)
	c["o"].(map[string]any)["a"].([]any)[1].(map[string]any)["b"] = "x"
	c["o"].(map[string]any)["new"] = true
	if got, want := string(encode(orig, false, 0)), `{"o":{"a":[1,{"b":2}]}}`; got != want {
		t.Errorf("original after mutating the clone = %s, want %s", got, want)
	}
	if Clone(nil) != nil {
		t.Error("Clone(nil) != nil")
	}
}
