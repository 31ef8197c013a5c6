package conformance

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// sampleReport has one result of each verdict, and module output with bytes XML cannot
// carry.
func sampleReport() *Report {
	r := &Report{Module: "filter", Target: "executable ./filter", Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Duration: 3 * time.Second, ModuleOutput: "level=INFO msg=started\x00\x1b[31m <&> \xff\n"}
	r.add(Result{Name: CheckConnect, Verdict: Pass, Evidence: "connected", Duration: 40 * time.Millisecond})
	r.add(Result{Name: CheckIdentity, Verdict: Fail, Evidence: `published on "devices/e/modules/other" <refused>`,
		Details: []string{"second", "third\nline"}, Duration: time.Millisecond})
	r.add(Result{Name: CheckTwin, Verdict: Skip, Evidence: "no twin behaviour declared"})
	return r
}

func TestReport_Counts(t *testing.T) {
	r := sampleReport()
	if r.Passed != 1 || r.Failed != 1 || r.Skipped != 1 || r.OK() {
		t.Fatalf("counts %d/%d/%d ok=%v", r.Passed, r.Failed, r.Skipped, r.OK())
	}
	if got := r.FailedChecks(); len(got) != 1 || got[0] != CheckIdentity {
		t.Errorf("failed checks %v", got)
	}
	if res, ok := r.Result(CheckTwin); !ok || res.Verdict != Skip {
		t.Errorf("Result(twin) = %+v, %v", res, ok)
	}
}

// TestReport_JUnitParsesBack writes the JUnit XML, reads it back with encoding/xml and
// checks the counts, the verdicts and that nothing was lost or made unreadable.
func TestReport_JUnitParsesBack(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), xml.Header) {
		t.Errorf("no XML declaration:\n%s", b.String())
	}
	got := parseJUnit(t, b.Bytes())
	if got.Tests != 3 || got.Failures != 1 || got.Skipped != 1 || len(got.Suites) != 1 {
		t.Fatalf("testsuites %+v", got)
	}
	s := got.Suites[0]
	if s.Name != "conformance/filter" || s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 || s.Time != "3.000" || s.Timestamp != "2025-01-02T03:04:05" {
		t.Errorf("testsuite %+v", s)
	}
	if len(s.Cases) != 3 {
		t.Fatalf("%d testcases", len(s.Cases))
	}
	if c := s.Cases[0]; c.Name != CheckConnect || c.Failure != nil || c.Skipped != nil || c.Time != "0.040" {
		t.Errorf("passed case %+v", c)
	}
	if c := s.Cases[1]; c.Failure == nil || c.Failure.Message != `published on "devices/e/modules/other" <refused>` || c.Failure.Text != "second\nthird\nline" {
		t.Errorf("failed case %+v", c)
	}
	if c := s.Cases[2]; c.Skipped == nil || c.Skipped.Message != "no twin behaviour declared" {
		t.Errorf("skipped case %+v", c)
	}
	if want := "level=INFO msg=started[31m <&> \n"; s.SystemErr != want {
		t.Errorf("system-err %q, want %q (control bytes and invalid UTF-8 dropped)", s.SystemErr, want)
	}
}

// parseJUnit reads JUnit XML strictly.
func parseJUnit(t *testing.T, b []byte) JUnitSuites {
	t.Helper()
	var got JUnitSuites
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("the JUnit XML does not parse: %v\n%s", err, b)
	}
	return got
}

func TestReport_JSONRoundTrip(t *testing.T) {
	var b bytes.Buffer
	r := sampleReport()
	r.DurationSeconds = r.Duration.Seconds()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Module != "filter" || got.Failed != 1 || len(got.Results) != 3 || got.Results[1].Details[1] != "third\nline" ||
		got.DurationSeconds != 3 || got.Results[0].DurationSeconds != 0.04 || got.Results[0].Verdict != Pass {
		t.Errorf("round trip: %+v", got)
	}
	for _, key := range []string{`"checks"`, `"verdict": "FAIL"`, `"evidence"`, `"moduleOutput"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, b.String())
		}
	}
}

func TestReport_Text(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Conformance of module filter (executable ./filter)",
		"PASS  connect   connected\n",
		`FAIL  identity  published on "devices/e/modules/other" <refused>` + "\n",
		"                second\n", "                third | line\n",
		"SKIP  twin      no twin behaviour declared\n",
		"3 checks: 1 passed, 1 failed, 1 skipped in 3.0s\n",
		"FAILED: identity\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}
