package deployment

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

const testPassword = "s3cr3t-Passw0rd"

func baseAgent() map[string]any {
	return map[string]any{
		"schemaVersion": "1.1",
		"runtime": map[string]any{
			"type": "docker",
			"settings": map[string]any{
				"minDockerVersion": "v1.25",
				"loggingOptions":   "",
				"registryCredentials": map[string]any{
					"acr": map[string]any{"username": "user", "password": testPassword, "address": "x.azurecr.io"},
				},
			},
		},
		"systemModules": map[string]any{
			"edgeAgent": map[string]any{
				"type":     "docker",
				"settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-agent:1.5", "createOptions": ""},
			},
			"edgeHub": map[string]any{
				"type": "docker", "status": "running", "restartPolicy": "always", "startupOrder": 0,
				"settings": map[string]any{
					"image":         "mcr.microsoft.com/azureiotedge-hub:1.5",
					"createOptions": `{"HostConfig":{"PortBindings":{"443/tcp":[{"HostPort":"443"}],"5671/tcp":[{"HostPort":"5671"}],"8883/tcp":[{"HostPort":"8883"}]}}}`,
				},
			},
		},
		"modules": map[string]any{
			"tempSensor": map[string]any{
				"version": "1.0", "type": "docker", "status": "running", "restartPolicy": "always", "startupOrder": 1,
				"env":      map[string]any{"MessageCount": map[string]any{"value": "-1"}},
				"settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "createOptions": "{}"},
			},
		},
	}
}

