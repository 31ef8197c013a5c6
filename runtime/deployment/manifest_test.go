package deployment

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the current output")

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestParseManifest_Published parses the manifests copied from Microsoft's
// documentation (testdata/manifests/README.md). They must parse unchanged.
func TestParseManifest_Published(t *testing.T) {
	const hubPorts = `{"HostConfig":{"PortBindings":{"5671/tcp":[{"HostPort":"5671"}],"8883/tcp":[{"HostPort":"8883"}],"443/tcp":[{"HostPort":"443"}]}}}`
	tests := []struct {
		file                   string
		agentSchema, hubSchema string
		modules, routes, twins []string
		ttl                    int
		check                  func(*testing.T, *Manifest)
	}{
		{
			file: "module-composition-2019.json", agentSchema: "1.0", hubSchema: "1.0", ttl: 10,
			modules: []string{"SimulatedTemperatureSensor", "filtermodule"},
			routes:  []string{"filterToIoTHub", "sensorToFilter"},
			twins:   []string{"$edgeAgent", "$edgeHub"},
			check: func(t *testing.T, m *Manifest) {
				want := map[string]RegistryCredential{"ContosoRegistry": {Username: "myacr", Password: "<password>", Address: "myacr.azurecr.io"}}
				if got := m.Agent.Runtime.Settings.RegistryCredentials; !reflect.DeepEqual(got, want) {
					t.Errorf("credentials %v", got)
				}
				if got := m.Agent.SystemModules.EdgeAgent; got.Image != "mcr.microsoft.com/azureiotedge-agent:1.0" || got.CreateOptions != "{}" {
					t.Errorf("edgeAgent %+v", got)
				}
				f := m.Agent.Modules["filtermodule"]
				if f.Image != "myacr.azurecr.io/filtermodule:latest" || f.RestartPolicy != RestartAlways || f.Version != "1.0" || f.StartupOrder != DefaultStartupOrder {
					t.Errorf("filtermodule %+v", f)
				}
				r := m.Hub.Routes["sensorToFilter"]
				if r.Expr != `FROM /messages/modules/SimulatedTemperatureSensor/outputs/temperatureOutput INTO BrokeredEndpoint("/modules/filtermodule/inputs/input1")` || r.Priority != DefaultPriority {
					t.Errorf("route %+v", r)
				}
			},
		},
		{
			file: "module-composition-2018-preview.json", agentSchema: "1.0", hubSchema: "1.0", ttl: 10,
			modules: []string{"filtermodule", "tempSensor"},
			routes:  []string{"filterToIoTHub", "sensorToFilter"},
			twins:   []string{"$edgeAgent", "$edgeHub"},
			check: func(t *testing.T, m *Manifest) {
				if got := m.Agent.SystemModules.EdgeHub.Image; got != "microsoft/azureiotedge-hub:1.0-preview" {
					t.Errorf("edgeHub image %q", got)
				}
			},
		},
		{
			file: "startup-order.json", agentSchema: "1.1", hubSchema: "1.0", ttl: 10,
			modules: []string{"SimulatedTemperatureSensor", "filtermodule"},
			routes:  []string{"filterToIoTHub", "sensorToFilter"},
			twins:   []string{"$edgeAgent", "$edgeHub"},
			check: func(t *testing.T, m *Manifest) {
				if o := m.Agent.SystemModules.EdgeHub.StartupOrder; o != 0 {
					t.Errorf("edgeHub startupOrder %d", o)
				}
				var order []string
				for _, mod := range m.Agent.ModulesInStartOrder() {
					order = append(order, fmt.Sprintf("%s=%d", mod.Name, mod.StartupOrder))
				}
				if want := []string{"SimulatedTemperatureSensor=1", "filtermodule=4294967295"}; !reflect.DeepEqual(order, want) {
					t.Errorf("start order %v", order)
				}
			},
		},
		{
			file: "deploy-modules-cli.json", agentSchema: "1.0", hubSchema: "1.0", ttl: 7200,
			modules: []string{"SimulatedTemperatureSensor"},
			routes:  []string{"route"},
			twins:   []string{"$edgeAgent", "$edgeHub", "SimulatedTemperatureSensor"},
			check: func(t *testing.T, m *Manifest) {
				if got := string(m.Desired["SimulatedTemperatureSensor"]); got != "{}" {
					t.Errorf("module desired %s", got)
				}
				if got := m.Hub.Routes["route"].Expr; got != "FROM /* INTO $upstream" {
					t.Errorf("route %q", got)
				}
			},
		},
		{
			file: "deploy-cli-at-scale.json", agentSchema: "1.1", hubSchema: "1.0", ttl: 7200,
			modules: []string{"SimulatedTemperatureSensor"},
			routes:  []string{"upstream"},
			twins:   []string{"$edgeAgent", "$edgeHub", "SimulatedTemperatureSensor"},
			check: func(t *testing.T, m *Manifest) {
				if got := m.Agent.SystemModules.EdgeHub.CreateOptions; got != hubPorts {
					t.Errorf("edgeHub createOptions %s", got)
				}
				if got := string(m.Desired["SimulatedTemperatureSensor"]); got != `{"SendData":true,"SendInterval":5}` {
					t.Errorf("module desired %s", got)
				}
				if got := m.Agent.Modules["SimulatedTemperatureSensor"].Version; got != "1.1" {
					t.Errorf("version %q", got)
				}
			},
		},
		{
			file: "iot-central-environmental-sensor-1-4.json", agentSchema: "1.0", hubSchema: "1.0", ttl: 7200,
			modules: []string{"SimulatedTemperatureSensor"},
			routes:  []string{"route"},
			twins:   []string{"$edgeAgent", "$edgeHub", "SimulatedTemperatureSensor"},
			check: func(t *testing.T, m *Manifest) {
				if got := m.Agent.SystemModules.EdgeAgent.Image; got != "mcr.microsoft.com/azureiotedge-agent:1.4" {
					t.Errorf("edgeAgent image %q", got)
				}
			},
		},
		{
			file: "iot-central-transform-module.json", agentSchema: "1.1", hubSchema: "1.1", ttl: 7200,
			modules: []string{"transformmodule"},
			routes:  []string{"toIoTHub", "toTransformFromDevices"},
			twins:   []string{"$edgeAgent", "$edgeHub", "transformmodule"},
			check: func(t *testing.T, m *Manifest) {
				if got := m.Agent.Runtime.Settings.RegistryCredentials["acr"].Address; got != "{your username}.azurecr.io" {
					t.Errorf("credential address %q", got)
				}
				if got := m.Agent.Modules["transformmodule"].CreateOptions; got != "{}" {
					t.Errorf("createOptions %q", got)
				}
				if got := m.Hub.Routes["toTransformFromDevices"].Expr; !strings.Contains(got, "WHERE NOT IS_DEFINED($connectionModuleId)") {
					t.Errorf("route %q", got)
				}
			},
		},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			m, err := ParseManifest(readFile(t, filepath.Join("testdata/manifests", tt.file)))
			if err != nil {
				t.Fatalf("published manifest rejected: %v", err)
			}
			if m.Agent.SchemaVersion != tt.agentSchema || m.Hub.SchemaVersion != tt.hubSchema {
				t.Errorf("schema versions %q/%q", m.Agent.SchemaVersion, m.Hub.SchemaVersion)
			}
			if got := sortedKeys(m.Agent.Modules); !reflect.DeepEqual(got, tt.modules) {
				t.Errorf("modules %v, want %v", got, tt.modules)
			}
			if got := sortedKeys(m.Hub.Routes); !reflect.DeepEqual(got, tt.routes) {
				t.Errorf("routes %v, want %v", got, tt.routes)
			}
			if got := sortedKeys(m.Desired); !reflect.DeepEqual(got, tt.twins) {
				t.Errorf("desired twins %v, want %v", got, tt.twins)
			}
			if got := m.Hub.StoreAndForward.TimeToLiveSecs; got != tt.ttl {
				t.Errorf("ttl %d, want %d", got, tt.ttl)
			}
			// Desired documents parse on their own exactly as inside the manifest.
			a, err := ParseAgent(m.Desired[EdgeAgentTwin])
			if err != nil || !reflect.DeepEqual(a, m.Agent) {
				t.Errorf("ParseAgent of the desired document: %v", err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
	files, _ := filepath.Glob("testdata/manifests/*.json")
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no row in TestParseManifest_Published", f)
		}
	}
}

func TestParseManifest_Paths(t *testing.T) {
	doc := map[string]any{"content": map[string]any{"modulesContent": map[string]any{
		"$edgeAgent": map[string]any{"properties.desired": baseAgent()},
		"$edgeHub":   map[string]any{"properties.desired": baseHub("1.1")},
	}}}
	set(doc, "content.modulesContent.$edgeAgent", map[string]any{"properties.desired": func() map[string]any {
		a := baseAgent()
		set(a, "modules.tempSensor.status", del)
		return a
	}()})
	_, err := ParseManifest(mustJSON(t, doc))
	wantError(t, err, CodeInvalid, `content.modulesContent.$edgeAgent["properties.desired"].modules.tempSensor.status`)
}

// TestParseManifest_Invalid checks every testdata/invalid/*.json against its
// golden code and description. Regenerate with go test -run Invalid -update.
func TestParseManifest_Invalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid manifests: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			_, err := ParseManifest(readFile(t, f))
			if err == nil {
				t.Fatal("accepted")
			}
			var e *Error
			wantErrorType(t, err, &e)
			field := e.Field
			if field == "" {
				field = "(whole document)"
			}
			got := fmt.Sprintf("code: %d\nfield: %s\ndescription: %s\n", StatusCode(err), field, Description(err))
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := string(readFile(t, golden))
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func wantErrorType(t *testing.T, err error, target **Error) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	*target = e
}

func TestParseManifest_DesiredIsCompact(t *testing.T) {
	m, err := ParseManifest(readFile(t, "testdata/manifests/deploy-modules-cli.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range m.Desired {
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if strings.ContainsAny(string(raw), "\n\t") {
			t.Errorf("%s is not compact", name)
		}
	}
}
