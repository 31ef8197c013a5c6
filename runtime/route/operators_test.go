package route

import "testing"

func TestEval_Arithmetic(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"1 + 2", "3"},
		{"5 - 7", "-2"},
		{"2 * 3.5", "7"},
		{"7 / 2", "3.5"},
		{"7 % 3", "1"},
		{"-7 % 3", "-1"},
		{"1 / 0", "+Inf"},
		{"-1 / 0", "-Inf"},
		{"0 / 0", "undefined"},
		{"- 3", "-3"},
		{"- $body.n", "-2"},
		{"- $body.s", "undefined"},
		{"- $body.N", "undefined"},
		{"- $body.u", "undefined"},
		{"$body.n + $body.m", "5"},
		{"$body.n * 1.5", "3"},
		{"$body.m % $body.n", "1"},
		{"$body.n / $body.z", "+Inf"},
		{"$body.z / $body.z", "undefined"},
		{"$body.n + $body.s", "undefined"},
		{"$body.n + $body.T", "undefined"},
		{"$body.n - $body.N", "undefined"},
		{"$body.n * $body.u", "undefined"},
		{"$body.u / $body.n", "undefined"},
		{"$body.o + 1", "undefined"},
	})
}

func TestEval_Concat(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"'a' || 'b'", `"ab"`},
		{"app || '!'", `"v!"`},
		{"missing || '!'", "undefined"},
		{"$body.s || $body.t", `"ab"`},
		{"$body.s || $body.n", "undefined"},
		{"$body.s || $body.N", "undefined"},
		{"$body.u || 'x'", "undefined"},
	})
}

func TestEval_Comparison(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"1 < 2", "true"}, {"2 < 1", "false"}, {"1 <= 1", "true"}, {"2 <= 1", "false"},
		{"2 > 1", "true"}, {"1 > 2", "false"}, {"1 >= 1", "true"}, {"0 >= 1", "false"},
		{"1 = 1", "true"}, {"1 = 2", "false"}, {"1 != 2", "true"}, {"1 <> 1", "false"},
		{"'a' < 'b'", "true"}, {"'B' < 'a'", "true"}, {"'a' = 'A'", "false"},
		{"'abc' > 'ab'", "true"}, {"'' < 'a'", "true"},
		{"false < true", "true"}, {"true = true", "true"}, {"true <> false", "true"},
		// undefined and null make every comparison undefined
		{"undefined = undefined", "undefined"},
		{"undefined <> undefined", "undefined"},
		{"null = null", "undefined"},
		{"null <> null", "undefined"},
		{"missing = 'x'", "undefined"},
		{"missing <> 'x'", "undefined"},
		{"missing < 'x'", "undefined"},
		{"$body.N = null", "undefined"},
		{"$body.N = 1", "undefined"},
		{"$body.u = 1", "undefined"},
		{"$body.u != 1", "undefined"},
		{"$body.n >= $body.u", "undefined"},
		{"$body.o = 1", "undefined"},
		// dynamic values of the same kind compare, of different kinds are unequal and unordered
		{"$body.n = 2", "true"},
		{"$body.n < $body.m", "true"},
		{"$body.s = 'a'", "true"},
		{"$body.s < $body.t", "true"},
		{"$body.T = true", "true"},
		{"$body.T > $body.F", "true"},
		{"$body.num = '42'", "true"},
		{"$body.num = 42", "false"},
		{"$body.num != 42", "true"},
		{"$body.num <> 42", "true"},
		{"$body.num < 42", "undefined"},
		{"$body.num >= 42", "undefined"},
		{"$body.T = 1", "false"},
		{"$body.s = $body.n", "false"},
	})
}

func TestEval_Logic(t *testing.T) {
	// Kleene three-valued logic; $body.u is undefined at runtime, $body.N null, $body.n a number.
	runEvalCases(t, []evalCase{
		{"true AND true", "true"},
		{"true AND false", "false"},
		{"false AND true", "false"},
		{"false AND false", "false"},
		{"true AND undefined", "undefined"},
		{"undefined AND true", "undefined"},
		{"false AND undefined", "false"},
		{"undefined AND false", "false"},
		{"undefined AND undefined", "undefined"},
		{"true AND null", "undefined"},
		{"null AND false", "false"},
		{"true OR false", "true"},
		{"false OR true", "true"},
		{"false OR false", "false"},
		{"true OR undefined", "true"},
		{"undefined OR true", "true"},
		{"false OR undefined", "undefined"},
		{"undefined OR false", "undefined"},
		{"undefined OR undefined", "undefined"},
		{"null OR true", "true"},
		{"null OR false", "undefined"},
		{"NOT true", "false"},
		{"NOT false", "true"},
		{"NOT null", "undefined"},
		{"NOT (missing = 'x')", "undefined"},
		{"NOT NOT true", "true"},
		{"NOT $body.T", "false"},
		{"NOT $body.n", "undefined"},
		{"NOT $body.u", "undefined"},
		{"$body.T AND $body.F", "false"},
		{"$body.T AND $body.n", "undefined"},
		{"$body.F AND $body.n", "false"},
		{"$body.n OR $body.T", "true"},
		{"$body.u OR $body.F", "undefined"},
		{"$body.s AND true", "undefined"},
	})
}

func TestEval_Coalesce(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"app ?? 'd'", `"v"`},
		{"missing ?? 'd'", `"d"`},
		{"missing ?? missing2", "undefined"},
		{"$body.u ?? 7", "7"},
		{"$body.n ?? 7", "2"},
		{"$body.N ?? 7", "null"}, // null is defined
		{"$body.o ?? 'obj'", `"obj"`},
		{"undefined ?? undefined", "undefined"},
		{"null ?? null", "null"},
		{"(missing = 'x') ?? true", "true"},
	})
}

func TestEval_Precedence(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"1 + 2 * 3", "7"},
		{"(1 + 2) * 3", "9"},
		{"10 - 4 - 3", "3"},
		{"2 * 3 % 4", "2"},
		{"1 < 2 = true", "true"},
		{"true OR false AND false", "true"},
		{"(true OR false) AND false", "false"},
		{"NOT false AND false", "false"},
		{"- 2 * 3", "-6"},
		{"missing ?? 'a' || 'b'", `"ab"`},
		{"false OR missing = 'x' ?? true", "true"},
	})
}
