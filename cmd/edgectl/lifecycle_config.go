package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent/docker"
	"github.com/outpost-edge/outpost/runtime/certs"
)

// Files edgectl setup writes in the data directory.
const (
	// setupFile is the device's configuration: what edgectl start runs, and
	// the agent's settings (edgeagent --config reads its "agent" object).
	setupFile = "edge.json"
	// connectionStringFile holds the edge device's connection string
	// (mode 0600): the only secret of the setup.
	connectionStringFile = "device-connection-string"
	// certsDir holds the edge CA and the edge hub's server certificate.
	certsDir = "certs"
	// agentLogFile is the agent's output under the process runtime's
	// watchdog.
	agentLogFile = "edgeagent.log"
)

// setupSchema is the schemaVersion of setupFile (edgeagent checks it too).
const setupSchema = "1"

// Defaults of the Docker runtime.
const (
	defaultAgentImage = "outpost/edgeagent:dev"
	// agentContainer is the agent's container: named after the module, as
	// every module is (edge-runtime-behaviour D.4).
	agentContainer = "edgeAgent"
)

// edgeConfig is setupFile: written by edgectl setup, read by start, stop,
// restart, status, uninstall and install-service, and by edgeagent --config
// (its Agent member only). Paths are absolute.
type edgeConfig struct {
	SchemaVersion string `json:"schemaVersion"`
	// Agent are edgeagent's settings by flag name.
	Agent agentSettings `json:"agent"`
	// Docker is how edgectl start runs the agent with the Docker runtime.
	Docker *dockerSettings `json:"docker,omitempty"`
	// Process is how edgectl start runs the agent with the process runtime.
	Process *processSettings `json:"process,omitempty"`
}

// agentSettings are edgeagent flags: the JSON keys are the flag names.
// Empty values are left out, so the agent's defaults apply.
type agentSettings struct {
	ConnectionStringFile string `json:"connection-string-file"`
	DataDir              string `json:"data-dir"`
	Runtime              string `json:"runtime"`
	GatewayHostName      string `json:"gateway-hostname"`
	ModuleCAFile         string `json:"module-ca-file,omitempty"`
	CAFile               string `json:"ca-file,omitempty"`
	ServiceURL           string `json:"service-url,omitempty"`
	MQTTPort             int    `json:"mqtt-port,omitempty"`
	ImageDir             string `json:"image-dir,omitempty"`
	// Network is the modules' network (Docker runtime): the agent puts the
	// modules on it, start creates it, uninstall removes it.
	Network string `json:"network,omitempty"`
	// RequireDigest refuses images not pinned by digest (Docker runtime).
	RequireDigest   bool   `json:"require-digest,omitempty"`
	ParentHostName  string `json:"parent-hostname,omitempty"`
	ReconcilePeriod string `json:"reconcile-period,omitempty"`
	LogLevel        string `json:"log-level,omitempty"`
	// CertsDir holds the edge CA and the edge hub's server certificate;
	// the agent renews them, with these lifetimes (durations as Go writes
	// them, "8760h0m0s").
	CertsDir           string `json:"certs-dir,omitempty"`
	CertCALifetime     string `json:"cert-ca-lifetime,omitempty"`
	CertServerLifetime string `json:"cert-server-lifetime,omitempty"`
	CertRenewBefore    string `json:"cert-renew-before,omitempty"`
}

// dockerSettings are the agent container's.
type dockerSettings struct {
	AgentImage string `json:"agentImage"`
	// Network is where setups before agent.network kept the modules'
	// network; it is read, never written (network says which wins).
	Network string `json:"network,omitempty"`
	// AgentNetwork is the network of the agent's own container.
	AgentNetwork string `json:"agentNetwork"`
}

// processSettings are the watchdog's.
type processSettings struct {
	// AgentBinary is the edgeagent executable; empty: the one next to
	// edgectl, else on PATH.
	AgentBinary string `json:"agentBinary,omitempty"`
}

// certOptions are the certs.Options of the device's certificates.
func (c edgeConfig) certOptions() (certs.Options, error) {
	o := certs.Options{Dir: c.Agent.CertsDir, Names: certs.Names(c.Agent.GatewayHostName)}
	for _, d := range []struct {
		name, text string
		v          *time.Duration
	}{
		{"cert-ca-lifetime", c.Agent.CertCALifetime, &o.CALifetime},
		{"cert-server-lifetime", c.Agent.CertServerLifetime, &o.ServerLifetime},
		{"cert-renew-before", c.Agent.CertRenewBefore, &o.RenewBefore},
	} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil || v <= 0 {
			return o, fmt.Errorf("agent.%s %q: want a positive duration", d.name, d.text)
		}
		*d.v = v
	}
	return o, nil
}

