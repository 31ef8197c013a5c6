package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// CheckSample reports every way the sample configuration file at path fails to document
// the flags of fs: a setting a file may hold that is missing from it, or a value other than
// the flag's default. fs must hold the defaults (nothing parsed or set). The binaries' tests
// run it on their sample in docs/config, so the documented defaults stay true.
func CheckSample(fs *flag.FlagSet, o Options, path string) error {
	s := NewSettings(fs, o)
	if err := s.applyFile(path); err != nil {
		return err
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if !s.fileSettable(f.Name) {
			return
		}
		origin := s.Origin(f.Name)
		switch {
		case origin.Source != SourceFile:
			errs = append(errs, fmt.Errorf("%s: setting %s is missing (its default: %s)", path, f.Name, defaultTOML(f)))
		case f.Value.String() != f.DefValue:
			errs = append(errs, fmt.Errorf("%s: %s = %s, but the default is %s", origin, f.Name, tomlValue(f), defaultTOML(f)))
		}
	})
	return errors.Join(errs...)
}

// defaultTOML writes f's default as a TOML value.
func defaultTOML(f *flag.Flag) string {
	switch kindOf(f) {
	case kindBool, kindInt, kindInt64, kindUint, kindUint64, kindFloat:
		return f.DefValue
	case kindList:
		var items []string
		if f.DefValue != "" {
			items = strings.Split(f.DefValue, ",")
		}
		return tomlArray(items)
	}
	return tomlString(f.DefValue)
}
