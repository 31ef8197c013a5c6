package conformance

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes the terminal report: a header, one line per check (verdict, name,
// evidence), the details of the failed checks indented below them, and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Conformance of module %s (%s)\n\n", r.Module, r.Target)
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", res.Verdict, width, res.Name, oneLine(res.Evidence))
		if res.Verdict == Fail {
			for _, d := range res.Details {
				fmt.Fprintf(&b, "      %-*s    %s\n", width, "", oneLine(d))
			}
		}
	}
	fmt.Fprintf(&b, "\n%d checks: %d passed, %d failed, %d skipped in %.1fs\n",
		len(r.Results), r.Passed, r.Failed, r.Skipped, r.Duration.Seconds())
	if r.Failed > 0 {
		fmt.Fprintf(&b, "FAILED: %s\n", strings.Join(r.FailedChecks(), ", "))
	} else {
		b.WriteString("OK\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps a terminal line on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " | ", "\n", " | ", "\r", " ").Replace(s)
}
