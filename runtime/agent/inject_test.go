package agent_test

import (
	"testing"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

func TestHubPort(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		createOptions string
		want          int
	}{
		{name: "nothing: the default", want: 0},
		{name: "env", env: map[string]string{"EDGEHUB_TLS_ADDR": "127.0.0.1:8884"}, want: 8884},
		{name: "env without host", env: map[string]string{"EDGEHUB_TLS_ADDR": ":9883"}, want: 9883},
		{name: "env IPv6", env: map[string]string{"EDGEHUB_TLS_ADDR": "[::1]:9000"}, want: 9000},
		{name: "env default port", env: map[string]string{"EDGEHUB_TLS_ADDR": ":8883"}, want: 8883},
		{name: "random port", env: map[string]string{"EDGEHUB_TLS_ADDR": "127.0.0.1:0"}, want: 0},
		{name: "no port", env: map[string]string{"EDGEHUB_TLS_ADDR": "127.0.0.1"}, want: 0},
		{name: "named port", env: map[string]string{"EDGEHUB_TLS_ADDR": ":mqtts"}, want: 0},
		{name: "port out of range", env: map[string]string{"EDGEHUB_TLS_ADDR": ":70000"}, want: 0},
		{name: "other variables ignored", env: map[string]string{"EDGEHUB_PLAIN_ADDR": ":1883", "EDGEHUB_TLS_ADDR_X": ":1"}, want: 0},
		{name: "createOptions.Env wins over env", env: map[string]string{"EDGEHUB_TLS_ADDR": ":1111"},
			createOptions: `{"Env":["EDGEHUB_TLS_ADDR=:2222"]}`, want: 2222},
		{name: "createOptions.Env removes it", env: map[string]string{"EDGEHUB_TLS_ADDR": ":1111"},
			createOptions: `{"Env":["EDGEHUB_TLS_ADDR"]}`, want: 0},
		{name: "Cmd wins over env", env: map[string]string{"EDGEHUB_TLS_ADDR": ":1111"},
			createOptions: `{"Cmd":["--log-level","debug","--tls-addr","127.0.0.1:3333"]}`, want: 3333},
		{name: "Cmd with equals and one dash", createOptions: `{"Cmd":["-tls-addr=:4444"]}`, want: 4444},
		{name: "Cmd as one string", createOptions: `{"Cmd":"--tls-addr=:5555"}`, want: 5555},
		{name: "Cmd lower case key", createOptions: `{"cmd":["--tls-addr", ":5556"]}`, want: 5556},
		{name: "last Cmd flag wins", createOptions: `{"Cmd":["--tls-addr", ":1", "--tls-addr=:6666"]}`, want: 6666},
		{name: "Cmd flag without a value", env: map[string]string{"EDGEHUB_TLS_ADDR": ":7777"},
			createOptions: `{"Cmd":["--tls-addr"]}`, want: 7777},
		{name: "other Cmd flags", env: map[string]string{"EDGEHUB_TLS_ADDR": ":7778"},
			createOptions: `{"Cmd":["--tls-address", ":1", "--plain-addr=:2", "tls-addr", ":3"]}`, want: 7778},
		{name: "Cmd not strings", env: map[string]string{"EDGEHUB_TLS_ADDR": ":8888"}, createOptions: `{"Cmd":[1,2]}`, want: 8888},
		{name: "createOptions not JSON", env: map[string]string{"EDGEHUB_TLS_ADDR": ":8889"}, createOptions: `{`, want: 8889},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := deployment.Module{Name: deployment.EdgeHubName, Env: tc.env, CreateOptions: tc.createOptions}
			if got := agent.HubPort(m); got != tc.want {
				t.Errorf("HubPort = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRun_InjectsHubPort checks that user modules learn edgeHub's port from
// the deployment, and only when it is not the default.
func TestRun_InjectsHubPort(t *testing.T) {
	hubEnv := func(addr string) func(map[string]any) {
		return func(doc map[string]any) {
			at(doc, "systemModules", "edgeHub", "env")["EDGEHUB_TLS_ADDR"] = map[string]any{"value": addr}
		}
	}
	filterPort := func(doc map[string]any) {
		at(doc, "modules", "filter", "env")["OUTPOST_MQTT_PORT"] = map[string]any{"value": "9999"}
	}
	tests := []struct {
		name  string
		edits []func(map[string]any)
		want  map[string]string // module -> OUTPOST_MQTT_PORT ("" for none)
	}{
		{name: "default port", want: map[string]string{"tempSensor": "", "filter": "", "edgeHub": ""}},
		{name: "default port written out", edits: []func(map[string]any){hubEnv(":8883")},
			want: map[string]string{"tempSensor": "", "filter": "", "edgeHub": ""}},
		{name: "another port", edits: []func(map[string]any){hubEnv("127.0.0.1:8884")},
			want: map[string]string{"tempSensor": "8884", "filter": "8884", "edgeHub": ""}},
		{name: "the manifest's own value wins", edits: []func(map[string]any){hubEnv("127.0.0.1:8884"), filterPort},
			want: map[string]string{"tempSensor": "8884", "filter": "9999", "edgeHub": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.twin.SetDesired(deploymentDoc(t, tc.edits...))
			h.start()
			h.waitConverged()
			for module, want := range tc.want {
				env := envOf(t, h.rt, module)
				if got, set := env[agent.EnvMQTTPort]; got != want || set != (want != "") {
					t.Errorf("%s: %s = %q (set %v), want %q", module, agent.EnvMQTTPort, got, set, want)
				}
			}
		})
	}
}

// TestRun_InjectsEdgeHubUpstreamAndCerts checks what edgeHub learns from the
// agent's own settings: its upstream's port (only when not the default) and
// its server certificate files, with the deployment's values winning.
func TestRun_InjectsEdgeHubUpstreamAndCerts(t *testing.T) {
	const (
		certFile  = "EdgeModuleHubServerCertificateFile"
		chainFile = "EdgeModuleHubServerCAChainCertificateFile"
		port      = "OUTPOST_MQTT_PORT"
	)
	hubEnv := func(name, value string) func(map[string]any) {
		return func(doc map[string]any) {
			at(doc, "systemModules", "edgeHub", "env")[name] = map[string]any{"value": value}
		}
	}
	hubCreateEnv := func(entries string) func(map[string]any) {
		return func(doc map[string]any) {
			at(doc, "systemModules", "edgeHub", "settings")["createOptions"] = `{"Env":[` + entries + `]}`
		}
	}
	tests := []struct {
		name     string
		port     int
		certsDir string
		edits    []func(map[string]any)
		want     map[string]string // variable -> value in edgeHub's env ("" for unset)
	}{
		{name: "neither set", want: map[string]string{port: "", certFile: "", chainFile: ""}},
		{name: "default port", port: 8883, want: map[string]string{port: ""}},
		{name: "another port", port: 18883, want: map[string]string{port: "18883"}},
		{name: "manifest port wins", port: 18883, edits: []func(map[string]any){hubEnv(port, "9999")},
			want: map[string]string{port: "9999"}},
		{name: "certs dir", certsDir: "/var/lib/outpost/certs",
			want: map[string]string{certFile: "/var/lib/outpost/certs/server.pem", chainFile: "/var/lib/outpost/certs/edge-ca.pem"}},
		{name: "certs dir cleaned", certsDir: "/var/lib/outpost/certs/",
			want: map[string]string{certFile: "/var/lib/outpost/certs/server.pem", chainFile: "/var/lib/outpost/certs/edge-ca.pem"}},
		{name: "manifest certificate wins, chain not injected", certsDir: "/var/lib/outpost/certs",
			edits: []func(map[string]any){hubEnv(certFile, "/other/server.pem")},
			want:  map[string]string{certFile: "/other/server.pem", chainFile: ""}},
		{name: "manifest chain wins, certificate not injected", certsDir: "/var/lib/outpost/certs",
			edits: []func(map[string]any){hubEnv(chainFile, "/other/edge-ca.pem")},
			want:  map[string]string{certFile: "", chainFile: "/other/edge-ca.pem"}},
		{name: "createOptions certificate wins", certsDir: "/var/lib/outpost/certs",
			edits: []func(map[string]any){hubCreateEnv(`"` + certFile + `=/other/server.pem"`)},
			want:  map[string]string{certFile: "/other/server.pem", chainFile: ""}},
		{name: "createOptions removes the chain", certsDir: "/var/lib/outpost/certs",
			edits: []func(map[string]any){hubCreateEnv(`"` + chainFile + `"`)},
			want:  map[string]string{certFile: "", chainFile: ""}},
		{name: "other createOptions variables", certsDir: "/c", port: 1883,
			edits: []func(map[string]any){hubCreateEnv(`"EdgeModuleHubServerCertificateFileX=1"`)},
			want:  map[string]string{certFile: "/c/server.pem", chainFile: "/c/edge-ca.pem", port: "1883"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.opts.UpstreamPort = tc.port
			h.opts.EdgeHubCertsDir = tc.certsDir
			h.twin.SetDesired(deploymentDoc(t, tc.edits...))
			h.start()
			h.waitConverged()
			env := envOf(t, h.rt, deployment.EdgeHubName)
			for name, want := range tc.want {
				if got, set := env[name]; got != want || set != (want != "") {
					t.Errorf("edgeHub: %s = %q (set %v), want %q", name, got, set, want)
				}
			}
			// They are edgeHub's: user modules reach edgeHub, not the upstream.
			sensor := envOf(t, h.rt, "tempSensor")
			for _, name := range []string{port, certFile, chainFile} {
				if v, set := sensor[name]; set {
					t.Errorf("tempSensor: %s = %q, want it unset", name, v)
				}
			}
		})
	}
}
