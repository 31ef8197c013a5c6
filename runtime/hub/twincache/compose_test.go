package twincache_test

import (
	"encoding/json"
	"testing"

	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/twin"
)

func mustPatch(t testing.TB, s string) map[string]any {
	t.Helper()
	p, err := twin.DecodePatch([]byte(s))
	if err != nil {
		t.Fatalf("DecodePatch(%s): %v", s, err)
	}
	return p
}

func encode(t testing.TB, m map[string]any) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCompose(t *testing.T) {
	tests := []struct {
		name, dst, next string
		want            string // "" when not composable
	}{
		{"disjoint keys", `{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{"later scalar wins", `{"a":1}`, `{"a":2}`, `{"a":2}`},
		{"null survives as a deletion", `{"a":1}`, `{"a":null}`, `{"a":null}`},
		{"null then scalar", `{"a":null}`, `{"a":3}`, `{"a":3}`},
		{"nested objects compose", `{"o":{"x":1,"y":null}}`, `{"o":{"y":2,"z":null}}`, `{"o":{"x":1,"y":2,"z":null}}`},
		{"object over nothing is copied", `{"a":1}`, `{"o":{"x":null}}`, `{"a":1,"o":{"x":null}}`},
		{"scalar over object replaces", `{"o":{"x":1}}`, `{"o":5}`, `{"o":5}`},
		{"array replaces", `{"o":{"x":1}}`, `{"o":[1,2]}`, `{"o":[1,2]}`},
		{"object over scalar is not composable", `{"o":1}`, `{"o":{"x":1}}`, ""},
		{"object over null is not composable", `{"o":null}`, `{"o":{"x":1}}`, ""},
		{"object over array is not composable", `{"o":[1]}`, `{"o":{"x":1}}`, ""},
		{"deep conflict is not composable", `{"a":{"b":{"c":1}}}`, `{"a":{"b":{"c":{"d":1}}}}`, ""},
		{"empty next", `{"a":1}`, `{}`, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, next := mustPatch(t, tt.dst), mustPatch(t, tt.next)
			before := encode(t, next)
			ok := twincache.Compose(dst, next)
			if ok != (tt.want != "") {
				t.Fatalf("Compose = %v, want %v", ok, tt.want != "")
			}
			want := tt.want
			if !ok {
				want = encode(t, mustPatch(t, tt.dst)) // unchanged
			}
			if got := encode(t, dst); got != want {
				t.Errorf("dst = %s, want %s", got, want)
			}
			if encode(t, next) != before {
				t.Errorf("next modified")
			}
		})
	}
}

// FuzzCompose checks the defining property: whenever Compose succeeds, applying the
// composed patch to any document equals applying the two patches in turn.
func FuzzCompose(f *testing.F) {
	seeds := [][3]string{
		{`{"a":1,"o":{"x":1}}`, `{"a":null}`, `{"a":{"b":1}}`},
		{`{"o":{"x":{"y":1}}}`, `{"o":{"x":null,"z":2}}`, `{"o":{"z":null,"w":[1]}}`},
		{`{}`, `{"o":{"x":null}}`, `{"o":{"y":1}}`},
		{`{"a":[1,{"b":2}]}`, `{"a":{"c":1}}`, `{"a":{"c":null,"d":1}}`},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, docText, p1Text, p2Text string) {
		raw, err1 := twin.DecodePatch([]byte(docText))
		p1, err2 := twin.DecodePatch([]byte(p1Text))
		p2, err3 := twin.DecodePatch([]byte(p2Text))
		if err1 != nil || err2 != nil || err3 != nil {
			return
		}
		doc := map[string]any{}
		twin.Merge(doc, raw) // a document holds no nulls

		seq := twin.Clone(doc)
		twin.Merge(seq, p1)
		twin.Merge(seq, p2)

		composed := twin.Clone(p1)
		if !twincache.Compose(composed, p2) {
			if encode(t, composed) != encode(t, p1) {
				t.Fatalf("a refused Compose changed dst: %s", encode(t, composed))
			}
			return
		}
		once := twin.Clone(doc)
		twin.Merge(once, composed)
		if a, b := encode(t, seq), encode(t, once); a != b {
			t.Fatalf("doc %s, p1 %s, p2 %s:\n in turn  %s\n composed %s (%s)", docText, p1Text, p2Text, a, b, encode(t, composed))
		}
	})
}
