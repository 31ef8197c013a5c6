package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxFileBytes bounds a configuration file: it holds a few dozen settings.
const MaxFileBytes = 1 << 20

// ApplyFile sets the flags that no higher layer set from the TOML configuration file named
// by Options.FileFlag (nothing when that flag is empty). Every key is checked, also those a
// higher layer overrides: an unknown key, a value of the wrong type or a value the flag
// rejects is an error naming the file, the key's line and the key.
//
// The file's keys are the flag names at the top level, with TOML's types: strings, integers,
// floats and booleans as the flags take them, durations as strings ("30s"), repeatable flags
// as arrays of strings. Tables are not settings: edgehub's log level is log-level = "debug",
// not [log] level = "debug".
func (s *Settings) ApplyFile() error {
	if s.o.FileFlag == "" {
		return nil
	}
	f := s.fs.Lookup(s.o.FileFlag)
	if f == nil {
		return fmt.Errorf("no flag --%s for the configuration file", s.o.FileFlag) // a programming error
	}
	if f.Value.String() == "" {
		return nil
	}
	return s.applyFile(f.Value.String())
}

// applyFile is ApplyFile for the file at path.
func (s *Settings) applyFile(path string) error {
	data, err := readFile(path)
	if err != nil {
		return fmt.Errorf("configuration file: %w", err)
	}
	s.file = path
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("configuration file %s line %d: not valid TOML: %s", path, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("configuration file %s: not valid TOML: %w", path, err)
	}
	done := make(map[string]bool)
	for _, key := range md.Keys() { // in the file's order: the first problem is the one reported
		name := key[0] // a longer key is inside a table, which is reported by its name
		if done[name] {
			continue
		}
		done[name] = true
		origin := Origin{Source: SourceFile, Name: path, Line: keyLine(data, name)}
		if err := s.applyKey(name, doc[name], origin); err != nil {
			where := "configuration file " + path
			if origin.Line > 0 {
				where += " line " + strconv.Itoa(origin.Line)
			}
			return fmt.Errorf("%s: %s: %w", where, name, err)
		}
	}
	return nil
}

// readFile reads at most MaxFileBytes of the file at path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrFileTooLarge, MaxFileBytes)
	}
	return data, nil
}

// applyKey checks the file's value of flag name and sets the flag unless a higher layer did.
func (s *Settings) applyKey(name string, value any, origin Origin) error {
	f := s.fs.Lookup(name)
	if f == nil {
		return s.unknownKey(name)
	}
	if !s.fileSettable(name) {
		return ErrNotInFile
	}
	k := kindOf(f)
	texts, err := k.texts(value)
	if err != nil {
		return err
	}
	// Checked also when a higher layer overrides the file, so that a mistake shows now
	// rather than the day that layer goes away.
	for _, t := range texts {
		if err := k.check(t); err != nil {
			return fmt.Errorf("invalid value %q: %w", t, err)
		}
	}
	if s.IsSet(name) {
		return nil
	}
	for _, t := range texts {
		if err := s.fs.Set(name, t); err != nil {
			return fmt.Errorf("invalid value %q: %w", t, err)
		}
	}
	s.origins[name] = origin
	return nil
}

// unknownKey is the error for a key that names no flag, with a suggestion when the key
// looks like one spelt another way (data_dir, DATA-DIR, EDGEHUB_DATA_DIR).
func (s *Settings) unknownKey(name string) error {
	norm := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
	if s.o.Prefix != "" {
		norm = strings.TrimPrefix(norm, strings.ToLower(s.o.Prefix)+"-")
	}
	if f := s.fs.Lookup(norm); f != nil && s.fileSettable(norm) {
		return fmt.Errorf("%w (the keys are flag names: did you mean %s?)", ErrUnknownKey, norm)
	}
	return fmt.Errorf("%w (the keys are the flag names that -h lists)", ErrUnknownKey)
}

// kind is how a flag's value is written in TOML.
type kind int

const (
	kindString   kind = iota // a TOML string, as the flag takes it
	kindBool                 // a boolean
	kindInt                  // an integer within Go's int
	kindInt64                // an integer
	kindUint                 // a non-negative integer within Go's uint
	kindUint64               // a non-negative integer
	kindFloat                // a float or an integer
	kindDuration             // a string time.ParseDuration reads
	kindList                 // an array of strings (List)
)

