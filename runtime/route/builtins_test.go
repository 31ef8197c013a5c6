package route

import (
	"slices"
	"testing"
)

func TestBuiltins_Math(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"abs(-2.5)", "2.5"}, {"abs(3)", "3"}, {"abs($body.neg)", "2.5"}, {"abs($body.s)", "undefined"}, {"abs($body.u)", "undefined"}, {"abs($body.N)", "undefined"},
		{"exp(0)", "1"}, {"exp(1000)", "+Inf"}, {"exp($body.z)", "1"}, {"exp($body.T)", "undefined"},
		{"power(2, 10)", "1024"}, {"power(-8, 0.5)", "undefined"}, {"power($body.n, $body.m)", "8"}, {"power($body.n, $body.s)", "undefined"}, {"power($body.u, 2)", "undefined"},
		{"square(-3)", "9"}, {"square($body.m)", "9"}, {"square($body.s)", "undefined"},
		{"ceiling(1.2)", "2"}, {"ceiling(-1.2)", "-1"}, {"ceiling($body.neg)", "-2"}, {"ceiling($body.N)", "undefined"},
		{"floor(1.8)", "1"}, {"floor(-1.2)", "-2"}, {"floor($body.neg)", "-3"}, {"floor($body.u)", "undefined"},
		{"sign(-4)", "-1"}, {"sign(0)", "0"}, {"sign(7.5)", "1"}, {"sign($body.neg)", "-1"}, {"sign($body.s)", "undefined"},
		{"sqrt(16)", "4"}, {"sqrt(-1)", "undefined"}, {"sqrt($body.n * 2)", "2"}, {"sqrt($body.F)", "undefined"},
		{"ABS(-1) + Sqrt(4)", "3"},
	})
}

func TestBuiltins_Types(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"as_number('42')", "42"},
		{"as_number(' -1.5e2 ')", "-150"},
		{"as_number('1,000.5')", "1000.5"},
		{"as_number('(5)')", "-5"},
		{"as_number('5-')", "-5"},
		{"as_number('+7')", "7"},
		{"as_number('.5')", "0.5"},
		{"as_number('Infinity')", "+Inf"},
		{"as_number('-infinity')", "-Inf"},
		{"as_number('NaN')", "undefined"},
		{"as_number('0x10')", "undefined"},
		{"as_number('12abc')", "undefined"},
		{"as_number('')", "undefined"},
		{"as_number(',5')", "undefined"},
		{"as_number('1e')", "undefined"},
		{"as_number('-(5)')", "undefined"},
		{"as_number(five) * 2", "10"},
		{"as_number(app)", "undefined"},
		{"as_number(missing)", "undefined"},
		{"as_number(3)", "3"},
		{"as_number($body.n)", "2"},
		{"as_number($body.num)", "42"},
		{"as_number($body.T)", "undefined"},
		{"as_number($body.N)", "undefined"},
		{"as_number($body.u)", "undefined"},

		{"is_bool(true)", "true"}, {"is_bool($body.F)", "true"}, {"is_bool($body.n)", "false"}, {"is_bool(1 = 1)", "true"}, {"is_bool(missing = 'x')", "false"}, {"is_bool(null)", "false"},
		{"is_defined(app)", "true"}, {"is_defined(missing)", "false"}, {"is_defined(undefined)", "false"}, {"is_defined(null)", "true"}, {"is_defined($body.N)", "true"}, {"is_defined($body.u)", "false"}, {"is_defined($body.o)", "false"}, {"is_defined(1 / 0)", "true"}, {"is_defined(0 / 0)", "false"},
		{"is_null(null)", "true"}, {"is_null($body.N)", "true"}, {"is_null($body.n)", "false"}, {"is_null($body.u)", "false"}, {"is_null(app)", "false"}, {"is_null(missing)", "false"}, {"is_null(undefined)", "false"},
		{"is_number(1)", "true"}, {"is_number($body.n)", "true"}, {"is_number($body.num)", "false"}, {"is_number(five)", "false"}, {"is_number(as_number(five))", "true"}, {"is_number(as_number(app))", "false"},
		{"is_string('x')", "true"}, {"is_string(app)", "true"}, {"is_string(missing)", "false"}, {"is_string($body.s)", "true"}, {"is_string($body.n)", "false"}, {"is_string(undefined)", "false"},
	})
}

