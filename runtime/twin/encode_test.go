package twin

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestDecodePatch(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]any
		wantErr bool
	}{
		{"object", `{"a":1,"b":{"c":"x"}}`, map[string]any{"a": json.Number("1"), "b": map[string]any{"c": "x"}}, false},
		{"surrounding whitespace", " \n{}\t ", map[string]any{}, false},
		{"numbers keep their text", `{"i":10,"f":1.50,"e":1E3}`, map[string]any{"i": json.Number("10"), "f": json.Number("1.50"), "e": json.Number("1E3")}, false},
		{"nulls kept", `{"a":null}`, map[string]any{"a": nil}, false},
		{"empty body", ``, nil, true},
		{"single space (GET body of Node and Python)", ` `, nil, true},
		{"null", `null`, nil, true},
		{"array", `[{"a":1}]`, nil, true},
		{"string", `"x"`, nil, true},
		{"number", `1`, nil, true},
		{"trailing object", `{} {}`, nil, true},
		{"trailing garbage", `{"a":1}x`, nil, true},
		{"truncated", `{"a":`, nil, true},
		{"syntax error", `{a:1}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePatch([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("DecodePatch(%q) error = %v, want ErrMalformed", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodePatch(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodePatch(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodePatch_WrapsJSONError(t *testing.T) {
	_, err := DecodePatch([]byte(`{a:1}`))
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("DecodePatch error %v does not wrap the *json.SyntaxError", err)
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]any
		want string // the expected compact encoding; Size must be its length
	}{
		{"nil", nil, `{}`},
		{"empty", map[string]any{}, `{}`},
		{"scalars", map[string]any{"b": true, "a": json.Number("1.50"), "s": "x"}, `{"a":1.50,"b":true,"s":"x"}`},
		{"no HTML escaping", map[string]any{"s": "<&>"}, `{"s":"<&>"}`},
		{"escapes", map[string]any{"s": "\"\\\n\x01"}, `{"s":"\"\\\n\u0001"}`},
		{"UTF-8 counted in bytes", map[string]any{"é": "日本"}, `{"é":"日本"}`},
		{"nested", map[string]any{"o": map[string]any{"a": []any{json.Number("1"), false, "x"}}, "n": nil}, `{"n":null,"o":{"a":[1,false,"x"]}}`},
		{"Go numbers", map[string]any{"i": 7, "f": 2.5, "u": uint8(3)}, `{"f":2.5,"i":7,"u":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(encode(tt.m, false, 0)); got != tt.want {
				t.Errorf("encoding = %s, want %s", got, tt.want)
			}
			if got := Size(tt.m); got != len(tt.want) {
				t.Errorf("Size = %d, want %d", got, len(tt.want))
			}
		})
	}
}

func TestEncode_InvalidValuesBecomeNull(t *testing.T) {
	m := map[string]any{"nan": math.NaN(), "c": make(chan int), "n": json.Number("x")}
	if got, want := string(encode(m, false, 0)), `{"c":null,"n":null,"nan":null}`; got != want {
		t.Errorf("encoding = %s, want %s", got, want)
	}
}

func TestValidNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "0.0", "1e5", "1E+5", "-1.25e-3"} {
		if !validNumber(s) {
			t.Errorf("validNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x1", "1.5.5", "NaN", "1 "} {
		if validNumber(s) {
			t.Errorf("validNumber(%q) = true", s)
		}
	}
}
