package twin

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// fuzzSeeds returns every body from the golden sequences, plus a few edge cases.
func fuzzSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		[]byte(`{}`),
		[]byte(`{"a":null}`),
		[]byte(`{"a":[1,null,{"b":null}]}`),
		[]byte(`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":1}}}}}}}}}}}`),
		[]byte(`{"n":4503599627370496,"f":1e400,"s":"\u0000\ud800"}`),
		[]byte(`{"$version":1,"a.b":2,"a b":3}`),
		[]byte(`[] `),
		[]byte(`{"a":1}{}`),
	}
	for _, sq := range loadSequences(t) {
		for _, st := range sq.Steps {
			seeds = append(seeds, st.body())
		}
	}
	return seeds
}

// document turns a decoded patch into the document it produces on an empty
// section, which is what the Diff property is stated for.
func document(patch map[string]any) map[string]any {
	doc := map[string]any{}
	Merge(doc, patch)
	return doc
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		patch, err := DecodePatch(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || patch != nil {
				t.Fatalf("DecodePatch error %v does not wrap ErrMalformed (or returned a map)", err)
			}
			return
		}
		for _, s := range []Section{Desired, Reported, Tags} {
			if err := Validate(s, patch); err != nil {
				var le *LimitError
				if !errors.As(err, &le) || le.Section != s || le.Limit == "" || err.Error() == "" {
					t.Fatalf("Validate(%v): %v is not a complete *LimitError", s, err)
				}
			}
		}

		// The encoder writes what the decoder reads back, and Size measures it.
		enc := encode(patch, false, 0)
		if Size(patch) != len(enc) {
			t.Fatalf("Size %d != encoding length %d", Size(patch), len(enc))
		}
		again, err := DecodePatch(enc)
		if err != nil || !reflect.DeepEqual(again, patch) {
			t.Fatalf("encode/decode round trip: %v\n in  %#v\n out %#v", err, patch, again)
		}

		// Merge is idempotent, and the Diff property holds both ways.
		doc := document(patch)
		if Merge(doc, patch) {
			t.Fatal("applying the same patch twice changed the document")
		}
		assertDiffRoundTrip(t, map[string]any{}, doc)
		assertDiffRoundTrip(t, doc, map[string]any{})
		assertDiffRoundTrip(t, doc, doc)

		// A patch Validate accepts always applies to a new twin (the merged
		// document is never larger than the patch), bumping the versions.
		if Validate(Reported, patch) == nil {
			tw := New()
			v, err := tw.PatchReported(patch, time.Unix(0, 0))
			if err != nil || v != 2 || tw.Version != 2 {
				t.Fatalf("PatchReported of a valid patch: v=%d, %v", v, err)
			}
			if !reflect.DeepEqual(tw.Reported, doc) {
				t.Fatalf("twin holds %s, want %s", encode(tw.Reported, false, 0), encode(doc, false, 0))
			}
		}
	})
}

func FuzzMergeDiff(f *testing.F) {
	seeds := fuzzSeeds(f)
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+1)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		pa, errA := DecodePatch(a)
		pb, errB := DecodePatch(b)
		if errA != nil || errB != nil {
			return
		}
		from, to := document(pa), document(pb)
		assertDiffRoundTrip(t, from, to)
		assertDiffRoundTrip(t, to, from)

		// Applying b on top of a: the diff from a's document to the result
		// reproduces it, and re-applying b changes nothing.
		merged := Clone(from)
		Merge(merged, pb)
		assertDiffRoundTrip(t, from, merged)
		if Merge(merged, pb) {
			t.Fatal("re-applying a patch changed the document")
		}

		// The twin agrees with plain Merge when both patches are valid.
		if Validate(Desired, pa) == nil && Validate(Desired, pb) == nil {
			tw := New()
			if _, err := tw.PatchDesired(pa, time.Unix(1, 0)); err != nil {
				t.Fatalf("first valid patch: %v", err)
			}
			before := tw.Clone()
			_, err := tw.PatchDesired(pb, time.Unix(2, 0))
			switch {
			case errors.Is(err, ErrLimit):
				if !reflect.DeepEqual(tw, before) {
					t.Fatal("rejected patch changed the twin")
				}
			case err != nil:
				t.Fatalf("second patch: %v", err)
			case !reflect.DeepEqual(tw.Desired, merged):
				t.Fatalf("twin desired %s, want %s", encode(tw.Desired, false, 0), encode(merged, false, 0))
			}
		}
	})
}
