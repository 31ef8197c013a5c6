package twin

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidate_Limits(t *testing.T) {
	tests := []struct {
		name    string
		section Section
		patch   map[string]any
		limit   string // "" means valid
		path    string
	}{
		// size, measured on the compact encoding
		{"reported 32 KB exactly", Reported, nil, "", ""},
		{"reported 32 KB plus one", Reported, nil, LimitSize, ""},
		{"desired 32 KB exactly", Desired, nil, "", ""},
		{"desired 32 KB plus one", Desired, nil, LimitSize, ""},
		{"tags 8 KB exactly", Tags, nil, "", ""},
		{"tags 8 KB plus one", Tags, nil, LimitSize, ""},

		// depth: objects at level 10 at most, scalars one below
		{"object at level 10", Reported, nest(10, map[string]any{}), "", ""},
		{"scalar at level 11", Reported, nest(11, 1), "", ""},
		{"object at level 11", Reported, nest(11, map[string]any{}), LimitDepth, nestPath(11)},
		{"array at level 10", Reported, nest(10, []any{1, "a"}), "", ""},
		{"array at level 11", Reported, nest(11, []any{}), LimitDepth, nestPath(11)},
		{"array in array at level 11", Reported, nest(10, []any{[]any{1}}), LimitDepth, nestPath(10) + "[0]"},
		{"object in array at level 11", Desired, nest(10, []any{map[string]any{}}), LimitDepth, nestPath(10) + "[0]"},
		{"tags object at level 11", Tags, nest(11, map[string]any{"x": 1}), LimitDepth, nestPath(11)},

		// key length in bytes
		{"key 1024 bytes", Reported, map[string]any{strings.Repeat("k", 1024): 1}, "", ""},
		{"key 1025 bytes", Reported, map[string]any{strings.Repeat("k", 1025): 1}, LimitKeyLength, strings.Repeat("k", 1025)},
		{"key 512 two-byte runes", Reported, map[string]any{strings.Repeat("é", 512): 1}, "", ""},
		{"key 513 two-byte runes", Reported, map[string]any{strings.Repeat("é", 513): 1}, LimitKeyLength, strings.Repeat("é", 513)},
		{"empty key", Reported, map[string]any{"": 1}, LimitKeyLength, ""},
		{"nested key 1025 bytes", Reported, map[string]any{"a": map[string]any{strings.Repeat("k", 1025): 1}}, LimitKeyLength, "a." + strings.Repeat("k", 1025)},

		// key characters
		{"dollar key", Reported, map[string]any{"$version": 1}, LimitKeyCharacters, "$version"},
		{"dollar inside key", Desired, map[string]any{"a$b": 1}, LimitKeyCharacters, "a$b"},
		{"dot key", Reported, map[string]any{"a.b": 1}, LimitKeyCharacters, "a.b"},
		{"space key", Reported, map[string]any{"a b": 1}, LimitKeyCharacters, "a b"},
		{"hash key", Reported, map[string]any{"a#b": 1}, LimitKeyCharacters, "a#b"},
		{"tab key", Reported, map[string]any{"a\tb": 1}, LimitKeyCharacters, "a\tb"},
		{"no-break space key", Reported, map[string]any{"a\u00a0b": 1}, LimitKeyCharacters, "a\u00a0b"},
		{"ideographic space key", Reported, map[string]any{"a\u3000b": 1}, LimitKeyCharacters, "a\u3000b"},
		{"C0 control key", Reported, map[string]any{"a\x01b": 1}, LimitKeyCharacters, "a\x01b"},
		{"C1 control key", Reported, map[string]any{"a\u0090b": 1}, LimitKeyCharacters, "a\u0090b"},
		{"invalid UTF-8 key", Reported, map[string]any{"a\xffb": 1}, LimitKeyCharacters, "a\xffb"},
		{"bad key inside array object", Reported, map[string]any{"a": []any{map[string]any{"b c": 1}}}, LimitKeyCharacters, "a[0].b c"},
		{"allowed punctuation", Reported, map[string]any{"a-b_c:d/e@f%g": 1, "日本": "ok"}, "", ""},

		// strings in bytes
		{"string 4096 bytes", Reported, map[string]any{"s": strings.Repeat("x", 4096)}, "", ""},
		{"string 4097 bytes", Reported, map[string]any{"s": strings.Repeat("x", 4097)}, LimitStringLength, "s"},
		{"string 2048 two-byte runes", Reported, map[string]any{"s": strings.Repeat("é", 2048)}, "", ""},
		{"string 4097 bytes of runes", Reported, map[string]any{"s": strings.Repeat("é", 2048) + "x"}, LimitStringLength, "s"},
		{"string 4097 bytes in array", Reported, map[string]any{"a": []any{"x", strings.Repeat("x", 4097)}}, LimitStringLength, "a[1]"},
		{"string invalid UTF-8", Reported, map[string]any{"s": "a\xffb"}, LimitType, "s"},

		// integer range
		{"MaxInt", Reported, map[string]any{"n": json.Number("4503599627370495")}, "", ""},
		{"MaxInt+1", Reported, map[string]any{"n": json.Number("4503599627370496")}, LimitIntegerRange, "n"},
		{"MinInt", Reported, map[string]any{"n": json.Number("-4503599627370496")}, "", ""},
		{"MinInt-1", Reported, map[string]any{"n": json.Number("-4503599627370497")}, LimitIntegerRange, "n"},
		{"int64 MaxInt", Reported, map[string]any{"n": int64(MaxInt)}, "", ""},
		{"int64 MaxInt+1", Reported, map[string]any{"n": int64(MaxInt + 1)}, LimitIntegerRange, "n"},
		{"uint64 max", Reported, map[string]any{"n": uint64(math.MaxUint64)}, LimitIntegerRange, "n"},
		{"integer beyond int64", Reported, map[string]any{"n": json.Number("123456789012345678901234567890")}, LimitIntegerRange, "n"},
		{"integral float64 above MaxInt", Reported, map[string]any{"n": float64(MaxInt + 1)}, LimitIntegerRange, "n"},
		{"float literal above MaxInt", Reported, map[string]any{"n": json.Number("4503599627370496.0")}, "", ""},
		{"exponent literal", Reported, map[string]any{"n": json.Number("1e300")}, "", ""},
		{"float64 1e21 encodes with exponent", Reported, map[string]any{"n": 1e21}, "", ""},
		{"integer out of range in array", Reported, map[string]any{"a": []any{json.Number("4503599627370496")}}, LimitIntegerRange, "a[0]"},

		// nulls
		{"null member deletes", Reported, map[string]any{"a": nil, "b": map[string]any{"c": nil}}, "", ""},
		{"null inside array", Reported, map[string]any{"a": []any{json.Number("1"), nil}}, LimitNullInArray, "a[1]"},
		{"null in object inside array", Reported, map[string]any{"a": []any{map[string]any{"x": nil}}}, LimitNullInArray, "a[0].x"},
		{"null in nested array", Desired, map[string]any{"a": []any{[]any{nil}}}, LimitNullInArray, "a[0][0]"},

		// types
		{"decoded types", Reported, map[string]any{"s": "x", "b": true, "n": json.Number("1.5"), "f": 2.5, "i": 3, "a": []any{false}, "o": map[string]any{}}, "", ""},
		{"channel", Reported, map[string]any{"c": make(chan int)}, LimitType, "c"},
		{"typed map", Reported, map[string]any{"m": map[string]string{"a": "b"}}, LimitType, "m"},
		{"typed slice", Reported, map[string]any{"s": []string{"a"}}, LimitType, "s"},
		{"invalid json.Number", Reported, map[string]any{"n": json.Number("12abc")}, LimitType, "n"},
		{"NaN", Reported, map[string]any{"n": math.NaN()}, LimitType, "n"},
		{"infinity", Reported, map[string]any{"n": math.Inf(-1)}, LimitType, "n"},
		{"empty patch", Reported, map[string]any{}, "", ""},
		{"nil patch", Tags, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch := tt.patch
			if strings.Contains(tt.name, " KB ") {
				n := tt.section.MaxBytes()
				if strings.HasSuffix(tt.name, "plus one") {
					n++
				}
				patch = sized(t, n)
			}
			err := Validate(tt.section, patch)
			if tt.limit == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("Validate: %v, want a *LimitError", err)
			}
			if !errors.Is(err, ErrLimit) {
				t.Errorf("errors.Is(%v, ErrLimit) = false", err)
			}
			if le.Limit != tt.limit || le.Path != tt.path || le.Section != tt.section {
				t.Errorf("got section %v limit %q path %q, want %v %q %q (%v)",
					le.Section, le.Limit, le.Path, tt.section, tt.limit, tt.path, err)
			}
			if !strings.HasPrefix(err.Error(), tt.section.String()+": "+tt.limit+": ") {
				t.Errorf("message %q lacks the section and limit prefix", err)
			}
		})
	}
}