func TestBuiltins_Strings(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"concat('a', 'b')", `"ab"`},
		{"concat('a', 'b', 'c', app)", `"abcv"`},
		{"concat('a', missing)", "undefined"},
		{"concat($body.s, $body.t)", `"ab"`},
		{"concat($body.s, $body.n)", "undefined"},
		{"concat($body.s, $body.N)", "undefined"},

		{"length('')", "0"}, {"length('héllo')", "5"}, {"length('😀')", "1"}, {"length(app)", "1"}, {"length(missing)", "undefined"}, {"length($body.s)", "1"}, {"length($body.n)", "undefined"},

		{"lower('AbC')", `"abc"`}, {"lower('ÉTÉ')", `"été"`}, {"lower(missing)", "undefined"}, {"lower($body.n)", "undefined"},
		{"upper('aBc')", `"ABC"`}, {"upper($body.s)", `"A"`}, {"upper($body.T)", "undefined"},

		{"substring('hello', 0)", `"hello"`},
		{"substring('hello', 2)", `"llo"`},
		{"substring('hello', 5)", `""`},
		{"substring('hello', 6)", "undefined"},
		{"substring('hello', -1)", "undefined"},
		{"substring('hello', 1.9)", `"ello"`},
		{"substring('hello', 1, 3)", `"ell"`},
		{"substring('hello', 1, 4)", `"ello"`},
		{"substring('hello', 1, 5)", "undefined"},
		{"substring('hello', 5, 0)", "undefined"},
		{"substring('hello', 0, -1)", "undefined"},
		{"substring('héllo😀', 1, 5)", `"éllo😀"`},
		{"substring(missing, 0)", "undefined"},
		{"substring($body.s, $body.z)", `"a"`},
		{"substring($body.s, $body.s)", "undefined"},
		{"substring('abc', $body.u, 1)", "undefined"},

		{"index_of('hello', 'l')", "2"},
		{"index_of('hello', 'L')", "-1"},
		{"index_of('hello', '')", "0"},
		{"index_of('héllo', 'l')", "2"},
		{"index_of(missing, 'l')", "undefined"},
		{"index_of($body.s, $body.s)", "0"},
		{"index_of($body.s, $body.n)", "undefined"},

		{"starts_with('hello', 'he')", "true"}, {"starts_with('hello', 'He')", "false"}, {"starts_with('hello', '')", "true"}, {"starts_with(missing, 'a')", "undefined"}, {"starts_with($body.s, $body.N)", "undefined"},
		{"ends_with('hello', 'lo')", "true"}, {"ends_with('hello', 'LO')", "false"}, {"ends_with('hello', missing)", "undefined"}, {"ends_with($body.t, 'b')", "true"},
		{"contains('hello', 'ell')", "true"}, {"contains('hello', 'x')", "false"}, {"contains(app, 'v')", "true"}, {"contains($body.n, 'x')", "undefined"},
	})
}

// TestBuiltins_Complete checks that exactly the built-ins of the spec exist (each has
// cases in the tests above).
func TestBuiltins_Complete(t *testing.T) {
	want := []string{"abs", "exp", "power", "square", "ceiling", "floor", "sign", "sqrt",
		"as_number", "is_bool", "is_defined", "is_null", "is_number", "is_string",
		"concat", "length", "lower", "upper", "substring", "index_of", "starts_with", "ends_with", "contains",
		"twin_change_includes"}
	var got []string
	for name := range builtins {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("built-ins = %v, want %v", got, want)
	}
}

func TestBuiltins_TwinChangeIncludes(t *testing.T) {
	twin := func(body string, sys map[string]string) *Message {
		if sys == nil {
			sys = map[string]string{SysContentType: "application/json", SysContentEncoding: "utf-8"}
		}
		return &Message{Source: TwinChangeSource(), Body: []byte(body), System: sys}
	}
	body := `{"properties":{"reported":{"a":1,"gone":null,"o":{"x":[1]}},"desired":{"d":"x"}},"tags":{"site":"b1"}}`
	tests := []struct {
		name string
		path string
		m    *Message
		want string
	}{
		{"reported leaf", "properties.reported.a", twin(body, nil), "true"},
		{"reported object", "properties.reported.o", twin(body, nil), "true"},
		{"nested", "properties.reported.o.x", twin(body, nil), "true"},
		{"null means deleted", "properties.reported.gone", twin(body, nil), "false"},
		{"absent", "properties.reported.b", twin(body, nil), "false"},
		{"desired", "properties.desired.d", twin(body, nil), "true"},
		{"tags", "tags.site", twin(body, nil), "true"},
		{"prefix is case-insensitive, lookup is not", "Properties.Reported.a", twin(body, nil), "false"},
		{"not JSON", "properties.reported.a", twin("not json", nil), "undefined"},
		{"no content type", "properties.reported.a", twin(body, map[string]string{}), "undefined"},
		{"not a twin change", "properties.reported.a", &Message{Source: TelemetrySource(), Body: []byte(body), System: map[string]string{SysContentType: "application/json", SysContentEncoding: "utf-8"}}, "undefined"},
		{"source without slash", "properties.reported.a", &Message{Source: "/twinchangenotifications", Body: []byte(body), System: map[string]string{SysContentType: "application/json", SysContentEncoding: "utf-8"}}, "true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := evalString(t, "twin_change_includes("+tc.path+")", tc.m); got != tc.want {
				t.Errorf("twin_change_includes(%s) = %s, want %s", tc.path, got, tc.want)
			}
		})
	}
}
