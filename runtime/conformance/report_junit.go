package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// The JUnit XML written by WriteJUnit is the common subset CI systems read (Jenkins,
// GitLab, GitHub test reporters): one <testsuites> holding one <testsuite> for the
// module, one <testcase> per check, with <failure> or <skipped> and the evidence in
// <system-out>; the module's output goes in the suite's <system-err>.

// JUnitSuites is the root element.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one module's run.
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []JUnitProperty `xml:"properties>property"`
	Cases      []JUnitCase     `xml:"testcase"`
	SystemErr  string          `xml:"system-err,omitempty"`
}

// JUnitProperty is a name and value of the suite.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one check.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitFailure `xml:"failure"`
	Skipped   *JUnitSkipped `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitFailure marks a failed check: the evidence as message, the details as text.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnitSkipped marks a skipped check, with the reason.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnit returns the report as JUnit XML elements.
func (r *Report) JUnit() JUnitSuites {
	secs := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	suite := JUnitSuite{
		Name: "conformance/" + r.Module, Tests: len(r.Results), Failures: r.Failed, Skipped: r.Skipped,
		Time: secs(r.Duration), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"),
		Properties: []JUnitProperty{{Name: "module", Value: r.Module}, {Name: "target", Value: r.Target}},
		SystemErr:  xmlSafe(r.ModuleOutput),
	}
	for _, res := range r.Results {
		c := JUnitCase{Name: res.Name, ClassName: "conformance." + r.Module, Time: secs(res.Duration),
			SystemOut: xmlSafe(strings.Join(append([]string{res.Evidence}, res.Details...), "\n"))}
		switch res.Verdict {
		case Fail:
			c.Failure = &JUnitFailure{Message: xmlSafe(res.Evidence), Type: "nonconformance", Text: xmlSafe(strings.Join(res.Details, "\n"))}
		case Skip:
			c.Skipped = &JUnitSkipped{Message: xmlSafe(res.Evidence)}
		}
		suite.Cases = append(suite.Cases, c)
	}
	return JUnitSuites{Name: "outpost conformance", Tests: suite.Tests, Failures: suite.Failures,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []JUnitSuite{suite}}
}

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	b, err := xml.MarshalIndent(r.JUnit(), "", "  ")
	if err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s%s\n", xml.Header, b)
	return err
}

// xmlSafe drops the characters XML 1.0 cannot carry at all (control characters other than
// tab, newline and carriage return, invalid UTF-8): a module's output may hold any bytes,
// and encoding/xml would write them as they are, making the file unreadable.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFD, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return -1
		}
		return r
	}, s)
}