// kindOf tells the kind of f from the value its flag.Getter returns; flags without one
// (flag.Func, custom values) take a string.
func kindOf(f *flag.Flag) kind {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return kindBool
		}
		return kindString
	}
	switch g.Get().(type) {
	case bool:
		return kindBool
	case int:
		return kindInt
	case int64:
		return kindInt64
	case uint:
		return kindUint
	case uint64:
		return kindUint64
	case float64:
		return kindFloat
	case time.Duration:
		return kindDuration
	case []string:
		return kindList
	}
	return kindString
}

// texts turns a TOML value into the texts to Set the flag with (several for a list), or
// returns ErrWrongType.
func (k kind) texts(v any) ([]string, error) {
	switch k {
	case kindBool:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, wrongType("a boolean (true or false)", v)
	case kindInt, kindInt64, kindUint, kindUint64:
		if i, ok := v.(int64); ok {
			return []string{strconv.FormatInt(i, 10)}, nil
		}
		return nil, wrongType("an integer", v)
	case kindFloat:
		switch n := v.(type) {
		case float64:
			return []string{strconv.FormatFloat(n, 'g', -1, 64)}, nil
		case int64:
			return []string{strconv.FormatInt(n, 10)}, nil
		}
		return nil, wrongType("a number", v)
	case kindDuration:
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		return nil, wrongType(`a duration in a string, such as "30s" or "1h30m"`, v)
	case kindList:
		arr, ok := v.([]any)
		if !ok {
			return nil, wrongType(`an array of strings, such as ["a", "b"]`, v)
		}
		out := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d: %w", i, wrongType("a string", e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	return nil, wrongType("a string", v)
}

// check parses t as a flag of kind k would, without setting anything, for an error that
// says more than the flag package's "parse error". Strings are not checked: only their flag
// knows what it accepts.
func (k kind) check(t string) error {
	var err error
	switch k {
	case kindBool:
		_, err = strconv.ParseBool(t)
	case kindInt:
		_, err = strconv.ParseInt(t, 0, strconv.IntSize)
	case kindInt64:
		_, err = strconv.ParseInt(t, 0, 64)
	case kindUint:
		_, err = strconv.ParseUint(t, 0, strconv.IntSize)
	case kindUint64:
		_, err = strconv.ParseUint(t, 0, 64)
	case kindFloat:
		_, err = strconv.ParseFloat(t, 64)
	case kindDuration:
		_, err = time.ParseDuration(t)
	}
	return err
}

// wrongType is ErrWrongType with what was wanted and what the file has.
func wrongType(want string, got any) error {
	return fmt.Errorf("%w: want %s, not %s", ErrWrongType, want, describe(got))
}

// describe names a TOML value's type (and shows short scalars).
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			return "a string"
		}
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the float %g", v)
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table (settings are top-level keys named after the flags)"
	case time.Time: // also TOML's local dates and times
		return "a date or time"
	}
	return fmt.Sprintf("a %T", v)
}

// probe fails whenever the TOML decoder gives it a value, so that the decoder's error
// tells the line of the key it sits under (keyLine).
type probe struct{}

var errProbe = errors.New("probe")

// UnmarshalTOML implements toml.Unmarshaler.
func (probe) UnmarshalTOML(any) error { return errProbe }

// keyLine returns the line of top-level key name in the TOML document data, 0 when it
// cannot tell. The decoder keeps key positions to itself but puts them in its errors, so
// keyLine decodes into a struct whose only field, under name, always fails.
func keyLine(data []byte, name string) int {
	if name == "" || strings.ContainsAny(name, "\",`\\") {
		return 0 // cannot be written in a struct tag
	}
	typ := reflect.StructOf([]reflect.StructField{{
		Name: "V", Type: reflect.TypeFor[probe](), Tag: reflect.StructTag(`toml:"` + name + `"`),
	}})
	_, err := toml.Decode(string(data), reflect.New(typ).Interface())
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.Message == errProbe.Error() { // ParseError does not unwrap
		return pe.Position.Line
	}
	return 0
}