func TestValidate_Messages(t *testing.T) {
	tests := []struct {
		name    string
		section Section
		patch   map[string]any
		want    string
	}{
		{"depth", Reported, nest(11, map[string]any{}),
			`reported: depth: property "l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.l11" is nested 11 levels deep, maximum is 10`},
		// 3 members of 5+4000+1 bytes, 2 commas, 2 braces
		{"size", Tags, map[string]any{"a": strings.Repeat("x", 4000), "b": strings.Repeat("x", 4000), "c": strings.Repeat("x", 4000)},
			`tags: size: patch is 12022 bytes, maximum is 8192`},
		{"integer", Reported, map[string]any{"n": json.Number("4503599627370496")},
			`reported: integer-range: property "n" has integer 4503599627370496, allowed range is [-4503599627370496, 4503599627370495]`},
		{"key characters", Tags, map[string]any{"a b": 1},
			`tags: key-characters: property "a b" has a name containing ' ' (U+0020), which is not allowed`},
		{"long key is cut", Reported, map[string]any{strings.Repeat("k", 1025): 1},
			`reported: key-length: property "` + strings.Repeat("k", 80) + `"... (1025 bytes) has a 1025-byte name, maximum is 1024`},
		{"null in array", Reported, map[string]any{"a": []any{nil}},
			`reported: null-in-array: property "a[0]" is null inside an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.section, tt.patch)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestValidate_UnknownSection(t *testing.T) {
	for _, s := range []Section{0, Tags + 1} {
		if err := Validate(s, map[string]any{}); !errors.Is(err, ErrSection) {
			t.Errorf("Validate(%v) = %v, want ErrSection", s, err)
		}
	}
}

func TestSection_String(t *testing.T) {
	for s, want := range map[Section]string{Desired: "desired", Reported: "reported", Tags: "tags", 0: "section(0)"} {
		if got := s.String(); got != want {
			t.Errorf("Section(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
