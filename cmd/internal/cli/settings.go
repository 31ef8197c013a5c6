package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
)

// Source is the layer a setting's value came from, from the lowest precedence to the
// highest.
type Source int

// Sources, lowest precedence first.
const (
	SourceDefault     Source = iota // the flag's default
	SourceFile                      // a configuration file
	SourceEnvironment               // an environment variable: the binary's own or a fallback
	SourceCommandLine               // the command line
)

// Origin says where a setting's value came from.
type Origin struct {
	Source Source
	// Name is the environment variable (SourceEnvironment) or the file (SourceFile).
	Name string
	// Line is the key's line in the file; 0 when unknown.
	Line int
}

// String describes the origin for people: "default", "command line", "environment variable
// EDGEHUB_DATA_DIR", "file /etc/outpost/edgehub.toml line 4".
func (o Origin) String() string {
	switch o.Source {
	case SourceCommandLine:
		return "command line"
	case SourceEnvironment:
		return "environment variable " + o.Name
	case SourceFile:
		if o.Line > 0 {
			return fmt.Sprintf("file %s line %d", o.Name, o.Line)
		}
		return "file " + o.Name
	}
	return "default"
}

// Fallback is an environment variable that sets a flag when neither the command line nor
// the binary's own variable (Options.Prefix) does: edgehub reads the variables Azure's edge
// agent injects into edgeHub this way (IOTEDGE_DEVICEID for --edge-device-id, ...).
type Fallback struct {
	// Flag is the flag's name; Env the variable.
	Flag, Env string
	// Value turns the variable's value into the flag's; nil takes it as it is.
	Value func(string) (string, error)
}

// Options say where a binary's settings come from besides its command line.
type Options struct {
	// Prefix starts the environment variable of every flag (EnvName); "" reads none.
	Prefix string
	// Getenv reads the environment: os.Getenv in main, a map in tests; nil reads nothing.
	Getenv func(string) string
	// FileFlag is the flag that names the TOML configuration file ("config-file"); "" for
	// none. The file cannot set it.
	FileFlag string
	// Fallbacks are read below the Prefix variables, in order; the first one set wins.
	Fallbacks []Fallback
	// CommandLineOnly flags are read from the command line only (--print-config).
	CommandLineOnly []string
	// NotInFile flags cannot be set in the configuration file (besides FileFlag and
	// CommandLineOnly): values that change at every start, such as edgeagent's
	// --runtime-start-time.
	NotInFile []string
}

// Settings fills a FlagSet from its layers, highest precedence first: the command line
// (Parse), the environment (ApplyEnvironment), then files (Fill, ApplyFile). Each layer sets
// only the flags that no higher layer set, so the order of the calls is the precedence. It
// remembers where every value came from (Origin) to explain errors (Annotate) and show the
// effective configuration (WriteTOML).
type Settings struct {
	fs      *flag.FlagSet
	o       Options
	origins map[string]Origin
	file    string // the configuration file read, "" when none
}

// NewSettings returns the Settings of fs, which must hold the defaults only (nothing parsed
// or set yet).
func NewSettings(fs *flag.FlagSet, o Options) *Settings {
	return &Settings{fs: fs, o: o, origins: make(map[string]Origin)}
}

