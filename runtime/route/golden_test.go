package route

import (
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Golden files hold inputs and expected outputs together. Lines starting with "=> " are
// outputs: the test regenerates them from the input lines above and compares the whole
// file; -update writes the regenerated file back. Lines starting with "#" and blank
// lines are kept as they are.

// runGolden regenerates path with gen, which receives each non-output line and returns
// the outputs to put after it (nil for comments and directives).
func runGolden(t *testing.T, path string, gen func(line string) []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasPrefix(line, "=> ") || line == "=>" {
			continue
		}
		out = append(out, line)
		for _, o := range gen(line) {
			out = append(out, "=> "+o)
		}
	}
	got := strings.Join(out, "\n") + "\n"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != string(data) {
		want := strings.Split(string(data), "\n")
		gotLines := strings.Split(got, "\n")
		for i := 0; i < len(want) || i < len(gotLines); i++ {
			var w, g string
			if i < len(want) {
				w = want[i]
			}
			if i < len(gotLines) {
				g = gotLines[i]
			}
			if w != g {
				t.Fatalf("%s:%d differs (run go test -run %s -update to accept):\n got: %s\nwant: %s", path, i+1, t.Name(), g, w)
			}
		}
	}
}

// describeRoute renders a parse result for golden files.
func describeRoute(r *Route, err error) []string {
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	out := []string{"source: " + r.Source, "sink: " + r.Sink.ID()}
	if r.Condition != nil {
		out = append(out, "where: "+r.Condition.dump())
	}
	return append(out, "canonical: "+r.String())
}

func TestGolden_Parse(t *testing.T) {
	runGolden(t, filepath.Join("testdata", "parse.txt"), func(line string) []string {
		switch {
		case strings.HasPrefix(line, "route: "):
			text := strings.TrimPrefix(line, "route: ")
			r, err := Parse("r", text)
			checkParseInvariants(t, text, r, err)
			return describeRoute(r, err)
		case strings.HasPrefix(line, "cond: "):
			c, err := CompileCondition(strings.TrimPrefix(line, "cond: "))
			if err != nil {
				checkErr(t, line, err)
				return []string{"error: " + err.Error()}
			}
			return []string{c.dump(), "canonical: " + c.String()}
		}
		return nil
	})
}

// checkParseInvariants asserts what must hold for every parse: errors are *Error with a
// sentinel, and a parsed route prints to text that parses back to the same route.
func checkParseInvariants(t *testing.T, text string, r *Route, err error) {
	t.Helper()
	if err != nil {
		checkErr(t, text, err)
		return
	}
	canon := r.String()
	if strings.Contains(canon, "*/") {
		return // a comment could swallow the path's "/*" in the canonical form
	}
	r2, err := Parse(r.Name, canon)
	if err != nil {
		t.Fatalf("canonical form of %q does not parse: %q: %v", text, canon, err)
	}
	if got, want := describeRoute(r2, nil), describeRoute(r, nil); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("round trip of %q changed the route:\n got %q\nwant %q", text, got, want)
	}
}

func checkErr(t *testing.T, input string, err error) {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("%q: error %v (%T) is not an *Error", input, err, err)
	}
	if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrType) {
		t.Fatalf("%q: error %v wraps neither ErrSyntax nor ErrType", input, err)
	}
	if re.Pos < 1 || re.Pos > len(input)+1 {
		t.Fatalf("%q: error position %d out of range", input, re.Pos)
	}
}

// TestGolden_Eval runs testdata/eval/*.txt. Each file describes one message with
//
//	source: <source>        (default /messages/)
//	app: <name>=<value>     (repeatable)
//	sys: <name>=<value>     (repeatable)
//	body: <text>            body-hex: <hex bytes>
//	encode: utf-16le | utf-16be-bom | utf-32le | utf-8-bom   (re-encodes body:)
//
// followed by "cond: <condition>" lines (output: the value or the error) and
// "route: <route>" lines (output: whether the message matches).
func TestGolden_Eval(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "eval", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no eval golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m := &Message{Source: TelemetrySource(), App: map[string]string{}, System: map[string]string{}}
			runGolden(t, path, func(line string) []string {
				key, val, ok := strings.Cut(line, ": ")
				if !ok || strings.HasPrefix(line, "#") {
					return nil
				}
				switch key {
				case "source":
					m.Source = val
				case "app", "sys":
					name, v, _ := strings.Cut(val, "=")
					if key == "app" {
						m.App[name] = v
					} else {
						m.System[name] = v
					}
				case "body":
					m.Body = []byte(val)
				case "body-hex":
					b, err := hex.DecodeString(strings.ReplaceAll(val, " ", ""))
					if err != nil {
						t.Fatalf("body-hex: %v", err)
					}
					m.Body = b
				case "encode":
					m.Body = encodeBody(t, string(m.Body), val)
				case "cond":
					c, err := CompileCondition(val)
					if err != nil {
						checkErr(t, val, err)
						return []string{"error: " + err.Error()}
					}
					return []string{c.Eval(m).String()}
				case "route":
					r, err := Parse("r", val)
					if err != nil {
						checkErr(t, val, err)
						return []string{"error: " + err.Error()}
					}
					if r.Match(m) {
						return []string{"match"}
					}
					return []string{"no match"}
				default:
					t.Fatalf("unknown directive %q", key)
				}
				return nil
			})
		})
	}
}

func encodeBody(t *testing.T, s, enc string) []byte {
	t.Helper()
	var out []byte
	switch enc {
	case "utf-8-bom":
		return append([]byte{0xEF, 0xBB, 0xBF}, s...)
	case "utf-16le", "utf-16be-bom":
		be := enc == "utf-16be-bom"
		if be {
			out = append(out, 0xFE, 0xFF)
		}
		for _, u := range utf16.Encode([]rune(s)) {
			if be {
				out = append(out, byte(u>>8), byte(u))
			} else {
				out = append(out, byte(u), byte(u>>8))
			}
		}
	case "utf-32le":
		for _, r := range s {
			out = append(out, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	return out
}
