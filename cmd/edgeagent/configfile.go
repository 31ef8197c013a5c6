package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
)

// maxConfigFileBytes bounds the configuration file.
const maxConfigFileBytes = 1 << 20

// configFile is the part of the configuration file edgeagent reads: the
// "agent" object, whose keys are flag names and values the flags' values.
// The file is edgectl setup's edge.json; its other members are edgectl's
// and ignored here.
type configFile struct {
	SchemaVersion string                     `json:"schemaVersion"`
	Agent         map[string]json.RawMessage `json:"agent"`
}

// configFileSchema is the schemaVersion edgeagent understands.
const configFileSchema = "1"

// applyConfigFile sets, from edge.json at path, every flag of fs that
// the command line and the environment left alone (s), before the TOML
// configuration file does: the precedence is command line, environment,
// edge.json, TOML file, defaults. edge.json is the device's own set-up,
// written by edgectl setup; the TOML file is a site's defaults. Errors name
// the file and the setting, never a value.
func applyConfigFile(s *cli.Settings, fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFileBytes+1))
	if err != nil {
		return fmt.Errorf("--config %q: %w", path, err)
	}
	if len(b) > maxConfigFileBytes {
		return fmt.Errorf("--config %q: larger than %d bytes", path, maxConfigFileBytes)
	}
	var cf configFile
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&cf); err != nil {
		return fmt.Errorf("--config %q: not a JSON configuration file: %w", path, err)
	}
	if cf.SchemaVersion != "" && cf.SchemaVersion != configFileSchema {
		return fmt.Errorf("--config %q: schemaVersion %q: want %q", path, cf.SchemaVersion, configFileSchema)
	}
	if cf.Agent == nil {
		return fmt.Errorf("--config %q: no \"agent\" object (flag names and their values)", path)
	}
	names := make([]string, 0, len(cf.Agent))
	for name := range cf.Agent {
		names = append(names, name)
	}
	sort.Strings(names) // errors in a stable order
	for _, name := range names {
		if name == configFlag || name == settingsFileFlag || name == printConfigFlag || fs.Lookup(name) == nil {
			return fmt.Errorf("--config %q: agent.%s is not a setting of edgeagent (the keys are its flag names, see edgeagent -h)", path, name)
		}
		v, err := flagValue(cf.Agent[name])
		if err != nil {
			return fmt.Errorf("--config %q: agent.%s: %w", path, name, err)
		}
		if _, err := s.Fill(name, v, cli.Origin{Source: cli.SourceFile, Name: path}); err != nil {
			return fmt.Errorf("--config %q: agent.%s: %w", path, name, err)
		}
	}
	return nil
}

// flagValue turns a JSON string, number or boolean into a flag's text.
func flagValue(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", errors.New("want a string, a number or a boolean")
}
