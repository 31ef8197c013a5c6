package docker

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/outpost-edge/outpost/runtime/agent"
)

const testNet = "test-net"

func testSpec(name, createOptions string) agent.ModuleSpec {
	return agent.ModuleSpec{
		Name:          name,
		Image:         "example.azurecr.io/" + name + ":1",
		Env:           []string{"A=1", "IOTEDGE_MODULEID=" + name},
		CreateOptions: createOptions,
		Labels:        map[string]string{agent.LabelOwner: agent.Owner, agent.LabelModule: name},
		Hash:          "h",
	}
}

// defaults is what every module gets whatever its createOptions say.
func defaults(name string) (*container.Config, *container.HostConfig) {
	return &container.Config{
			Image:  "example.azurecr.io/" + name + ":1",
			Env:    []string{"A=1", "IOTEDGE_MODULEID=" + name},
			Labels: map[string]string{agent.LabelOwner: agent.Owner, agent.LabelModule: name},
		}, &container.HostConfig{
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		}
}

func onNetwork(aliases ...string) *network.NetworkingConfig {
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{testNet: {Aliases: aliases}}}
}

func TestCreateRequest(t *testing.T) {
	rt := newRuntime(&fakeEngine{}, Options{Network: testNet, GatewayHostName: "gw.example"})
	for _, tc := range []struct {
		name, module, createOptions string
		edit                        func(*container.Config, *container.HostConfig)
		net                         *network.NetworkingConfig
		// ownEndpoints: createOptions names its endpoints, so NetworkMode
		// is left as it is rather than set to the runtime's network.
		ownEndpoints bool
	}{
		{name: "empty", module: "m", createOptions: "", net: onNetwork()},
		{name: "null", module: "m", createOptions: " null ", net: onNetwork()},
		{name: "empty-object", module: "m", createOptions: "{}", net: onNetwork()},
		{
			name: "pass-through", module: "m",
			createOptions: `{"Cmd": ["--verbose"], "User": "1000", "ExposedPorts": {"8883/tcp": {}},
				"Healthcheck": {"Test": ["CMD", "/probe"], "Interval": 1000000000, "Retries": 3},
				"HostConfig": {"Binds": ["/data:/data:ro"], "PortBindings": {"8883/tcp": [{"HostPort": "8883"}]},
					"Privileged": true, "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}}`,
			edit: func(c *container.Config, h *container.HostConfig) {
				c.Cmd = []string{"--verbose"}
				c.User = "1000"
				c.ExposedPorts = nat.PortSet{"8883/tcp": {}}
				c.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/probe"}, Interval: time.Second, Retries: 3}
				h.Binds = []string{"/data:/data:ro"}
				h.PortBindings = nat.PortMap{"8883/tcp": {{HostPort: "8883"}}}
				h.Privileged = true
				h.LogConfig = container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}}
			},
			net: onNetwork(),
		},
		{
			name: "keys-case-insensitive", module: "m",
			createOptions: `{"user": "app", "hostconfig": {"binds": ["/a:/b"]}}`,
			edit: func(c *container.Config, h *container.HostConfig) {
				c.User = "app"
				h.Binds = []string{"/a:/b"}
			},
			net: onNetwork(),
		},
		{
			name: "env-image-restart-replaced", module: "m",
			createOptions: `{"Image": "other:2", "Env": ["A=from-options", "B=2"], "HostConfig": {"RestartPolicy": {"Name": "always"}}}`,
			net:           onNetwork(),
		},
		{
			name: "labels-merged-spec-wins", module: "m",
			createOptions: `{"Labels": {"team": "edge", "` + agent.LabelModule + `": "spoofed"}}`,
			edit: func(c *container.Config, _ *container.HostConfig) {
				c.Labels["team"] = "edge"
			},
			net: onNetwork(),
		},
		{
			name: "own-endpoints-kept", module: "m",
			createOptions: `{"HostConfig": {"NetworkMode": "host"}, "NetworkingConfig": {"EndpointsConfig": {"host": {}}}}`,
			edit: func(_ *container.Config, h *container.HostConfig) {
				h.NetworkMode = "host"
			},
			net:          &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"host": {}}},
			ownEndpoints: true,
		},
		{
			name: "network-mode-alone-not-enough", module: "m",
			createOptions: `{"HostConfig": {"NetworkMode": "bridge"}}`,
			edit: func(_ *container.Config, h *container.HostConfig) {
				h.NetworkMode = "bridge"
			},
			net: onNetwork(),
		},
		{
			name: "network-mode-default-replaced", module: "m",
			createOptions: `{"HostConfig": {"NetworkMode": "default"}}`,
			net:           onNetwork(),
		},
		{name: "hub-alias", module: "edgeHub", createOptions: "{}", net: onNetwork("gw.example")},
		{
			name: "hub-alias-added-to-own-endpoint", module: "edgeHub",
			createOptions: `{"NetworkingConfig": {"EndpointsConfig": {"` + testNet + `": {"Aliases": ["hub"]}}}}`,
			net:           onNetwork("hub", "gw.example"),
			ownEndpoints:  true,
		},
		{
			name: "hub-alias-not-doubled", module: "edgeHub",
			createOptions: `{"NetworkingConfig": {"EndpointsConfig": {"` + testNet + `": {"Aliases": ["gw.example"]}}}}`,
			net:           onNetwork("gw.example"),
			ownEndpoints:  true,
		},
		{
			name: "hub-on-other-network-only", module: "edgeHub",
			createOptions: `{"NetworkingConfig": {"EndpointsConfig": {"other": null}}}`,
			net:           &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"other": nil}},
			ownEndpoints:  true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rt.createRequest(testSpec(tc.module, tc.createOptions))
			if err != nil {
				t.Fatalf("createRequest: %v", err)
			}
			cfg, hc := defaults(tc.module)
			if !tc.ownEndpoints {
				hc.NetworkMode = testNet
			}
			if tc.edit != nil {
				tc.edit(cfg, hc)
			}
			if !reflect.DeepEqual(got.Config, cfg) {
				t.Errorf("Config\n got %+v\nwant %+v", got.Config, cfg)
			}
			if !reflect.DeepEqual(got.HostConfig, hc) {
				t.Errorf("HostConfig\n got %+v\nwant %+v", got.HostConfig, hc)
			}
			if !reflect.DeepEqual(got.NetworkingConfig, tc.net) {
				t.Errorf("NetworkingConfig\n got %+v\nwant %+v", got.NetworkingConfig.EndpointsConfig, tc.net.EndpointsConfig)
			}
		})
	}
}

