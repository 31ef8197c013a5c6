package route

import "testing"

// jsonMessage returns a telemetry message whose body holds one value of every kind, so
// $body.x operands can be number (n=2, m=3, z=0, neg=-2.5), string (s='a', t='b',
// num='42'), bool (T, F), null (N), undefined (u: absent) or object (o).
func jsonMessage() *Message {
	return &Message{
		Source: TelemetrySource(),
		Body:   []byte(`{"n":2,"m":3,"z":0,"neg":-2.5,"s":"a","t":"b","num":"42","T":true,"F":false,"N":null,"o":{"k":1}}`),
		App:    map[string]string{"app": "v", "five": "5"},
		System: map[string]string{SysContentType: "application/json", SysContentEncoding: "utf-8"},
	}
}

// evalString compiles cond and evaluates it against m, failing the test on compile errors.
func evalString(t *testing.T, cond string, m *Message) string {
	t.Helper()
	c, err := CompileCondition(cond)
	if err != nil {
		t.Fatalf("CompileCondition(%q): %v", cond, err)
	}
	return c.Eval(m).String()
}

type evalCase struct {
	cond string
	want string
}

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	m := jsonMessage()
	for _, tc := range cases {
		t.Run(tc.cond, func(t *testing.T) {
			if got := evalString(t, tc.cond, m); got != tc.want {
				t.Errorf("%s = %s, want %s", tc.cond, got, tc.want)
			}
		})
	}
}
