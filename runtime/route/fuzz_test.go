package route

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenLines returns the values of "key: value" input lines in a golden file.
func goldenLines(t testing.TB, path, key string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+": "); ok {
			out = append(out, v)
		}
	}
	return out
}

// FuzzParse: Parse never panics; failures are *Error naming the route, wrapping
// ErrSyntax or ErrType, with a position inside the text; successes have a normalised
// source and print to canonical text that parses back to the same route.
func FuzzParse(f *testing.F) {
	for _, r := range goldenLines(f, filepath.Join("testdata", "parse.txt"), "route") {
		f.Add(r)
	}
	for _, c := range goldenLines(f, filepath.Join("testdata", "parse.txt"), "cond") {
		f.Add("FROM /* WHERE " + c + " INTO $upstream")
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := Parse("fz", text)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not *Error", err, err)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrType) {
				t.Fatalf("error %v wraps neither ErrSyntax nor ErrType", err)
			}
			if re.Route != "fz" || re.Pos < 1 || re.Pos > len(text)+1 {
				t.Fatalf("bad error fields %+v for %q", re, text)
			}
			return
		}
		if !strings.HasPrefix(r.Source, "/") || !strings.HasSuffix(r.Source, "/") {
			t.Fatalf("source %q not normalised", r.Source)
		}
		if r.Sink.Kind != Upstream && (r.Sink.Kind != ModuleInput || r.Sink.Module == "" || r.Sink.Input == "") {
			t.Fatalf("bad sink %+v", r.Sink)
		}
		r.Match(&Message{Source: r.Source})
		checkParseInvariants(t, text, r, nil)
	})
}

// FuzzEval: for any condition that compiles and any message, Eval returns a valid Value
// without panicking, deterministically, and a route with that condition evaluates in a
// table without panicking.
func FuzzEval(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "eval", "*.txt"))
	for _, path := range files {
		body := ""
		if b := goldenLines(f, path, "body"); len(b) > 0 {
			body = b[0]
		}
		for _, c := range goldenLines(f, path, "cond") {
			f.Add(c, []byte(body), "/messages/", "application/json", "utf-8", "temperature", "31")
		}
	}
	f.Add("$body.a[0] = 1", []byte("\xff\xfe{\x00}\x00"), "/twinChangeNotifications", "application/json", "utf-16", "$body.a[0]", "x")
	f.Fuzz(func(t *testing.T, cond string, body []byte, source, contentType, encoding, appName, appValue string) {
		c, err := CompileCondition(cond)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || (!errors.Is(err, ErrSyntax) && !errors.Is(err, ErrType)) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		m := &Message{
			Source: source,
			Body:   body,
			App:    map[string]string{appName: appValue, strings.ToUpper(appName): appValue + "!"},
			System: map[string]string{"CONTENTTYPE": contentType, "contentEncoding": encoding, "connectionModuleId": appValue},
		}
		v := c.Eval(m)
		if v.Kind() > KindString {
			t.Fatalf("invalid kind %v", v.Kind())
		}
		if n, ok := v.AsNumber(); ok && math.IsNaN(n) {
			t.Fatalf("NaN number from %q", cond)
		}
		if w := c.Eval(m); w != v {
			t.Fatalf("Eval not deterministic: %v then %v", v, w)
		}
		tbl, err := Compile([]Spec{{Name: "f", Text: "FROM /* WHERE " + c.String() + " INTO $upstream", Priority: DefaultPriority}})
		if err != nil {
			if strings.Contains(c.String(), "*/") {
				return
			}
			t.Fatalf("canonical condition %q does not compile in a route: %v", c.String(), err)
		}
		got := tbl.Evaluate(m)
		if matched := len(got) == 1; matched != (v.IsTrue() && sourceMatches(m.Source, "/")) {
			t.Fatalf("table says %v, condition says %v for source %q", got, v, m.Source)
		}
	})
}