func TestCreateRequest_NoGatewayNoAlias(t *testing.T) {
	rt := newRuntime(&fakeEngine{}, Options{Network: testNet})
	got, err := rt.createRequest(testSpec("edgeHub", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.NetworkingConfig, onNetwork()) {
		t.Errorf("endpoints %+v, want the network without an alias", got.NetworkingConfig.EndpointsConfig)
	}
}

func TestCreateRequest_Invalid(t *testing.T) {
	rt := newRuntime(&fakeEngine{}, Options{})
	for _, tc := range []struct{ name, createOptions, want string }{
		{"not-json", `{"Env": [`, "unexpected EOF"},
		{"array", `[1]`, "cannot unmarshal array"},
		{"env-not-list", `{"Env": "A=1"}`, "Env"},
		{"hostconfig-wrong-type", `{"HostConfig": {"Binds": "/a:/b"}}`, "Binds"},
		{"trailing", `{} {}`, "text after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.createRequest(testSpec("m", tc.createOptions))
			if !errors.Is(err, ErrCreateOptions) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `module "m"`) {
				t.Errorf("error %v: want ErrCreateOptions naming the module and %q", err, tc.want)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		engine  *fakeEngine
		opts    Options
		spec    agent.ModuleSpec
		wantErr error  // errors.Is
		wantMsg string // in the message
		created bool
		netMade bool
	}{
		{name: "creates-network-then-container", engine: &fakeEngine{}, spec: testSpec("m", ""), created: true, netMade: true},
		{name: "network-exists", engine: &fakeEngine{networks: map[string]bool{DefaultNetwork: true}}, spec: testSpec("m", ""), created: true},
		{name: "own-network-not-ensured", engine: &fakeEngine{}, spec: testSpec("m", `{"NetworkingConfig": {"EndpointsConfig": {"host": {}}}}`), created: true},
		{
			name: "exists", engine: &fakeEngine{networks: map[string]bool{DefaultNetwork: true}, createErr: conflict(`Conflict. The container name "/m" is already in use`)},
			spec: testSpec("m", ""), wantErr: agent.ErrExists, wantMsg: "already in use",
		},
		{
			name: "image-missing", engine: &fakeEngine{networks: map[string]bool{DefaultNetwork: true}, createErr: notFound("image: example.azurecr.io/m:1")},
			spec: testSpec("m", ""), wantErr: agent.ErrImageNotFound,
		},
		{
			name: "other-404-not-image", engine: &fakeEngine{
				networks:  map[string]bool{DefaultNetwork: true},
				createErr: notFound("network: gone"),
				images:    map[string]image.InspectResponse{"example.azurecr.io/m:1": {ID: "sha256:1"}},
			},
			spec: testSpec("m", ""), wantMsg: "No such network: gone",
		},
		{
			name: "network-inspect-fails", engine: &fakeEngine{networkErr: errors.New("engine unreachable")},
			spec: testSpec("m", ""), wantMsg: "engine unreachable",
		},
		{name: "bad-options-no-engine-call", engine: &fakeEngine{}, spec: testSpec("m", "{"), wantErr: ErrCreateOptions},
		{name: "no-name", engine: &fakeEngine{}, spec: testSpec("", ""), wantErr: agent.ErrInvalidCommand},
		{name: "no-image", engine: &fakeEngine{}, spec: func() agent.ModuleSpec { s := testSpec("m", ""); s.Image = ""; return s }(), wantErr: agent.ErrInvalidCommand},
		{name: "require-digest-refuses-tag", engine: &fakeEngine{}, opts: Options{RequireDigest: true}, spec: testSpec("m", ""), wantErr: ErrUnpinned},
		{
			name: "require-digest-accepts-pinned", engine: &fakeEngine{networks: map[string]bool{DefaultNetwork: true}}, opts: Options{RequireDigest: true},
			spec: func() agent.ModuleSpec {
				s := testSpec("m", "")
				s.Image = "example.azurecr.io/m@sha256:" + strings.Repeat("ab", 32)
				return s
			}(),
			created: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRuntime(tc.engine, tc.opts)
			err := rt.Create(context.Background(), tc.spec)
			if tc.wantErr == nil && tc.wantMsg == "" && err != nil {
				t.Fatalf("Create: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Create: %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Errorf("Create: %v, want a message with %q", err, tc.wantMsg)
			}
			if tc.wantMsg != "" && errors.Is(err, agent.ErrImageNotFound) {
				t.Errorf("Create: %v: a 404 for something else is not a missing image", err)
			}
			if got := len(tc.engine.createdAs) == 1 && tc.engine.createErr == nil; got != tc.created {
				t.Errorf("container created: %v, want %v (calls %v)", got, tc.created, tc.engine.calls)
			}
			if got := len(tc.engine.networkCreated) == 1; got != tc.netMade {
				t.Errorf("network created: %v, want %v (calls %v)", got, tc.netMade, tc.engine.calls)
			}
		})
	}
}