// Load runs the usual layers: the command line in args, the environment, then the
// configuration file named by Options.FileFlag. It returns flag.ErrHelp when help was asked
// for (the FlagSet printed the usage).
func Load(fs *flag.FlagSet, args []string, o Options) (*Settings, error) {
	s := NewSettings(fs, o)
	if err := s.Parse(args); err != nil {
		return nil, err
	}
	if err := s.ApplyEnvironment(); err != nil {
		return nil, err
	}
	if err := s.ApplyFile(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse parses the command line. Call it first: every flag set afterwards is taken to come
// from the command line.
func (s *Settings) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	s.fs.Visit(func(f *flag.Flag) { s.origins[f.Name] = Origin{Source: SourceCommandLine} })
	return nil
}

// ApplyEnvironment sets the flags the command line left alone from their environment
// variables (EnvName), then from the fallbacks. Empty variables count as unset. It stops at
// the first value a flag rejects, with an error naming the variable and the value.
func (s *Settings) ApplyEnvironment() error {
	if s.o.Getenv == nil {
		return nil
	}
	var envErr error
	if s.o.Prefix != "" {
		// VisitAll cannot stop early: once a value is rejected, the rest are left alone.
		s.fs.VisitAll(func(f *flag.Flag) {
			if envErr != nil || s.IsSet(f.Name) || slices.Contains(s.o.CommandLineOnly, f.Name) {
				return
			}
			name := EnvName(s.o.Prefix, f.Name)
			if v := s.o.Getenv(name); v != "" {
				if err := s.fs.Set(f.Name, v); err != nil {
					envErr = fmt.Errorf("environment variable %s=%q: %w", name, v, err)
					return
				}
				s.origins[f.Name] = Origin{Source: SourceEnvironment, Name: name}
			}
		})
	}
	if envErr != nil {
		return envErr
	}
	for _, fb := range s.o.Fallbacks {
		v := s.o.Getenv(fb.Env)
		if v == "" || s.IsSet(fb.Flag) {
			continue
		}
		if s.fs.Lookup(fb.Flag) == nil {
			return fmt.Errorf("environment variable %s: no flag --%s", fb.Env, fb.Flag) // a programming error
		}
		value := v
		if fb.Value != nil {
			var err error
			if value, err = fb.Value(v); err != nil {
				return fmt.Errorf("environment variable %s=%q (for --%s): %w", fb.Env, v, fb.Flag, err)
			}
		}
		if err := s.fs.Set(fb.Flag, value); err != nil {
			return fmt.Errorf("environment variable %s=%q (for --%s): %w", fb.Env, v, fb.Flag, err)
		}
		s.origins[fb.Flag] = Origin{Source: SourceEnvironment, Name: fb.Env}
	}
	return nil
}

// Fill sets flag name to value, from origin, unless a higher layer set it already; it
// reports whether it did. It is the way to add a layer of one's own between the others
// (edgeagent's edge.json).
func (s *Settings) Fill(name, value string, origin Origin) (bool, error) {
	if s.IsSet(name) {
		return false, nil
	}
	if err := s.fs.Set(name, value); err != nil {
		return false, err
	}
	s.origins[name] = origin
	return true, nil
}

// IsSet reports whether a layer set flag name.
func (s *Settings) IsSet(name string) bool {
	_, ok := s.origins[name]
	return ok
}

// Origin returns where flag name's value came from.
func (s *Settings) Origin(name string) Origin {
	return s.origins[name] // the zero Origin is SourceDefault
}

// File returns the configuration file that was read, "" when none.
func (s *Settings) File() string { return s.file }

// Annotate adds to err, which a binary's validation returned about its settings, where the
// values of the flags it names ("--mqtt-port") came from when that was not the command
// line, so that a bad value in a file or a variable can be found:
//
//	--mqtt-port 0: want 1..65535 (--mqtt-port from file /etc/outpost/edgeagent.toml line 7)
func (s *Settings) Annotate(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	var notes []string
	seen := make(map[string]bool)
	for rest := msg; ; {
		i := strings.Index(rest, "--")
		if i < 0 {
			break
		}
		rest = rest[i+2:]
		end := 0
		for end < len(rest) && isFlagNameByte(rest[end]) {
			end++
		}
		name := rest[:end]
		rest = rest[end:]
		if name == "" || seen[name] || s.fs.Lookup(name) == nil {
			continue
		}
		seen[name] = true
		if o := s.Origin(name); o.Source == SourceEnvironment || o.Source == SourceFile {
			notes = append(notes, fmt.Sprintf("--%s from %s", name, o))
		}
	}
	if len(notes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(notes, "; "))
}

func isFlagNameByte(b byte) bool {
	return b == '-' || b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// fileSettable reports whether a configuration file may set flag name.
func (s *Settings) fileSettable(name string) bool {
	return name != s.o.FileFlag && !slices.Contains(s.o.CommandLineOnly, name) && !slices.Contains(s.o.NotInFile, name)
}
