package main

import (
	"fmt"
	"io"
	"strings"
)

// Markers of edgectl check's text output, as iotedge check prints them.
const (
	markOK      = "√"
	markWarning = "‼"
	markError   = "×"
	markSkipped = "-"
)

// writeCheckText prints the report as iotedge check does: sections, one
// line per check, the reason and fix of warnings and errors indented below
// (of every check with verbose), then the summary lines.
func writeCheckText(w io.Writer, rep checkReport, verbose bool) {
	section := ""
	for _, r := range rep.Checks {
		if r.Result == resultSkipped && !verbose {
			continue
		}
		if r.Section != section {
			if section != "" {
				fmt.Fprintln(w)
			}
			section = r.Section
			fmt.Fprintln(w, section)
			fmt.Fprintln(w, strings.Repeat("-", len(section)))
		}
		switch r.Result {
		case resultOK:
			fmt.Fprintf(w, "%s %s - OK\n", markOK, r.Description)
		case resultWarning:
			fmt.Fprintf(w, "%s %s - Warning\n", markWarning, r.Description)
		case resultError:
			fmt.Fprintf(w, "%s %s - Error\n", markError, r.Description)
		default:
			fmt.Fprintf(w, "%s %s - Skipped\n", markSkipped, r.Description)
		}
		if r.Result == resultWarning || r.Result == resultError || verbose {
			writeIndented(w, r.Reason, "")
			writeIndented(w, r.Fix, "Fix: ")
		}
	}
	fmt.Fprintln(w)
	s := rep.Summary
	more := ""
	if !verbose {
		more = " Re-run with --verbose for more details."
	}
	fmt.Fprintf(w, "%d check(s) succeeded.\n", s.OK)
	if s.Warnings > 0 {
		fmt.Fprintf(w, "%d check(s) raised warnings.\n", s.Warnings)
	}
	if s.Errors > 0 {
		fmt.Fprintf(w, "%d check(s) raised errors.\n", s.Errors)
	}
	if s.Skipped > 0 {
		fmt.Fprintf(w, "%d check(s) were skipped due to errors or warnings from other checks, or because they do not apply.%s\n", s.Skipped, more)
	}
}

// writeIndented prints text indented by four spaces, the first line after
// prefix.
func writeIndented(w io.Writer, text, prefix string) {
	if text == "" {
		return
	}
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			line = prefix + line
		} else if prefix != "" {
			line = strings.Repeat(" ", len(prefix)) + line
		}
		fmt.Fprintf(w, "    %s\n", line)
	}
}
