package agent_test

import (
	"reflect"
	"testing"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

func TestEnv(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		inject        map[string]string
		createOptions string
		want          []string
	}{
		{name: "nothing", createOptions: "{}", want: nil},
		{name: "manifest-only-sorted", env: map[string]string{"B": "2", "A": "1"}, want: []string{"A=1", "B=2"}},
		{name: "injected-only", inject: map[string]string{"IOTEDGE_MODULEID": "m"}, want: []string{"IOTEDGE_MODULEID=m"}},
		{name: "injected-overrides-manifest", env: map[string]string{"IOTEDGE_MODULEID": "fake", "X": "1"},
			inject: map[string]string{"IOTEDGE_MODULEID": "m", "EdgeHubConnectionString": "HostName=h"},
			want:   []string{"EdgeHubConnectionString=HostName=h", "IOTEDGE_MODULEID=m", "X=1"}},
		{name: "RuntimeLogLevel-from-manifest-wins", env: map[string]string{"RuntimeLogLevel": "debug"},
			inject: map[string]string{"RuntimeLogLevel": "info"}, want: []string{"RuntimeLogLevel=debug"}},
		{name: "RuntimeLogLevel-injected-when-absent", inject: map[string]string{"RuntimeLogLevel": "info"}, want: []string{"RuntimeLogLevel=info"}},
		{name: "UpstreamProtocol-from-manifest-wins", env: map[string]string{"UpstreamProtocol": "Mqtt"},
			inject: map[string]string{"UpstreamProtocol": "MqttWs"}, want: []string{"UpstreamProtocol=Mqtt"}},
		{name: "OUTPOST_MQTT_PORT-from-manifest-wins", env: map[string]string{"OUTPOST_MQTT_PORT": "9999"},
			inject: map[string]string{"OUTPOST_MQTT_PORT": "8884"}, want: []string{"OUTPOST_MQTT_PORT=9999"}},
		{name: "OUTPOST_MQTT_PORT-injected-when-absent", inject: map[string]string{"OUTPOST_MQTT_PORT": "8884"}, want: []string{"OUTPOST_MQTT_PORT=8884"}},
		{name: "createOptions-overrides-both", env: map[string]string{"A": "manifest", "IOTEDGE_MODULEID": "x"},
			inject:        map[string]string{"IOTEDGE_MODULEID": "m"},
			createOptions: `{"Env":["A=create","IOTEDGE_MODULEID=create","C=3"]}`,
			want:          []string{"A=create", "C=3", "IOTEDGE_MODULEID=create"}},
		{name: "createOptions-last-duplicate-wins", createOptions: `{"Env":["A=1","A=2"]}`, want: []string{"A=2"}},
		{name: "createOptions-value-with-equals", createOptions: `{"Env":["CS=HostName=h;Key=k=="]}`, want: []string{"CS=HostName=h;Key=k=="}},
		{name: "createOptions-empty-value", env: map[string]string{"A": "1"}, createOptions: `{"Env":["A="]}`, want: []string{"A="}},
		{name: "createOptions-name-only-removes", env: map[string]string{"A": "1", "B": "2"}, createOptions: `{"Env":["A"]}`, want: []string{"B=2"}},
		{name: "createOptions-empty-name-ignored", createOptions: `{"Env":["=x","B=2"]}`, want: []string{"B=2"}},
		{name: "createOptions-lower-case-key", createOptions: `{"env":["A=1"]}`, want: []string{"A=1"}},
		{name: "createOptions-Env-not-a-list-ignored", env: map[string]string{"A": "1"}, createOptions: `{"Env":"A=2"}`, want: []string{"A=1"}},
		{name: "createOptions-not-json-ignored", env: map[string]string{"A": "1"}, createOptions: `not json`, want: []string{"A=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := deployment.Module{Name: "m", Env: tc.env, CreateOptions: tc.createOptions}
			if got := agent.Env(m, tc.inject); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Env = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSpec_Hash(t *testing.T) {
	d := mustDesired(t)
	base := d.Spec(module(t, d, "filter")).Hash
	if len(base) != 64 {
		t.Fatalf("hash %q is not a hex SHA-256", base)
	}
	tests := []struct {
		name    string
		edit    func(*deployment.Module)
		desired func(*agent.Desired)
		changes bool
	}{
		{name: "version", edit: func(m *deployment.Module) { m.Version = "2.2" }, changes: true},
		{name: "image", edit: func(m *deployment.Module) { m.Image = "myacr.azurecr.io/filter:2.2" }, changes: true},
		{name: "env", edit: func(m *deployment.Module) { m.Env = map[string]string{"LOG": "info", "N": "1"} }, changes: true},
		{name: "createOptions", edit: func(m *deployment.Module) { m.CreateOptions = `{"Env":["LOG=debug"],"User":"1"}` }, changes: true},
		{name: "injected-env", desired: func(d *agent.Desired) { d.Inject["filter"]["IOTEDGE_MODULEGENERATIONID"] = "g" }, changes: true},
		{name: "upstream-resolution", edit: func(m *deployment.Module) { m.Image = "$upstream:443/filter:2.1" }, changes: true},
		{name: "createOptions-whitespace-and-key-order", edit: func(m *deployment.Module) {
			m.CreateOptions = "{\n  \"Env\": [\"LOG=debug\"]\n}"
		}},
		{name: "status", edit: func(m *deployment.Module) { m.Status = deployment.StatusStopped }},
		{name: "restartPolicy", edit: func(m *deployment.Module) { m.RestartPolicy = deployment.RestartAlways }},
		{name: "imagePullPolicy", edit: func(m *deployment.Module) { m.ImagePullPolicy = deployment.PullNever }},
		{name: "startupOrder", edit: func(m *deployment.Module) { m.StartupOrder = 0 }},
		{name: "configuration-id", edit: func(m *deployment.Module) { m.ConfigurationID = "cfg-2" }},
		{name: "registry-password", desired: func(d *agent.Desired) {
			c := d.Config.Runtime.Settings.RegistryCredentials["acr"]
			c.Password = "other"
			d.Config.Runtime.Settings.RegistryCredentials["acr"] = c
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var edits []func(*deployment.AgentConfig)
			if tc.edit != nil {
				edits = append(edits, editModule("filter", tc.edit))
			}
			d := mustDesired(t, edits...)
			if tc.desired != nil {
				tc.desired(&d)
			}
			got := d.Spec(module(t, d, "filter")).Hash
			if (got != base) != tc.changes {
				t.Fatalf("hash changed = %v, want %v", got != base, tc.changes)
			}
		})
	}
}

func TestCredential(t *testing.T) {
	creds := map[string]deployment.RegistryCredential{
		"acr":      {Username: "a", Password: "p", Address: "myacr.azurecr.io"},
		"acr2":     {Username: "a2", Password: "p2", Address: "MyAcr.AzureCR.io"},
		"scheme":   {Username: "s", Password: "p", Address: "https://other.io/v2/"},
		"hub":      {Username: "h", Password: "p", Address: "https://index.docker.io/v1/"},
		"local":    {Username: "l", Password: "p", Address: "localhost:5000"},
		"port":     {Username: "r", Password: "p", Address: "registry:5000"},
		"unrelate": {Username: "u", Password: "p", Address: "example.com"},
	}
	tests := []struct {
		image string
		want  string
	}{
		{"myacr.azurecr.io/filter:1", "acr"}, // "acr" sorts before "acr2", which also matches
		{"MYACR.azurecr.io/filter:1", "acr"},
		{"other.io/team/img:1", "scheme"},
		{"library/alpine:3", "hub"},
		{"alpine:3", "hub"},
		{"docker.io/library/alpine:3", "hub"},
		{"localhost:5000/archiver:latest", "local"},
		{"localhost/archiver:latest", ""},
		{"registry:5000/x:1", "port"},
		{"mcr.microsoft.com/azureiotedge-hub:1.5", ""},
		{"example.com.evil.io/x:1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			name, c := agent.Credential(tc.image, creds)
			if name != tc.want {
				t.Fatalf("Credential(%q) = %q, want %q", tc.image, name, tc.want)
			}
			if (c == nil) != (tc.want == "") || c != nil && *c != creds[tc.want] {
				t.Fatalf("Credential(%q) returned %+v", tc.image, c)
			}
		})
	}
}
