package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
)

// Keys of test connection strings (base64 of "edge1-key-........").
const (
	testKey  = "ZWRnZTEta2V5LXRoYXQtaXMtc2VjcmV0LTEyMzQ1Ng=="
	otherKey = "b3RoZXIta2V5LXRoYXQtaXMtc2VjcmV0LTEyMzQ1Ng=="
)

func testCS(device, key string) string {
	return "HostName=myhub.azure-devices.net;DeviceId=" + device + ";SharedAccessKey=" + key
}

// setupEnv is an env whose clock is fixed, for certificate lifetimes.
func setupEnv(now time.Time) env { return env{Now: func() time.Time { return now }} }

func TestSetup_WritesConfigCertsAndConnectionString(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := cli(t, setupEnv(now), "--data-dir", dir, "setup", "--connection-string", testCS("edge1", testKey),
		"--edge-hostname", "Edge1.Local", "--ca-lifetime", "2h", "--server-lifetime", "30m", "--renew-before", "10m",
		"--mqtt-port", "18883", "--reconcile-period", "1s")
	if code != 0 {
		t.Fatalf("setup = %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Runtime setup successfully.", "Using configuration: " + filepath.Join(dir, setupFile),
		"edge1 on myhub.azure-devices.net", "edge hostname:  edge1.local", "Use 'edgectl start' to start the runtime."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, testKey) {
		t.Errorf("the key is in the output:\n%s%s", out, errOut)
	}

	t.Run("files and modes", func(t *testing.T) {
		for path, mode := range map[string]os.FileMode{
			filepath.Join(dir, setupFile):                        0o600,
			filepath.Join(dir, connectionStringFile):             0o600,
			filepath.Join(dir, certsDir, certs.DefaultCAKeyFile): 0o600,
			filepath.Join(dir, certsDir, certs.DefaultKeyFile):   0o600,
			filepath.Join(dir, certsDir, certs.DefaultCAFile):    0o644,
			filepath.Join(dir, certsDir, certs.DefaultCertFile):  0o644,
			dir: os.ModeDir | 0o700, filepath.Join(dir, certsDir): os.ModeDir | 0o700,
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if fi.Mode() != mode {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, connectionStringFile))
		if err != nil || strings.TrimSpace(string(b)) != testCS("edge1", testKey) {
			t.Errorf("connection string file = %q, %v", b, err)
		}
		b, _ = os.ReadFile(filepath.Join(dir, setupFile))
		if strings.Contains(string(b), testKey) {
			t.Errorf("%s holds the key:\n%s", setupFile, b)
		}
	})

	t.Run("agent settings by flag name", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, setupFile))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			SchemaVersion string         `json:"schemaVersion"`
			Agent         map[string]any `json:"agent"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"connection-string-file": filepath.Join(dir, connectionStringFile), "data-dir": dir, "runtime": "process",
			"gateway-hostname": "edge1.local", "module-ca-file": filepath.Join(dir, certsDir, certs.DefaultCAFile),
			"mqtt-port": float64(18883), "reconcile-period": "1s", "certs-dir": filepath.Join(dir, certsDir),
			"cert-ca-lifetime": "2h0m0s", "cert-server-lifetime": "30m0s", "cert-renew-before": "10m0s",
		}
		if doc.SchemaVersion != "1" || !reflect.DeepEqual(doc.Agent, want) {
			t.Errorf("schemaVersion %q, agent =\n%v\nwant\n%v", doc.SchemaVersion, doc.Agent, want)
		}
	})

	t.Run("certificates with the configured lifetimes", func(t *testing.T) {
		ca, err := certs.Inspect(filepath.Join(dir, certsDir, certs.DefaultCAFile))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := certs.Inspect(filepath.Join(dir, certsDir, certs.DefaultCertFile))
		if err != nil {
			t.Fatal(err)
		}
		// Certificates are valid from now (backdated an hour) for their lifetime.
		if !ca.IsCA || !ca.NotAfter.Equal(now.Add(2*time.Hour)) {
			t.Errorf("CA: CA %v, expires %v; want %v", ca.IsCA, ca.NotAfter, now.Add(2*time.Hour))
		}
		if !srv.NotAfter.Equal(now.Add(30*time.Minute)) || !slices.Contains(srv.Names, "edge1.local") {
			t.Errorf("server: expires %v (want %v), names %v", srv.NotAfter, now.Add(30*time.Minute), srv.Names)
		}
	})

	t.Run("status says STOPPED", func(t *testing.T) {
		code, out, _ := cli(t, env{}, "--data-dir", dir, "status")
		if code != exitUnavailable || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "edgectl --data-dir "+dir+" start") {
			t.Errorf("status = %d\n%s", code, out)
		}
	})
}

func TestSetup_BadConnectionStrings(t *testing.T) {
	tests := []struct {
		name, cs, wantErr string
	}{
		{name: "empty", cs: "", wantErr: "--connection-string is required"},
		{name: "malformed", cs: "this is not a connection string", wantErr: "malformed connection string"},
		{name: "no host", cs: "DeviceId=edge1;SharedAccessKey=" + testKey, wantErr: "missing HostName"},
		{name: "bad key", cs: "HostName=h;DeviceId=edge1;SharedAccessKey=%%%notbase64", wantErr: "SharedAccessKey"},
		{name: "no key", cs: "HostName=h;DeviceId=edge1", wantErr: "has no SharedAccessKey"},
		{name: "x509", cs: "HostName=h;DeviceId=edge1;x509=true", wantErr: "has no SharedAccessKey"},
		{name: "service", cs: "HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey, wantErr: "service connection string"},
		{name: "module", cs: "HostName=h;DeviceId=edge1;ModuleId=m;SharedAccessKey=" + testKey, wantErr: "got a module's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			code, out, errOut := cli(t, env{}, "--data-dir", dir, "setup", "--connection-string", tt.cs)
			if code != exitUsage || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("setup = %d, stderr %q; want %d mentioning %q", code, errOut, exitUsage, tt.wantErr)
			}
			if strings.Contains(out+errOut, testKey) {
				t.Errorf("the key is in the output: %s%s", out, errOut)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("setup wrote %s after refusing the connection string", dir)
			}
		})
	}
}

func TestSetup_Rerun(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "data")
	base := []string{"--data-dir", dir, "setup", "--edge-hostname", "edge1.local"}
	setup := func(extra ...string) (int, string, string) {
		return cli(t, setupEnv(now), append(append([]string{}, base...), extra...)...)
	}
	if code, out, errOut := setup("--connection-string", testCS("edge1", testKey)); code != 0 {
		t.Fatalf("first setup = %d\n%s%s", code, out, errOut)
	}
	read := func() string {
		b, err := os.ReadFile(filepath.Join(dir, setupFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := read()

	t.Run("same settings change nothing", func(t *testing.T) {
		code, out, errOut := setup("--connection-string", testCS("edge1", testKey))
		if code != 0 || !strings.Contains(out, "nothing changed") {
			t.Fatalf("rerun = %d\n%s%s", code, out, errOut)
		}
		if read() != first {
			t.Error("the setup file changed")
		}
	})
	t.Run("other settings are refused without --force", func(t *testing.T) {
		code, out, errOut := setup("--connection-string", testCS("edge2", otherKey), "--runtime", "docker")
		if code != exitRefused {
			t.Fatalf("rerun = %d, want %d\n%s%s", code, exitRefused, out, errOut)
		}
		for _, want := range []string{"already set up", "agent.runtime: process -> docker", "device: edge1 on myhub.azure-devices.net -> edge2 on myhub.azure-devices.net",
			"device key: *** -> *** (another key)", "docker.agentImage: (none) -> outpost/edgeagent:dev"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(errOut, "--force") {
			t.Errorf("stderr does not mention --force: %s", errOut)
		}
		for _, key := range []string{testKey, otherKey} {
			if strings.Contains(out+errOut, key) {
				t.Errorf("a key is in the output:\n%s%s", out, errOut)
			}
		}
		if read() != first {
			t.Error("the setup file changed")
		}
		b, _ := os.ReadFile(filepath.Join(dir, connectionStringFile))
		if !strings.Contains(string(b), "edge1") {
			t.Errorf("the connection string file changed: %q", b)
		}
	})
	t.Run("--force applies them", func(t *testing.T) {
		code, out, errOut := setup("--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge9.local", "--force")
		if code != 0 || !strings.Contains(out, "agent.gateway-hostname: edge1.local -> edge9.local") {
			t.Fatalf("rerun --force = %d\n%s%s", code, out, errOut)
		}
		if !strings.Contains(read(), `"gateway-hostname": "edge9.local"`) {
			t.Errorf("setup file not updated:\n%s", read())
		}
		srv, err := certs.Inspect(filepath.Join(dir, certsDir, certs.DefaultCertFile))
		if err != nil || !slices.Contains(srv.Names, "edge9.local") {
			t.Errorf("server certificate names %v (%v), want edge9.local: it is issued again for the new host name", srv.Names, err)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, _ := setup("-o", "json", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge9.local", "--runtime", "docker")
		var got setupOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitRefused || got.Result != "refused" || len(got.Changes) == 0 {
			t.Errorf("json rerun = %d %+v (%v)\n%s", code, got, err, out)
		}
	})
}

func TestDiffSetup(t *testing.T) {
	base := func() edgeConfig {
		return edgeConfig{SchemaVersion: "1", Agent: agentSettings{DataDir: "/d", Runtime: "process", GatewayHostName: "a",
			CertsDir: "/d/certs", CertCALifetime: "1h0m0s"}, Process: &processSettings{}}
	}
	tests := []struct {
		name string
		edit func(*edgeConfig)
		want []string
	}{
		{name: "same", edit: func(*edgeConfig) {}, want: nil},
		{name: "one agent flag", edit: func(c *edgeConfig) { c.Agent.GatewayHostName = "b" }, want: []string{"agent.gateway-hostname: a -> b"}},
		{name: "a flag set", edit: func(c *edgeConfig) { c.Agent.MQTTPort = 18883 }, want: []string{"agent.mqtt-port: (none) -> 18883"}},
		{name: "runtime and its section", edit: func(c *edgeConfig) {
			c.Agent.Runtime, c.Process, c.Docker = "docker", nil, &dockerSettings{AgentImage: "img"}
		}, want: []string{"agent.runtime: process -> docker", "docker.agentImage: (none) -> img"}},
		{name: "lifetime", edit: func(c *edgeConfig) { c.Agent.CertCALifetime = "2h0m0s" }, want: []string{"agent.cert-ca-lifetime: 1h0m0s -> 2h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := base()
			tt.edit(&n)
			var got []string
			for _, c := range diffSetup(base(), n) {
				got = append(got, c.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("diff = %q, want %q", got, tt.want)
			}
		})
	}
}

// edgectl check warns from the setup's --renew-before on: a certificate
// that late was not renewed in time.
func TestCheck_CertWarningFollowsTheSetup(t *testing.T) {
	// Set up 10 minutes ago: the server certificate (30 minutes) has 20
	// minutes left, within the 25 minutes before expiry it should be renewed.
	dir := setUpDeviceAt(t, time.Now().Add(-10*time.Minute), "--ca-lifetime", "2h", "--server-lifetime", "30m", "--renew-before", "25m")
	ec := testConfig(dir)
	ec.ModuleCAFile = filepath.Join(dir, certsDir, certs.DefaultCAFile)
	writeConfig(t, ec)
	result := func(extra ...string) string {
		t.Helper()
		_, out, _ := cli(t, env{}, append([]string{"--data-dir", dir, "-o", "json", "check", "--dont-run",
			"connection-string,storage-writable-free-space,docker-reachable,agent-running,deployment-applied,hub-reachable,clock-skew"}, extra...)...)
		var rep struct {
			Checks []struct{ ID, Result, Reason string }
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("check -o json: %v\n%s", err, out)
		}
		for _, c := range rep.Checks {
			if c.ID == "certs-not-expiring" {
				return c.Result + ": " + c.Reason
			}
		}
		t.Fatalf("no certs-not-expiring in %s", out)
		return ""
	}
	if got := result(); !strings.HasPrefix(got, "warning") || !strings.Contains(got, "server") {
		t.Errorf("default: %s; want a warning about the server certificate", got)
	}
	if got := result("--cert-warning", "1m"); !strings.HasPrefix(got, "ok") {
		t.Errorf("--cert-warning 1m: %s; want ok", got)
	}
}

// TestSetup_DockerNetworkReachesTheAgent checks that setup --network and
// --require-digest are written where edgeagent --config reads them (the
// "agent" object, by flag name), and that start and uninstall use the same
// network; an older setup file's docker.network still counts.
func TestSetup_DockerNetworkReachesTheAgent(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	readAgent := func(t *testing.T, dir string) (map[string]any, map[string]any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, setupFile))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Agent  map[string]any `json:"agent"`
			Docker map[string]any `json:"docker"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Agent, doc.Docker
	}
	tests := []struct {
		name         string
		args         []string
		wantNetwork  any // agent.network in edge.json; nil: absent
		wantDigest   any
		wantAgentNet string // docker.agentNetwork
	}{
		{name: "default network", args: []string{"--runtime", "docker"}, wantNetwork: "azure-iot-edge", wantAgentNet: "azure-iot-edge"},
		{name: "named network", args: []string{"--runtime", "docker", "--network", "plant-net"}, wantNetwork: "plant-net", wantAgentNet: "plant-net"},
		{name: "agent on the host network", args: []string{"--runtime", "docker", "--network", "plant-net", "--agent-network", "host", "--require-digest"},
			wantNetwork: "plant-net", wantDigest: true, wantAgentNet: "host"},
		{name: "process runtime has none", args: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"--data-dir", dir, "setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge1.local"}, tt.args...)
			if code, out, errOut := cli(t, setupEnv(now), args...); code != 0 {
				t.Fatalf("setup = %d\n%s%s", code, out, errOut)
			}
			ag, dk := readAgent(t, dir)
			if ag["network"] != tt.wantNetwork || ag["require-digest"] != tt.wantDigest {
				t.Errorf("agent.network %v, agent.require-digest %v; want %v, %v", ag["network"], ag["require-digest"], tt.wantNetwork, tt.wantDigest)
			}
			if _, ok := dk["network"]; ok {
				t.Errorf("docker.network %v written: the agent does not read it", dk["network"])
			}
			if tt.wantAgentNet != "" && dk["agentNetwork"] != tt.wantAgentNet {
				t.Errorf("docker.agentNetwork %v, want %s", dk["agentNetwork"], tt.wantAgentNet)
			}
			c, err := readSetup(dir)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := tt.wantNetwork.(string)
			if want == "" {
				return
			}
			if c.network() != want {
				t.Errorf("start and uninstall use network %q, the agent %q", c.network(), want)
			}
			// start tells the agent container the network it created (the
			// client is made from the environment; the engine is not asked).
			b, err := newDockerBackend(&app{}, c)
			if err != nil {
				t.Fatal(err)
			}
			defer b.close()
			cfg, _ := b.agentContainerConfig(now)
			if i := slices.Index(cfg.Cmd, "--network"); i < 0 || i+1 >= len(cfg.Cmd) || cfg.Cmd[i+1] != want {
				t.Errorf("agent container command %q, want --network %s", cfg.Cmd, want)
			}
		})
	}

	t.Run("digest policy refused on the process runtime", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		code, _, errOut := cli(t, setupEnv(now), "--data-dir", dir, "setup", "--connection-string", testCS("edge1", testKey), "--require-digest")
		if code != exitUsage || !strings.Contains(errOut, "--require-digest applies to the docker runtime only") {
			t.Errorf("setup = %d %q", code, errOut)
		}
	})

	t.Run("setup again over an older setup file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		args := []string{"--data-dir", dir, "setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge1.local",
			"--runtime", "docker", "--network", "plant-net"}
		if code, out, errOut := cli(t, setupEnv(now), args...); code != 0 {
			t.Fatalf("setup = %d\n%s%s", code, out, errOut)
		}
		// Rewrite it as setup used to: the network in docker.network only.
		c, err := readSetup(dir)
		if err != nil {
			t.Fatal(err)
		}
		c.Docker.Network, c.Agent.Network = c.Agent.Network, ""
		if err := writeSetup(c); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := cli(t, setupEnv(now), args...)
		if code != 0 || !strings.Contains(out, "nothing changed") {
			t.Fatalf("setup again = %d\n%s%s", code, out, errOut)
		}
		ag, dk := readAgent(t, dir)
		if ag["network"] != "plant-net" || dk["network"] != nil {
			t.Errorf("after setup again: agent.network %v, docker.network %v; want plant-net and none", ag["network"], dk["network"])
		}
	})

	t.Run("older setup file", func(t *testing.T) {
		c := edgeConfig{SchemaVersion: "1", Agent: agentSettings{DataDir: "/d", ConnectionStringFile: "/d/cs", Runtime: runtimeDocker, CertsDir: "/d/certs"},
			Docker: &dockerSettings{AgentImage: "img", Network: "legacy-net"}}
		if err := c.validate(); err != nil || c.network() != "legacy-net" {
			t.Errorf("docker.network only: network %q, validate %v; want legacy-net, nil", c.network(), err)
		}
		c.Agent.Network = "other-net"
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "differ") {
			t.Errorf("agent.network and docker.network differ: validate = %v, want an error", err)
		}
	})
}
