package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// WriteTOML writes the effective configuration as a TOML configuration file: every setting
// a file may hold, in name order, with its value and, in a comment, where the value came
// from. Given back with the file flag, it yields the same configuration. Settings a file
// cannot hold follow as comments. The flags hold no secrets (keys are in files the flags
// name), so everything is shown.
func (s *Settings) WriteTOML(w io.Writer, title string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n", title)
	fmt.Fprintf(bw, "# The effective configuration: each setting, its value and where the value came from.\n")
	if s.o.FileFlag != "" {
		if s.file != "" {
			fmt.Fprintf(bw, "# Configuration file: %s (--%s, from the %s).\n", s.file, s.o.FileFlag, s.Origin(s.o.FileFlag))
		} else {
			fmt.Fprintf(bw, "# No configuration file (--%s).\n", s.o.FileFlag)
		}
	}
	fmt.Fprintln(bw)
	var others []*flag.Flag
	s.fs.VisitAll(func(f *flag.Flag) {
		switch {
		case f.Name == s.o.FileFlag || slices.Contains(s.o.CommandLineOnly, f.Name):
		case !s.fileSettable(f.Name):
			others = append(others, f)
		default:
			fmt.Fprintf(bw, "%s = %s  # %s\n", f.Name, tomlValue(f), s.Origin(f.Name))
		}
	})
	if len(others) > 0 {
		fmt.Fprintf(bw, "\n# Not settable in a configuration file:\n")
		for _, f := range others {
			fmt.Fprintf(bw, "# %s = %s  # %s\n", f.Name, tomlValue(f), s.Origin(f.Name))
		}
	}
	return bw.Flush()
}

// tomlValue writes f's current value as a TOML value of its kind.
func tomlValue(f *flag.Flag) string {
	switch kindOf(f) {
	case kindBool, kindInt, kindInt64, kindUint, kindUint64, kindFloat:
		return f.Value.String()
	case kindList:
		items, _ := f.Value.(flag.Getter).Get().([]string)
		return tomlArray(items)
	}
	return tomlString(f.Value.String())
}

// tomlArray writes items as a TOML array of strings.
func tomlArray(items []string) string {
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = tomlString(it)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// tomlString quotes s as a TOML basic string. strconv.Quote will not do: TOML has no \x or
// \a escapes.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteString(`\uFFFD`) // invalid UTF-8 cannot be written in TOML
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