// renewBefore is the configured renewal margin, for edgectl check's
// warnings; certs' default when not set.
func (c edgeConfig) renewBefore() time.Duration {
	if d, err := time.ParseDuration(c.Agent.CertRenewBefore); err == nil && d > 0 {
		return d
	}
	return certs.DefaultRenewBefore
}

// agentLog is the agent's log file under the watchdog.
func (c edgeConfig) agentLog() string { return filepath.Join(c.Agent.DataDir, agentLogFile) }

// validate says what is wrong with a setup file someone may have edited.
func (c edgeConfig) validate() error {
	switch {
	case c.SchemaVersion != setupSchema:
		return fmt.Errorf("schemaVersion %q: want %q", c.SchemaVersion, setupSchema)
	case c.Agent.DataDir == "":
		return errors.New("agent.data-dir is empty")
	case c.Agent.ConnectionStringFile == "":
		return errors.New("agent.connection-string-file is empty")
	case c.Agent.Runtime != runtimeProcess && c.Agent.Runtime != runtimeDocker:
		return fmt.Errorf("agent.runtime %q: want %s or %s", c.Agent.Runtime, runtimeProcess, runtimeDocker)
	case c.Agent.Runtime == runtimeDocker && (c.Docker == nil || c.Docker.AgentImage == ""):
		return errors.New("docker.agentImage is empty")
	case c.Agent.CertsDir == "":
		return errors.New("agent.certs-dir is empty")
	case c.Docker != nil && c.Docker.Network != "" && c.Agent.Network != "" && c.Docker.Network != c.Agent.Network:
		return fmt.Errorf("agent.network %q and docker.network %q differ: keep agent.network only (the agent reads it)", c.Agent.Network, c.Docker.Network)
	case c.Agent.RequireDigest && c.Agent.Runtime != runtimeDocker:
		return fmt.Errorf("agent.require-digest applies to the docker runtime only, not to %s", c.Agent.Runtime)
	}
	_, err := c.certOptions()
	return err
}

// Runtimes.
const (
	runtimeProcess = "process"
	runtimeDocker  = "docker"
)

// network returns the modules' network (Docker runtime): agent.network,
// which the agent reads too, else docker.network of an older setup file
// (start then passes it to the agent), else the default.
func (c edgeConfig) network() string {
	switch {
	case c.Agent.Network != "":
		return c.Agent.Network
	case c.Docker != nil && c.Docker.Network != "":
		return c.Docker.Network
	}
	return docker.DefaultNetwork
}

// migrated is c in the current form: a setup file from before
// agent.network kept the modules' network as docker.network, which the
// agent does not read. Setup compares and writes this form, so that running
// it again with the same flags changes nothing but the file's layout.
func (c edgeConfig) migrated() edgeConfig {
	if c.Docker != nil && c.Docker.Network != "" {
		d := *c.Docker
		if c.Agent.Network == "" {
			c.Agent.Network = d.Network
		}
		d.Network = ""
		c.Docker = &d
	}
	return c
}

// readSetup reads setupFile from dataDir; errNotSetUp when there is none.
func readSetup(dataDir string) (edgeConfig, error) {
	var c edgeConfig
	path := filepath.Join(dataDir, setupFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, fmt.Errorf("%w: no %s in %s: run edgectl --data-dir %s setup --connection-string \"<edge device connection string>\"", errNotSetUp, setupFile, dataDir, dataDir)
	}
	if err != nil {
		return c, err
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&c); err != nil {
		return c, fmt.Errorf("%s: not a setup file: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// writeSetup saves c as setupFile (atomically, mode 0600).
func writeSetup(c edgeConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.Agent.DataDir, setupFile), append(b, '\n'), 0o600)
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed, with mode perm whatever the umask.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // nothing left after the rename
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// change is one difference between two setups.
type change struct {
	Setting string `json:"setting"`
	From    string `json:"from"`
	To      string `json:"to"`
}

func (c change) String() string {
	return fmt.Sprintf("%s: %s -> %s", c.Setting, orNone(c.From), orNone(c.To))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// diffSetup lists the settings that differ between old and new, by their
// JSON path ("agent.runtime"), sorted. It is pure.
func diffSetup(old, new edgeConfig) []change {
	a, b := flatten(old), flatten(new)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []change
	for k := range keys {
		if a[k] != b[k] {
			out = append(out, change{Setting: k, From: a[k], To: b[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Setting < out[j].Setting })
	return out
}

// flatten maps every leaf of c's JSON to its dotted path.
func flatten(c edgeConfig) map[string]string {
	b, _ := json.Marshal(c) // cannot fail: strings and numbers
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&v)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(strings.TrimPrefix(prefix+"."+k, "."), x)
			}
		case nil:
		default:
			out[prefix] = fmt.Sprint(v)
		}
	}
	walk("", v)
	return out
}