func TestParseAgent_Valid(t *testing.T) {
	doc := baseAgent()
	doc["$version"] = 7
	doc["$metadata"] = map[string]any{"$lastUpdated": "2024-01-01T00:00:00Z"}
	c, err := ParseAgent(mustJSON(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	want := &AgentConfig{
		SchemaVersion: "1.1",
		Version:       7,
		Runtime: Runtime{Type: "docker", Settings: RuntimeSettings{
			MinDockerVersion:    "v1.25",
			RegistryCredentials: map[string]RegistryCredential{"acr": {Username: "user", Password: testPassword, Address: "x.azurecr.io"}},
		}},
		SystemModules: SystemModules{
			EdgeAgent: Module{Name: "edgeAgent", Type: "docker", Status: StatusRunning, RestartPolicy: RestartAlways,
				ImagePullPolicy: PullOnCreate, StartupOrder: 0, Image: "mcr.microsoft.com/azureiotedge-agent:1.5", CreateOptions: "{}"},
			EdgeHub: Module{Name: "edgeHub", Type: "docker", Status: StatusRunning, RestartPolicy: RestartAlways,
				ImagePullPolicy: PullOnCreate, StartupOrder: 0, Image: "mcr.microsoft.com/azureiotedge-hub:1.5",
				CreateOptions: `{"HostConfig":{"PortBindings":{"443/tcp":[{"HostPort":"443"}],"5671/tcp":[{"HostPort":"5671"}],"8883/tcp":[{"HostPort":"8883"}]}}}`},
		},
		Modules: map[string]Module{"tempSensor": {Name: "tempSensor", Version: "1.0", Type: "docker", Status: StatusRunning,
			RestartPolicy: RestartAlways, ImagePullPolicy: PullOnCreate, StartupOrder: 1, Env: map[string]string{"MessageCount": "-1"},
			Image: "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", CreateOptions: "{}"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
}

// TestParseAgent_Rules has one row per rule of A.2 and A.5.
func TestParseAgent_Rules(t *testing.T) {
	tests := []struct {
		name   string
		raw    string               // used instead of the base document when set
		mutate func(map[string]any) // applied to baseAgent()
		code   int
		field  string
		reason string // substring of the reason, optional
		check  func(*testing.T, *AgentConfig)
	}{
		// 417: no configuration.
		{name: "empty input", raw: " ", code: CodeEmpty},
		{name: "null", raw: "null", code: CodeEmpty},
		{name: "empty object", raw: "{}", code: CodeEmpty, reason: "Please set a deployment manifest"},
		{name: "only twin metadata", raw: `{"$version":4,"$metadata":{"$lastUpdated":"x"}}`, code: CodeEmpty},
		// 400 on the whole document.
		{name: "not JSON", raw: `{"schemaVersion":`, code: CodeInvalid, reason: "invalid JSON"},
		{name: "trailing data", raw: `{"a":1} {}`, code: CodeInvalid, reason: "invalid JSON"},
		{name: "array document", raw: `[]`, code: CodeInvalid, reason: "must be a JSON object (got array)"},
		{name: "too deep", raw: strings.Repeat("[", 600) + strings.Repeat("]", 600), code: CodeInvalid},
		{name: "$version not a number", mutate: func(d map[string]any) { d["$version"] = "7" }, code: CodeInvalid, field: "$version"},
		// 412: schemaVersion, checked before the format.
		{name: "schemaVersion missing", mutate: func(d map[string]any) { delete(d, "schemaVersion") }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion null", mutate: func(d map[string]any) { d["schemaVersion"] = nil }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion bare major", mutate: func(d map[string]any) { d["schemaVersion"] = "1" }, code: CodeSchemaVersion, field: "schemaVersion", reason: `(got "1")`},
		{name: "schemaVersion text", mutate: func(d map[string]any) { d["schemaVersion"] = "one" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion negative part", mutate: func(d map[string]any) { d["schemaVersion"] = "1.-1" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion five parts", mutate: func(d map[string]any) { d["schemaVersion"] = "1.0.0.0.0" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion number", mutate: func(d map[string]any) { d["schemaVersion"] = 1.1 }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion major 2", mutate: func(d map[string]any) { d["schemaVersion"] = "2.0" }, code: CodeSchemaVersion, field: "schemaVersion", reason: "unsupported"},
		{name: "schemaVersion major 0", mutate: func(d map[string]any) { d["schemaVersion"] = "0.9" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion 1.2", mutate: func(d map[string]any) { d["schemaVersion"] = "1.2" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion 1.1.1", mutate: func(d map[string]any) { d["schemaVersion"] = "1.1.1" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion 1.1.0.0 is above 1.1.0", mutate: func(d map[string]any) { d["schemaVersion"] = "1.1.0.0" }, code: CodeSchemaVersion, field: "schemaVersion"},
		{name: "schemaVersion 1.1.0 accepted", mutate: func(d map[string]any) { d["schemaVersion"] = "1.1.0" }, code: CodeOK},
		{name: "schemaVersion 1.0 accepted", mutate: func(d map[string]any) { d["schemaVersion"] = "1.0" }, code: CodeOK},
		{name: "schemaVersion 1.0.5 accepted", mutate: func(d map[string]any) { d["schemaVersion"] = "1.0.5" }, code: CodeOK},
		{name: "schema checked before format", mutate: func(d map[string]any) { d["schemaVersion"] = "2.0"; d["runtime"] = "bad" }, code: CodeSchemaVersion, field: "schemaVersion"},
		// runtime.
		{name: "runtime missing", mutate: func(d map[string]any) { delete(d, "runtime") }, code: CodeInvalid, field: "runtime", reason: "required"},
		{name: "runtime not object", mutate: func(d map[string]any) { d["runtime"] = "docker" }, code: CodeInvalid, field: "runtime", reason: "must be an object (got string)"},
		{name: "runtime type missing", mutate: func(d map[string]any) { set(d, "runtime.type", del) }, code: CodeInvalid, field: "runtime.type"},
		{name: "runtime type not docker", mutate: func(d map[string]any) { set(d, "runtime.type", "rkt") }, code: CodeInvalid, field: "runtime.type", reason: `must be "docker" (got "rkt")`},
		{name: "runtime settings optional", mutate: func(d map[string]any) { set(d, "runtime.settings", del) }, code: CodeOK},
		{name: "minDockerVersion wrong type", mutate: func(d map[string]any) { set(d, "runtime.settings.minDockerVersion", 25) }, code: CodeInvalid, field: "runtime.settings.minDockerVersion"},
		{name: "loggingOptions wrong type", mutate: func(d map[string]any) { set(d, "runtime.settings.loggingOptions", map[string]any{}) }, code: CodeInvalid, field: "runtime.settings.loggingOptions"},
		// registryCredentials.
		{name: "credential username missing", mutate: func(d map[string]any) { set(d, "runtime.settings.registryCredentials.acr.username", del) }, code: CodeInvalid, field: "runtime.settings.registryCredentials.acr.username"},
		{name: "credential password blank", mutate: func(d map[string]any) { set(d, "runtime.settings.registryCredentials.acr.password", " ") }, code: CodeInvalid, field: "runtime.settings.registryCredentials.acr.password"},
		{name: "credential address missing", mutate: func(d map[string]any) { set(d, "runtime.settings.registryCredentials.acr.address", del) }, code: CodeInvalid, field: "runtime.settings.registryCredentials.acr.address"},
		{name: "credential password wrong type", mutate: func(d map[string]any) { set(d, "runtime.settings.registryCredentials.acr.password", 12345) }, code: CodeInvalid, field: "runtime.settings.registryCredentials.acr.password"},
		{name: "credential not object", mutate: func(d map[string]any) { set(d, "runtime.settings.registryCredentials.acr", "x") }, code: CodeInvalid, field: "runtime.settings.registryCredentials.acr"},
		{name: "credential name with dot", mutate: func(d map[string]any) {
			set(d, "runtime.settings.registryCredentials", map[string]any{"my.reg": map[string]any{"username": "u", "password": "p", "address": "a"}})
		}, code: CodeInvalid, field: `runtime.settings.registryCredentials["my.reg"]`},
		{name: "credential name with dollar", mutate: func(d map[string]any) {
			set(d, "runtime.settings.registryCredentials", map[string]any{"$reg": map[string]any{"username": "u", "password": "p", "address": "a"}})
		}, code: CodeInvalid, field: "runtime.settings.registryCredentials.$reg"},
		{name: "registryCredentials empty", mutate: func(d map[string]any) { set(d, "runtime.settings.registryCredentials", map[string]any{}) }, code: CodeOK},
		// systemModules.
		{name: "systemModules missing", mutate: func(d map[string]any) { delete(d, "systemModules") }, code: CodeInvalid, field: "systemModules"},
		{name: "edgeAgent missing", mutate: func(d map[string]any) { set(d, "systemModules.edgeAgent", del) }, code: CodeInvalid, field: "systemModules.edgeAgent"},
		{name: "edgeHub missing", mutate: func(d map[string]any) { set(d, "systemModules.edgeHub", del) }, code: CodeInvalid, field: "systemModules.edgeHub"},
		{name: "edgeAgent type missing", mutate: func(d map[string]any) { set(d, "systemModules.edgeAgent.type", del) }, code: CodeInvalid, field: "systemModules.edgeAgent.type"},
		{name: "type is case-sensitive", mutate: func(d map[string]any) { set(d, "systemModules.edgeAgent.type", "Docker") }, code: CodeInvalid, field: "systemModules.edgeAgent.type"},
		{name: "edgeAgent settings missing", mutate: func(d map[string]any) { set(d, "systemModules.edgeAgent.settings", del) }, code: CodeInvalid, field: "systemModules.edgeAgent.settings"},
		{name: "edgeAgent status, restartPolicy and startupOrder are forced", mutate: func(d map[string]any) {
			set(d, "systemModules.edgeAgent.status", "sometimes")
			set(d, "systemModules.edgeAgent.restartPolicy", "never")
			set(d, "systemModules.edgeAgent.startupOrder", 9)
		}, code: CodeOK, check: func(t *testing.T, c *AgentConfig) {
			a := c.SystemModules.EdgeAgent
			if a.Status != StatusRunning || a.RestartPolicy != RestartAlways || a.StartupOrder != 0 {
				t.Errorf("edgeAgent not forced: %+v", a)
			}
		}},
		{name: "edgeAgent imagePullPolicy honoured", mutate: func(d map[string]any) { set(d, "systemModules.edgeAgent.imagePullPolicy", "never") }, code: CodeOK,
			check: func(t *testing.T, c *AgentConfig) {
				if c.SystemModules.EdgeAgent.ImagePullPolicy != PullNever {
					t.Errorf("imagePullPolicy %q", c.SystemModules.EdgeAgent.ImagePullPolicy)
				}
			}},
		{name: "edgeHub status required", mutate: func(d map[string]any) { set(d, "systemModules.edgeHub.status", del) }, code: CodeInvalid, field: "systemModules.edgeHub.status"},
		{name: "edgeHub restartPolicy defaults to always", mutate: func(d map[string]any) {
			set(d, "systemModules.edgeHub.restartPolicy", del)
			set(d, "systemModules.edgeHub.startupOrder", del)
		}, code: CodeOK, check: func(t *testing.T, c *AgentConfig) {
			h := c.SystemModules.EdgeHub
			if h.RestartPolicy != RestartAlways || h.StartupOrder != DefaultStartupOrder {
				t.Errorf("edgeHub defaults: %+v", h)
			}
		}},
		// Module fields.
		{name: "module type missing", mutate: func(d map[string]any) { set(d, "modules.tempSensor.type", del) }, code: CodeInvalid, field: "modules.tempSensor.type"},
		{name: "module type not docker", mutate: func(d map[string]any) { set(d, "modules.tempSensor.type", "process") }, code: CodeInvalid, field: "modules.tempSensor.type"},
		{name: "module status missing", mutate: func(d map[string]any) { set(d, "modules.tempSensor.status", del) }, code: CodeInvalid, field: "modules.tempSensor.status"},
		{name: "module status bad enum", mutate: func(d map[string]any) { set(d, "modules.tempSensor.status", "paused") }, code: CodeInvalid, field: "modules.tempSensor.status"},
		{name: "module status wrong type", mutate: func(d map[string]any) { set(d, "modules.tempSensor.status", true) }, code: CodeInvalid, field: "modules.tempSensor.status", reason: "must be a string (got boolean)"},
		{name: "module status case-insensitive", mutate: func(d map[string]any) { set(d, "modules.tempSensor.status", "Stopped") }, code: CodeOK,
			check: func(t *testing.T, c *AgentConfig) {
				if s := c.Modules["tempSensor"].Status; s != StatusStopped {
					t.Errorf("status %q, want canonical %q", s, StatusStopped)
				}
			}},
		{name: "restartPolicy bad enum", mutate: func(d map[string]any) { set(d, "modules.tempSensor.restartPolicy", "sometimes") }, code: CodeInvalid, field: "modules.tempSensor.restartPolicy",
			reason: `must be one of never, on-failure, on-unhealthy, always (got "sometimes")`},
		{name: "restartPolicy null", mutate: func(d map[string]any) { set(d, "modules.tempSensor.restartPolicy", nil) }, code: CodeInvalid, field: "modules.tempSensor.restartPolicy", reason: "(got null)"},
		{name: "restartPolicy number", mutate: func(d map[string]any) { set(d, "modules.tempSensor.restartPolicy", 3) }, code: CodeInvalid, field: "modules.tempSensor.restartPolicy"},
		{name: "restartPolicy defaults to on-unhealthy", mutate: func(d map[string]any) { set(d, "modules.tempSensor.restartPolicy", del) }, code: CodeOK,
			check: func(t *testing.T, c *AgentConfig) {
				if p := c.Modules["tempSensor"].RestartPolicy; p != RestartOnUnhealthy {
					t.Errorf("restartPolicy %q", p)
				}
			}},
		{name: "imagePullPolicy bad enum", mutate: func(d map[string]any) { set(d, "modules.tempSensor.imagePullPolicy", "always") }, code: CodeInvalid, field: "modules.tempSensor.imagePullPolicy"},
		{name: "startupOrder negative", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", -1) }, code: CodeInvalid, field: "modules.tempSensor.startupOrder"},
		{name: "startupOrder above uint32", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", int64(math.MaxUint32)+1) }, code: CodeInvalid, field: "modules.tempSensor.startupOrder"},
		{name: "startupOrder fraction", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", 1.5) }, code: CodeInvalid, field: "modules.tempSensor.startupOrder"},
		{name: "startupOrder string", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", "1") }, code: CodeInvalid, field: "modules.tempSensor.startupOrder"},
		{name: "startupOrder null", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", nil) }, code: CodeInvalid, field: "modules.tempSensor.startupOrder"},
		{name: "startupOrder maximum", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", int64(math.MaxUint32)) }, code: CodeOK,
			check: func(t *testing.T, c *AgentConfig) {
				if o := c.Modules["tempSensor"].StartupOrder; o != math.MaxUint32 {
					t.Errorf("startupOrder %d", o)
				}
			}},
		{name: "startupOrder defaults to last", mutate: func(d map[string]any) { set(d, "modules.tempSensor.startupOrder", del) }, code: CodeOK,
			check: func(t *testing.T, c *AgentConfig) {
				if o := c.Modules["tempSensor"].StartupOrder; o != DefaultStartupOrder {
					t.Errorf("startupOrder %d", o)
				}
			}},
		{name: "version object", mutate: func(d map[string]any) { set(d, "modules.tempSensor.version", map[string]any{}) }, code: CodeInvalid, field: "modules.tempSensor.version"},
		{name: "settings missing", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings", del) }, code: CodeInvalid, field: "modules.tempSensor.settings"},
		{name: "settings not object", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings", "img") }, code: CodeInvalid, field: "modules.tempSensor.settings"},
		{name: "image missing", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings.image", del) }, code: CodeInvalid, field: "modules.tempSensor.settings.image"},
		{name: "image blank", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings.image", "  ") }, code: CodeInvalid, field: "modules.tempSensor.settings.image"},
		{name: "image bad format", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings.image", "a:b:c") }, code: CodeInvalid, field: "modules.tempSensor.settings.image"},
		{name: "image wrong type", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings.image", 5) }, code: CodeInvalid, field: "modules.tempSensor.settings.image"},
		{name: "createOptions not an object", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings.createOptions", "[1]") }, code: CodeInvalid, field: "modules.tempSensor.settings.createOptions"},
		{name: "createOptions broken JSON", mutate: func(d map[string]any) { set(d, "modules.tempSensor.settings.createOptions", `{"HostConfig":`) }, code: CodeInvalid, field: "modules.tempSensor.settings.createOptions"},
		{name: "createOptions chunk without base", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.settings.createOptions", del)
			set(d, "modules.tempSensor.settings.createOptions01", "{}")
		}, code: CodeInvalid, field: "modules.tempSensor.settings.createOptions01"},
		// env.
		{name: "env name with dot", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.env", map[string]any{"A.B": map[string]any{"value": "1"}})
		}, code: CodeInvalid, field: `modules.tempSensor.env["A.B"]`},
		{name: "env name with space", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.env", map[string]any{"A B": map[string]any{"value": "1"}})
		}, code: CodeInvalid, field: `modules.tempSensor.env["A B"]`},
		{name: "env name with dollar", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.env", map[string]any{"$A": map[string]any{"value": "1"}})
		}, code: CodeInvalid, field: "modules.tempSensor.env.$A"},
		{name: "env name with plus", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.env", map[string]any{"A+": map[string]any{"value": "1"}})
		}, code: CodeInvalid, field: "modules.tempSensor.env.A+"},
		{name: "env name with hash", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.env", map[string]any{"A#": map[string]any{"value": "1"}})
		}, code: CodeInvalid, field: "modules.tempSensor.env.A#"},
		{name: "env entry not object", mutate: func(d map[string]any) { set(d, "modules.tempSensor.env.X", "1") }, code: CodeInvalid, field: "modules.tempSensor.env.X"},
		{name: "env value missing", mutate: func(d map[string]any) { set(d, "modules.tempSensor.env.X", map[string]any{}) }, code: CodeInvalid, field: "modules.tempSensor.env.X.value"},
		{name: "env value object", mutate: func(d map[string]any) { set(d, "modules.tempSensor.env.X.value", map[string]any{}) }, code: CodeInvalid, field: "modules.tempSensor.env.X.value"},
		{name: "env value null", mutate: func(d map[string]any) { set(d, "modules.tempSensor.env.X.value", nil) }, code: CodeInvalid, field: "modules.tempSensor.env.X.value"},
		{name: "env values stringified", mutate: func(d map[string]any) {
			set(d, "modules.tempSensor.env", map[string]any{"N": map[string]any{"value": 42}, "F": map[string]any{"value": 1.5}, "B": map[string]any{"value": false}, "S": map[string]any{"value": "x"}})
		}, code: CodeOK, check: func(t *testing.T, c *AgentConfig) {
			want := map[string]string{"N": "42", "F": "1.5", "B": "false", "S": "x"}
			if got := c.Modules["tempSensor"].Env; !reflect.DeepEqual(got, want) {
				t.Errorf("env %v, want %v", got, want)
			}
		}},
		// Module names.
		{name: "module name with slash", mutate: func(d map[string]any) { moveModule(d, "bad/name") }, code: CodeInvalid, field: "modules.bad/name", reason: "module name may contain only"},
		{name: "module name non-ASCII", mutate: func(d map[string]any) { moveModule(d, "tëmp") }, code: CodeInvalid, field: "modules.tëmp"},
		{name: "module name too long", mutate: func(d map[string]any) { moveModule(d, strings.Repeat("m", 129)) }, code: CodeInvalid, field: "modules." + strings.Repeat("m", 129)},
		{name: "module name with all allowed punctuation", mutate: func(d map[string]any) { moveModule(d, "a-.+%_#*?!(),=@$'z") }, code: CodeOK},
		{name: "module name reserved", mutate: func(d map[string]any) { moveModule(d, "edgeHub") }, code: CodeInvalid, field: "modules.edgeHub", reason: "reserved"},
		{name: "module not object", mutate: func(d map[string]any) { set(d, "modules.tempSensor", nil) }, code: CodeInvalid, field: "modules.tempSensor"},
		{name: "modules null", mutate: func(d map[string]any) { d["modules"] = nil }, code: CodeOK},
		{name: "modules array", mutate: func(d map[string]any) { d["modules"] = []any{} }, code: CodeInvalid, field: "modules"},
		// Tolerance.
		{name: "unknown fields ignored", mutate: func(d map[string]any) {
			d["integrity"] = map[string]any{"header": []any{1}}
			set(d, "modules.tempSensor.foo", []any{"bar"})
			set(d, "modules.tempSensor.settings.digest", 1)
		}, code: CodeOK},
		{name: "configuration id kept", mutate: func(d map[string]any) { set(d, "modules.tempSensor.configuration.id", "deploy-1") }, code: CodeOK,
			check: func(t *testing.T, c *AgentConfig) {
				if id := c.Modules["tempSensor"].ConfigurationID; id != "deploy-1" {
					t.Errorf("configuration id %q", id)
				}
			}},
		{name: "property names match case-insensitively", mutate: func(d map[string]any) {
			m := d["modules"].(map[string]any)["tempSensor"].(map[string]any)
			m["Status"] = m["status"]
			delete(m, "status")
		}, code: CodeOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := []byte(tt.raw)
			if tt.raw == "" {
				doc := baseAgent()
				if tt.mutate != nil {
					tt.mutate(doc)
				}
				input = mustJSON(t, doc)
			}
			c, err := ParseAgent(input)
			if tt.code == CodeOK {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			e := wantError(t, err, tt.code, tt.field)
			if !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", e.Reason, tt.reason)
			}
			if strings.Contains(Description(err), testPassword) {
				t.Errorf("description leaks the registry password: %s", Description(err))
			}
		})
	}
}

// moveModule renames the tempSensor module.
func moveModule(d map[string]any, name string) {
	mods := d["modules"].(map[string]any)
	mods[name] = mods["tempSensor"]
	delete(mods, "tempSensor")
}

func TestParseAgent_ErrorTextNamesField(t *testing.T) {
	doc := baseAgent()
	set(doc, "modules.tempSensor.restartPolicy", "sometimes")
	_, err := ParseAgent(mustJSON(t, doc))
	want := `modules.tempSensor.restartPolicy: must be one of never, on-failure, on-unhealthy, always (got "sometimes")`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestParseAgent_DuplicateKeyLastWins(t *testing.T) {
	in := `{"schemaVersion":"1.1","runtime":{"type":"docker"},"systemModules":{
	"edgeAgent":{"type":"docker","settings":{"image":"agent:1"}},
	"edgeHub":{"type":"docker","status":"running","settings":{"image":"hub:1"}}},
	"modules":{"m":{"type":"docker","status":"running","status":"stopped","settings":{"image":"m"}}}}`
	c, err := ParseAgent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Modules["m"].Status; s != StatusStopped {
		t.Errorf("status %q, want the last duplicate %q", s, StatusStopped)
	}
}

func TestAgentConfig_Redacted(t *testing.T) {
	c, err := ParseAgent(mustJSON(t, baseAgent()))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if got := r.Runtime.Settings.RegistryCredentials["acr"].Password; got != "***" {
		t.Errorf("redacted password %q", got)
	}
	if got := c.Runtime.Settings.RegistryCredentials["acr"].Password; got != testPassword {
		t.Errorf("original changed: %q", got)
	}
	r.Modules["tempSensor"].Env["MessageCount"] = "changed"
	if c.Modules["tempSensor"].Env["MessageCount"] != "-1" {
		t.Error("Redacted shares the env map with the original")
	}
	if (*AgentConfig)(nil).Redacted() != nil {
		t.Error("nil receiver")
	}
	msg := c.RedactText("pull failed: login user:" + testPassword + "@x.azurecr.io")
	if strings.Contains(msg, testPassword) || !strings.Contains(msg, "***") {
		t.Errorf("RedactText: %s", msg)
	}
}

func TestAgentConfig_ModulesInStartOrder(t *testing.T) {
	c := &AgentConfig{Modules: map[string]Module{
		"last":  {Name: "last", StartupOrder: DefaultStartupOrder},
		"b":     {Name: "b", StartupOrder: 1},
		"a":     {Name: "a", StartupOrder: 1},
		"first": {Name: "first", StartupOrder: 0},
	}}
	var names []string
	for _, m := range c.ModulesInStartOrder() {
		names = append(names, m.Name)
	}
	if want := []string{"first", "a", "b", "last"}; !reflect.DeepEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}
