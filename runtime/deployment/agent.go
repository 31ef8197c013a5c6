package deployment

import (
	"math"
	"sort"
	"strings"
)

// AgentConfig is a validated $edgeAgent desired configuration with Azure's
// defaults applied.
type AgentConfig struct {
	SchemaVersion string
	Version       int64 // "$version" of the desired document (0 if absent)
	Runtime       Runtime
	SystemModules SystemModules
	Modules       map[string]Module // user modules keyed by module name
}

// Runtime is runtime.{type,settings}; Type is always "docker".
type Runtime struct {
	Type     string
	Settings RuntimeSettings
}

// RuntimeSettings is runtime.settings. MinDockerVersion and LoggingOptions are
// echoed in reported properties only; the Azure agent does not act on them.
type RuntimeSettings struct {
	MinDockerVersion, LoggingOptions string
	RegistryCredentials              map[string]RegistryCredential // keyed by the name in the manifest
}

// RegistryCredential is one runtime.settings.registryCredentials entry.
// Address is a bare host ("myacr.azurecr.io") matched against the image's
// registry.
type RegistryCredential struct{ Username, Password, Address string }

// SystemModules holds the two runtime modules.
type SystemModules struct{ EdgeAgent, EdgeHub Module }

// Module is one module's desired configuration with defaults applied.
type Module struct {
	Name            string
	Version         string            // free text; part of module identity
	Type            string            // "docker"
	Status          string            // StatusRunning or StatusStopped
	RestartPolicy   string            // RestartNever, RestartOnFailure, RestartOnUnhealthy or RestartAlways
	ImagePullPolicy string            // PullOnCreate or PullNever
	StartupOrder    uint32            // lower starts first; DefaultStartupOrder when absent
	Env             map[string]string // env values, stringified
	Image           string            // trimmed; ":latest" appended when there is no tag and no digest
	CreateOptions   string            // joined createOptions JSON object text; "{}" when empty or "null"
	ConfigurationID string            // configuration.id set by IoT Hub for at-scale deployments
}

// Module field values, and the startup order of modules that set none.
const (
	StatusRunning       = "running"
	StatusStopped       = "stopped"
	RestartNever        = "never"
	RestartOnFailure    = "on-failure"
	RestartOnUnhealthy  = "on-unhealthy"
	RestartAlways       = "always"
	PullOnCreate        = "on-create"
	PullNever           = "never"
	DefaultStartupOrder = math.MaxUint32
)

// Names of the system modules.
const (
	EdgeAgentName = "edgeAgent"
	EdgeHubName   = "edgeHub"
)

// twinMetadata are the keys IoT Hub adds to every desired document; they do
// not count as configuration (TwinCollection.Count skips them).
var twinMetadata = map[string]bool{"$version": true, "$metadata": true}

