package route

import (
	"errors"
	"testing"
)

func TestParse_Route(t *testing.T) {
	r, err := Parse("r1", `FROM /messages/modules/tempSensor/outputs/temperatureOutput WHERE $body.t > 1 INTO BrokeredEndpoint("/modules/filter/inputs/input1")`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "r1" || r.Source != "/messages/modules/tempSensor/outputs/temperatureOutput/" {
		t.Errorf("name/source = %q %q", r.Name, r.Source)
	}
	if r.Sink != (Endpoint{Kind: ModuleInput, Module: "filter", Input: "input1"}) {
		t.Errorf("sink = %+v", r.Sink)
	}
	if r.Condition == nil || r.Condition.Text() != "$body.t > 1" {
		t.Errorf("condition = %v", r.Condition)
	}
	if r.Text == "" {
		t.Error("Text not kept")
	}
}

func TestParse_ErrorIsStructured(t *testing.T) {
	tests := []struct {
		name, text string
		sentinel   error
		pos        int
		msg        string
	}{
		{"type error points at the operator", "FROM /messages/* WHERE temperature > 30 INTO $upstream", ErrType, 36, "invalid operands to binary operator '>': string and number"},
		{"syntax error points at the token", "FROM /messages/* INTO $nope", ErrSyntax, 23, "system endpoint '$nope' is not supported (only $upstream)"},
		{"unknown function", "FROM /* WHERE foo(1) INTO $upstream", ErrType, 15, "unknown built-in function 'foo'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("myroute", tc.text)
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not *Error", err)
			}
			if !errors.Is(err, tc.sentinel) || re.Route != "myroute" || re.Pos != tc.pos || re.Msg != tc.msg {
				t.Errorf("got %+v, want %v at %d: %s", re, tc.sentinel, tc.pos, tc.msg)
			}
		})
	}
}

func TestRoute_Match(t *testing.T) {
	leafOnly, err := Parse("leaf", "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream")
	if err != nil {
		t.Fatal(err)
	}
	moduleM, err := Parse("m", "FROM /messages/modules/m/* INTO $upstream")
	if err != nil {
		t.Fatal(err)
	}
	all, err := Parse("all", "FROM /* INTO $upstream")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		r     *Route
		m     *Message
		match bool
	}{
		{"leaf device telemetry", leafOnly, &Message{Source: TelemetrySource()}, true},
		{"module output is not leaf", leafOnly, &Message{Source: ModuleSource("m", "o"), System: map[string]string{"connectionModuleId": "m"}}, false},
		{"module m output", moduleM, &Message{Source: ModuleSource("m", "o")}, true},
		{"module m without output", moduleM, &Message{Source: ModuleSource("m", "")}, true},
		{"module m1 is not module m", moduleM, &Message{Source: ModuleSource("m1", "o")}, false},
		{"module mm is not module m", moduleM, &Message{Source: "/messages/modules/mm"}, false},
		{"case-insensitive source", moduleM, &Message{Source: "/MESSAGES/Modules/M/outputs/x/"}, true},
		{"/* takes twin changes", all, &Message{Source: TwinChangeSource()}, true},
		{"/messages/* does not take twin changes", leafOnly, &Message{Source: TwinChangeSource()}, false},
		{"empty source", moduleM, &Message{}, false},
		{"nil message", all, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Match(tc.m); got != tc.match {
				t.Errorf("Match = %v, want %v", got, tc.match)
			}
		})
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct {
		name string
		sys  map[string]string
		want string
	}{
		{"leaf", map[string]string{"connectionDeviceId": "d"}, "/messages/"},
		{"nil", nil, "/messages/"},
		{"module", map[string]string{"connectionModuleId": "m"}, "/messages/modules/m/"},
		{"module output", map[string]string{"ConnectionModuleId": "m", "outputname": "o"}, "/messages/modules/m/outputs/o/"},
		{"twin change wins", map[string]string{"connectionModuleId": "$edgeHub", "messageType": "TwinChangeNotification"}, "/twinChangeNotifications/"},
		{"other message type", map[string]string{"messageType": "something"}, "/messages/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SourceOf(tc.sys); got != tc.want {
				t.Errorf("SourceOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNormaliseSource(t *testing.T) {
	for in, want := range map[string]string{
		"/*":                       "/",
		"/":                        "/",
		"/messages/*":              "/messages/",
		"/messages":                "/messages/",
		"/messages/":               "/messages/",
		"/messages//**":            "/messages/",
		" /messages/m/* ":          "/messages/m/",
		"/messages/m*":             "/messages/m/",
		"/twinChangeNotifications": "/twinChangeNotifications/",
	} {
		if got := normaliseSource(in); got != want {
			t.Errorf("normaliseSource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEndpoint_ID(t *testing.T) {
	if got := (Endpoint{Kind: Upstream}).ID(); got != "$upstream" {
		t.Errorf("upstream ID = %q", got)
	}
	if got := (Endpoint{Kind: ModuleInput, Module: "m", Input: "i"}).String(); got != "/modules/m/inputs/i" {
		t.Errorf("module ID = %q", got)
	}
}

func TestLookupFold_Deterministic(t *testing.T) {
	m := map[string]string{"Temp": "1", "TEMP": "2", "temP": "3"}
	for range 20 {
		if v, ok := lookupFold(m, "temp"); !ok || v != "2" { // "TEMP" sorts first
			t.Fatalf("lookupFold = %q %v, want 2", v, ok)
		}
	}
	if v, _ := lookupFold(m, "temP"); v != "3" {
		t.Errorf("exact match should win, got %q", v)
	}
}

func TestCondition_NilAndEmpty(t *testing.T) {
	var c *Condition
	if !c.Eval(&Message{}).IsTrue() {
		t.Error("nil condition should be true")
	}
	cond, err := CompileCondition("missing = 'x'")
	if err != nil {
		t.Fatal(err)
	}
	if got := cond.Eval(nil); got.Kind() != KindUndefined {
		t.Errorf("Eval(nil) = %v", got)
	}
	if _, err := CompileCondition("   "); !errors.Is(err, ErrSyntax) {
		t.Errorf("empty condition: %v", err)
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		v    Value
		kind Kind
		str  string
	}{
		{Value{}, KindUndefined, "undefined"},
		{NullValue(), KindNull, "null"},
		{BoolValue(true), KindBool, "true"},
		{NumberValue(2.5), KindNumber, "2.5"},
		{NumberValue(0.0 / zero()), KindUndefined, "undefined"},
		{StringValue("a\"b\\c\n"), KindString, `"a\"b\\c\u000a"`},
	}
	for _, tc := range tests {
		t.Run(tc.str, func(t *testing.T) {
			if tc.v.Kind() != tc.kind || tc.v.String() != tc.str {
				t.Errorf("got %v %s, want %v %s", tc.v.Kind(), tc.v, tc.kind, tc.str)
			}
		})
	}
	if s, ok := StringValue("x").AsString(); !ok || s != "x" {
		t.Error("AsString")
	}
	if _, ok := StringValue("x").AsNumber(); ok {
		t.Error("AsNumber on a string")
	}
	if b, ok := BoolValue(false).AsBool(); !ok || b {
		t.Error("AsBool")
	}
	if NullValue().IsTrue() || StringValue("true").IsTrue() || !BoolValue(true).IsTrue() {
		t.Error("IsTrue")
	}
}

func zero() float64 { return 0 }
