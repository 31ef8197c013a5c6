package sas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// readInputs returns the non-comment lines of a testdata/*.txt file.
func readInputs(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// checkGolden compares got with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the current output (run go test -update and review the diff):\n%s", path, got)
	}
}

func TestGolden_Parse(t *testing.T) {
	type out struct {
		Token    *Token    `json:",omitempty"`
		Audience *Audience `json:",omitempty"`
		String   string    `json:",omitempty"`
		Error    string    `json:",omitempty"`
	}
	var buf bytes.Buffer
	for _, in := range readInputs(t, "tokens.txt") {
		var o out
		if tok, err := Parse(in); err != nil {
			o.Error = err.Error()
		} else {
			o.Token, o.String = &tok, tok.String()
			if a, err := tok.Audience(); err != nil {
				o.Error = err.Error()
			} else {
				o.Audience = &a
			}
		}
		writeCase(t, &buf, in, o)
	}
	checkGolden(t, "tokens.golden", buf.Bytes())
}

func TestGolden_ParseConnectionString(t *testing.T) {
	type out struct {
		String, Redacted, ResourceURI, ConnectHost string `json:",omitempty"`
		IsService                                  bool   `json:",omitempty"`
		Error                                      string `json:",omitempty"`
	}
	var buf bytes.Buffer
	for _, in := range readInputs(t, "connstrings.txt") {
		var o out
		if c, err := ParseConnectionString(in); err != nil {
			o.Error = err.Error()
		} else {
			o = out{String: c.String(), Redacted: c.Redacted(), ResourceURI: c.ResourceURI(), ConnectHost: c.ConnectHost(), IsService: c.IsService()}
		}
		writeCase(t, &buf, in, o)
	}
	checkGolden(t, "connstrings.golden", buf.Bytes())
}

func writeCase(t *testing.T, buf *bytes.Buffer, in string, o any) {
	t.Helper()
	fmt.Fprintf(buf, "in: %s\n", in)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // keep '&' readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(o); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
}