// ParseAgent parses and validates the $edgeAgent "properties.desired" object
// (which may carry "$version" and "$metadata") following A.2 and A.5:
//   - empty input, null, {} or only $version/$metadata: 417;
//   - schemaVersion missing, not a .NET version ("1" fails), major other
//     than 1 or above 1.1: 412, checked before the rest so that a document of
//     a future schema is reported as such;
//   - any format problem: 400 naming the field.
//
// Unknown fields are ignored.
func ParseAgent(desired []byte) (*AgentConfig, error) {
	c, err := parseAgent(desired)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseAgent(desired []byte) (*AgentConfig, *Error) {
	if strings.TrimSpace(string(desired)) == "" {
		return nil, emptyAgent()
	}
	root, err := parseDocument(desired)
	if err != nil {
		return nil, err
	}
	if root.kind == kindNull {
		return nil, emptyAgent()
	}
	if root.kind != kindObject {
		return nil, wrongType(nil, "a JSON object", root)
	}
	empty := true
	for _, m := range root.members {
		if !twinMetadata[m.key] {
			empty = false
			break
		}
	}
	if empty {
		return nil, emptyAgent()
	}
	c := &AgentConfig{}
	if c.Version, err = versionField(root); err != nil {
		return nil, err
	}
	if c.SchemaVersion, err = checkAgentSchema(root); err != nil {
		return nil, err
	}
	if c.Runtime, err = parseRuntime(root.get("runtime"), path{"runtime"}); err != nil {
		return nil, err
	}
	sp := path{"systemModules"}
	sys, err := requiredObject(root.get("systemModules"), sp)
	if err != nil {
		return nil, err
	}
	if c.SystemModules.EdgeAgent, err = parseModule(EdgeAgentName, sys.get(EdgeAgentName), sp.child(EdgeAgentName), roleAgent); err != nil {
		return nil, err
	}
	if c.SystemModules.EdgeHub, err = parseModule(EdgeHubName, sys.get(EdgeHubName), sp.child(EdgeHubName), roleHub); err != nil {
		return nil, err
	}
	if c.Modules, err = parseModules(root.get("modules"), path{"modules"}); err != nil {
		return nil, err
	}
	return c, nil
}

func emptyAgent() *Error {
	return &Error{Code: CodeEmpty, Reason: ErrEmpty.Error()}
}

func parseRuntime(v *value, p path) (Runtime, *Error) {
	rt := Runtime{}
	obj, err := requiredObject(v, p)
	if err != nil {
		return rt, err
	}
	tp := p.child("type")
	typ, err := requiredString(obj.get("type"), tp)
	if err != nil {
		return rt, err
	}
	if typ != "docker" {
		return rt, invalidf(tp, `must be "docker" (got %s)`, quoteValue(typ))
	}
	rt.Type = typ
	sp := p.child("settings")
	settings, err := objectAt(obj.get("settings"), sp)
	if err != nil || settings == nil {
		return rt, err
	}
	if rt.Settings.MinDockerVersion, _, err = stringAt(settings.get("minDockerVersion"), sp.child("minDockerVersion")); err != nil {
		return rt, err
	}
	if rt.Settings.LoggingOptions, _, err = stringAt(settings.get("loggingOptions"), sp.child("loggingOptions")); err != nil {
		return rt, err
	}
	rt.Settings.RegistryCredentials, err = parseCredentials(settings.get("registryCredentials"), sp.child("registryCredentials"))
	return rt, err
}

// parseCredentials validates registryCredentials. Reasons never quote the
// values: they may be secrets.
func parseCredentials(v *value, p path) (map[string]RegistryCredential, *Error) {
	obj, err := objectAt(v, p)
	if err != nil || obj == nil {
		return nil, err
	}
	out := make(map[string]RegistryCredential, len(obj.members))
	for _, m := range obj.members {
		cp := p.child(m.key)
		if m.key == "" || strings.ContainsAny(m.key, ".$# ") {
			return nil, invalidf(cp, `credential name must be non-empty and must not contain ".", "$", "#" or spaces`)
		}
		entry, err := requiredObject(m.val, cp)
		if err != nil {
			return nil, err
		}
		var rc RegistryCredential
		for _, f := range []struct {
			name string
			dst  *string
		}{{"username", &rc.Username}, {"password", &rc.Password}, {"address", &rc.Address}} {
			fv := entry.get(f.name)
			fp := cp.child(f.name)
			if fv.present() && fv.kind != kindString {
				return nil, wrongType(fp, "a string", fv)
			}
			if !fv.present() || strings.TrimSpace(fv.str) == "" {
				return nil, invalidf(fp, "required (username, password and address must all be set)")
			}
			*f.dst = fv.str
		}
		out[m.key] = rc
	}
	return out, nil
}

// Redacted returns a deep copy of c with registry passwords replaced by "***",
// for reported properties and logs.
func (c *AgentConfig) Redacted() *AgentConfig {
	if c == nil {
		return nil
	}
	r := *c
	if c.Runtime.Settings.RegistryCredentials != nil {
		r.Runtime.Settings.RegistryCredentials = make(map[string]RegistryCredential, len(c.Runtime.Settings.RegistryCredentials))
		for k, rc := range c.Runtime.Settings.RegistryCredentials {
			rc.Password = redactedPassword
			r.Runtime.Settings.RegistryCredentials[k] = rc
		}
	}
	r.SystemModules.EdgeAgent = c.SystemModules.EdgeAgent.clone()
	r.SystemModules.EdgeHub = c.SystemModules.EdgeHub.clone()
	if c.Modules != nil {
		r.Modules = make(map[string]Module, len(c.Modules))
		for k, m := range c.Modules {
			r.Modules[k] = m.clone()
		}
	}
	return &r
}

const redactedPassword = "***"

// RedactText replaces every registry password of c found in s with "***". Use
// it on error text from outside this package (a failed pull, a runtime
// error) before it goes into lastDesiredStatus.description or a log.
func (c *AgentConfig) RedactText(s string) string {
	if c == nil {
		return s
	}
	for _, rc := range c.Runtime.Settings.RegistryCredentials {
		if rc.Password != "" {
			s = strings.ReplaceAll(s, rc.Password, redactedPassword)
		}
	}
	return s
}

// ModulesInStartOrder returns the user modules sorted by StartupOrder, then by
// name so that equal orders give a stable result.
func (c *AgentConfig) ModulesInStartOrder() []Module {
	if c == nil {
		return nil
	}
	out := make([]Module, 0, len(c.Modules))
	for _, m := range c.Modules {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].StartupOrder != out[j].StartupOrder {
			return out[i].StartupOrder < out[j].StartupOrder
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (m Module) clone() Module {
	if m.Env != nil {
		env := make(map[string]string, len(m.Env))
		for k, v := range m.Env {
			env[k] = v
		}
		m.Env = env
	}
	return m
}
