package route

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustCompile(t *testing.T, specs []Spec) *Table {
	t.Helper()
	tbl, err := Compile(specs)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

func TestTable_Evaluate(t *testing.T) {
	up := Endpoint{Kind: Upstream}
	filter := Endpoint{Kind: ModuleInput, Module: "filter", Input: "input1"}
	sink := Endpoint{Kind: ModuleInput, Module: "sink", Input: "in"}
	specs := []Spec{
		{Name: "allUp", Text: "FROM /messages/* INTO $upstream", Priority: DefaultPriority},
		{Name: "hotUpToo", Text: "FROM /messages/modules/tempSensor/* WHERE as_number(temperature) > 30 INTO $upstream", Priority: 1, TTL: time.Minute},
		{Name: "hotUp", Text: "FROM /messages/* WHERE as_number(temperature) > 30 INTO $upstream", Priority: 1, TTL: time.Hour},
		{Name: "zeroPri", Text: "FROM /messages/* WHERE alarm = 'on' INTO $upstream", Priority: 0, TTL: 5 * time.Second},
		{Name: "toFilter", Text: `FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO BrokeredEndpoint("/modules/filter/inputs/input1")`, Priority: DefaultPriority},
		{Name: "toFilter2", Text: `FROM /messages/modules/tempSensor/* INTO BrokeredEndpoint('/modules/filter/inputs/input1')`, Priority: 5, TTL: 2 * time.Second},
		{Name: "leafToSink", Text: "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO BrokeredEndpoint(\"/modules/sink/inputs/in\")", Priority: DefaultPriority},
	}
	tbl := mustCompile(t, specs)
	tests := []struct {
		name string
		m    *Message
		want []Target
	}{
		{
			name: "module output reaches cloud and filter once each, best priority wins, name breaks the tie",
			m: &Message{Source: ModuleSource("tempSensor", "temperatureOutput"), App: map[string]string{"temperature": "35"},
				System: map[string]string{SysConnectionModuleID: "tempSensor"}},
			want: []Target{
				{Endpoint: up, Priority: 1, TTL: time.Hour, Route: "hotUp"},
				{Endpoint: filter, Priority: 5, TTL: 2 * time.Second, Route: "toFilter2"},
			},
		},
		{
			name: "priority 0 beats 1 and takes its TTL",
			m: &Message{Source: ModuleSource("tempSensor", "temperatureOutput"), App: map[string]string{"temperature": "35", "ALARM": "on"},
				System: map[string]string{SysConnectionModuleID: "tempSensor"}},
			want: []Target{
				{Endpoint: up, Priority: 0, TTL: 5 * time.Second, Route: "zeroPri"},
				{Endpoint: filter, Priority: 5, TTL: 2 * time.Second, Route: "toFilter2"},
			},
		},
		{
			name: "cold reading from another output: default priority",
			m: &Message{Source: ModuleSource("tempSensor", "other"), App: map[string]string{"temperature": "10"},
				System: map[string]string{SysConnectionModuleID: "tempSensor"}},
			want: []Target{
				{Endpoint: up, Priority: DefaultPriority, Route: "allUp"},
				{Endpoint: filter, Priority: 5, TTL: 2 * time.Second, Route: "toFilter2"},
			},
		},
		{
			name: "leaf telemetry",
			m:    &Message{Source: TelemetrySource()},
			want: []Target{
				{Endpoint: up, Priority: DefaultPriority, Route: "allUp"},
				{Endpoint: sink, Priority: DefaultPriority, Route: "leafToSink"},
			},
		},
		{
			name: "twin change matches nothing under /messages",
			m:    &Message{Source: TwinChangeSource()},
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tbl.Evaluate(tc.m)
			if len(got) != len(tc.want) {
				t.Fatalf("Evaluate = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("target %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestTable_EvaluateTieBreakIsByNameNotOrder(t *testing.T) {
	for _, order := range [][]string{{"b", "a"}, {"a", "b"}} {
		var specs []Spec
		for _, name := range order {
			ttl := time.Minute
			if name == "a" {
				ttl = time.Hour
			}
			specs = append(specs, Spec{Name: name, Text: "FROM /* INTO $upstream", Priority: 3, TTL: ttl})
		}
		got := mustCompile(t, specs).Evaluate(&Message{Source: TelemetrySource()})
		if len(got) != 1 || got[0].Route != "a" || got[0].TTL != time.Hour {
			t.Errorf("order %v: got %+v, want route a with TTL 1h", order, got)
		}
	}
}

func TestTable_EvaluateSortsByEndpointID(t *testing.T) {
	tbl := mustCompile(t, []Spec{
		{Name: "1", Text: `FROM /* INTO BrokeredEndpoint("/modules/z/inputs/i")`, Priority: DefaultPriority},
		{Name: "2", Text: `FROM /* INTO BrokeredEndpoint("/modules/a-b/inputs/i")`, Priority: DefaultPriority},
		{Name: "3", Text: `FROM /* INTO $upstream`, Priority: DefaultPriority},
		{Name: "4", Text: `FROM /* INTO BrokeredEndpoint("/modules/a/inputs/i")`, Priority: DefaultPriority},
	})
	var ids []string
	for _, tg := range tbl.Evaluate(&Message{Source: TwinChangeSource()}) {
		ids = append(ids, tg.Endpoint.ID())
	}
	if got, want := strings.Join(ids, " "), "$upstream /modules/a-b/inputs/i /modules/a/inputs/i /modules/z/inputs/i"; got != want {
		t.Errorf("endpoints = %s, want %s", got, want)
	}
}

func TestTable_EvaluateNil(t *testing.T) {
	var nilTable *Table
	if got := nilTable.Evaluate(&Message{}); got != nil {
		t.Errorf("nil table: %v", got)
	}
	tbl := mustCompile(t, []Spec{{Name: "a", Text: "FROM /* INTO $upstream", Priority: DefaultPriority}})
	if got := tbl.Evaluate(nil); got != nil {
		t.Errorf("nil message: %v", got)
	}
	empty := mustCompile(t, nil)
	if got := empty.Evaluate(&Message{Source: TelemetrySource()}); got != nil {
		t.Errorf("empty table: %v", got)
	}
}

func TestCompile_Errors(t *testing.T) {
	tests := []struct {
		name     string
		specs    []Spec
		sentinel error
		contains string
	}{
		{"empty name", []Spec{{Text: "FROM /* INTO $upstream"}}, ErrSpec, "route name is empty"},
		{"duplicate name", []Spec{{Name: "a", Text: "FROM /* INTO $upstream"}, {Name: "a", Text: "FROM /* INTO $upstream"}}, ErrSpec, `route "a": invalid route spec: duplicate route name`},
		{"priority 10", []Spec{{Name: "a", Text: "FROM /* INTO $upstream", Priority: 10}}, ErrSpec, "priority 10 is not in 0..9"},
		{"negative priority", []Spec{{Name: "a", Text: "FROM /* INTO $upstream", Priority: -1}}, ErrSpec, "priority -1"},
		{"negative TTL", []Spec{{Name: "a", Text: "FROM /* INTO $upstream", TTL: -time.Second}}, ErrSpec, "time to live -1s is negative"},
		{"syntax", []Spec{{Name: "a", Text: "FROM /* INTO"}}, ErrSyntax, `route "a" at 13: syntax error`},
		{"type", []Spec{{Name: "hot", Text: "FROM /* WHERE temperature > 30 INTO $upstream"}}, ErrType, `route "hot" at 27: type error: invalid operands to binary operator '>'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := Compile(tc.specs)
			if err == nil {
				t.Fatalf("Compile succeeded: %v", tbl)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tc.sentinel)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
		})
	}
}

func TestCompile_ReportsEveryBadRoute(t *testing.T) {
	_, err := Compile([]Spec{
		{Name: "good", Text: "FROM /* INTO $upstream"},
		{Name: "bad1", Text: "FROM /* WHERE x > 1 INTO $upstream"},
		{Name: "bad2", Text: "FROM /* INTO $nowhere"},
		{Name: "bad3", Text: "FROM /* INTO $upstream", Priority: 42},
	})
	if err == nil {
		t.Fatal("Compile succeeded")
	}
	var errs []*Error
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var re *Error
		if !errors.As(e, &re) {
			t.Fatalf("%v is not an *Error", e)
		}
		errs = append(errs, re)
	}
	if len(errs) != 3 || errs[0].Route != "bad1" || errs[1].Route != "bad2" || errs[2].Route != "bad3" {
		t.Errorf("errors = %v, want one each for bad1, bad2, bad3", err)
	}
	if !errors.Is(err, ErrType) || !errors.Is(err, ErrSyntax) || !errors.Is(err, ErrSpec) {
		t.Errorf("joined error %v should match ErrType, ErrSyntax and ErrSpec", err)
	}
}

func TestTable_Routes(t *testing.T) {
	tbl := mustCompile(t, []Spec{
		{Name: "b", Text: "FROM /messages/* INTO $upstream", Priority: DefaultPriority},
		{Name: "a", Text: "FROM /* WHERE true INTO $upstream", Priority: 9},
	})
	rs := tbl.Routes()
	if len(rs) != 2 || rs[0].Name != "b" || rs[1].Name != "a" || rs[1].Condition == nil || rs[0].Condition != nil {
		t.Fatalf("Routes = %+v", rs)
	}
	rs[0] = nil // the caller's copy only
	if tbl.Routes()[0] == nil {
		t.Error("Routes returned the table's own slice")
	}
}

// TestTable_ConcurrentEvaluate shares one table between goroutines (run with -race).
func TestTable_ConcurrentEvaluate(t *testing.T) {
	tbl := mustCompile(t, []Spec{
		{Name: "a", Text: "FROM /messages/* WHERE $body.n > 1 INTO $upstream", Priority: DefaultPriority},
		{Name: "b", Text: `FROM /* WHERE app = 'v' INTO BrokeredEndpoint("/modules/m/inputs/i")`, Priority: 2},
	})
	done := make(chan []Target)
	for range 8 {
		go func() {
			var last []Target
			for range 200 {
				last = tbl.Evaluate(jsonMessage())
			}
			done <- last
		}()
	}
	for range 8 {
		if got := <-done; len(got) != 2 {
			t.Errorf("Evaluate = %+v, want 2 targets", got)
		}
	}
}
