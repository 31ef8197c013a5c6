package features

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The real edge hub as the edgeHub system module. The edge agent runs it
// from the deployment exactly as it would on a device: on Docker the image
// built FROM scratch from cmd/edgehub, pulled from the scenarios' registry;
// on the process runtime the cmd/edgehub binary found in the image
// directory. Its settings come from the deployment: its routes and
// store-and-forward settings from the $edgeHub desired properties, what a
// device's operator would set per device (ports, data directory, store
// policy) from EDGEHUB_* variables in edgeHub's env. The agent injects the
// rest (IotHubConnectionString, its own identity).

// Edge hub settings the scenarios do not vary.
const (
	// hubImageRepo is the edge hub's image repository; hubImageTag its tag.
	hubImageRepo = "edgehub"
	hubImageTag  = "1.0"
	// identityRefresh is EDGEHUB_IDENTITY_REFRESH: how soon the hub learns
	// that IoT Hub disabled or deleted an identity it cached.
	identityRefresh = time.Second
	// gatewayHost is the edge device's host name, where clients find the
	// edge hub, and the name in its server certificate.
	gatewayHost = "localhost"
)

// hubRoute is one route of the $edgeHub desired properties.
type hubRoute struct {
	text     string
	priority *int // nil: none (the default, lowest)
	ttlSecs  *int // nil: the store's
}

// hubSettings is the edge hub's part of a deployment.
type hubSettings struct {
	routes     map[string]hubRoute
	ttlSecs    int    // storeAndForwardConfiguration.timeToLiveSecs
	maxBytes   int64  // storeLimits.maxSizeBytes; 0 leaves it out
	fullPolicy string // EDGEHUB_STORE_FULL_POLICY; "" leaves the hub's default

	// Where it listens and keeps its data: fixed per scenario, so that a
	// restarted edge hub is where its clients look for it.
	dataDir            string
	tlsPort, httpsPort int
}

func (h *hubSettings) clone() *hubSettings {
	c := *h
	c.routes = maps.Clone(h.routes)
	return &c
}

// caFile is the edge CA the hub creates in its data directory at its first
// start: what modules and leaf devices trust (EdgeModuleCACertificateFile).
func (h *hubSettings) caFile() string { return filepath.Join(h.dataDir, "edge-ca.pem") }

// desired renders the $edgeHub desired properties, schema 1.1.
func (h *hubSettings) desired() map[string]any {
	routes := map[string]any{}
	for name, r := range h.routes {
		if r.priority == nil && r.ttlSecs == nil {
			routes[name] = r.text
			continue
		}
		spec := map[string]any{"route": r.text}
		if r.priority != nil {
			spec["priority"] = *r.priority
		}
		if r.ttlSecs != nil {
			spec["timeToLiveSecs"] = *r.ttlSecs
		}
		routes[name] = spec
	}
	sf := map[string]any{"timeToLiveSecs": h.ttlSecs}
	if h.maxBytes > 0 {
		sf["storeLimits"] = map[string]any{"maxSizeBytes": h.maxBytes}
	}
	return map[string]any{
		"schemaVersion":                "1.1",
		"routes":                       routes,
		"storeAndForwardConfiguration": sf,
	}
}

// newHubSettings picks the scenario's edge hub ports (free loopback ports)
// and data directory.
func (w *world) newHubSettings() (*hubSettings, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	return &hubSettings{
		routes:    map[string]hubRoute{},
		ttlSecs:   7200,
		dataDir:   filepath.Join(w.sc.dir, "edgehub"),
		tlsPort:   ports[0],
		httpsPort: ports[1],
	}, nil
}

// freePorts returns n TCP ports free on 127.0.0.1 right now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// edgeHubEntry renders systemModules.edgeHub for the real edge hub.
func (w *world) edgeHubEntry(h *hubSettings) map[string]any {
	_, upstreamPort, _ := strings.Cut(w.hub.mqttAddr, ":")
	env := map[string]string{
		"EDGEHUB_DATA_DIR":         h.dataDir,
		"EDGEHUB_TLS_ADDR":         "127.0.0.1:" + strconv.Itoa(h.tlsPort),
		"EDGEHUB_HTTPS_ADDR":       "127.0.0.1:" + strconv.Itoa(h.httpsPort),
		"EDGEHUB_GATEWAY_HOSTNAME": gatewayHost,
		"EDGEHUB_METRICS_ADDR":     "127.0.0.1:0", // not the fixed 9600 a demo may hold
		"EDGEHUB_UPSTREAM_PORT":    upstreamPort,
		"EDGEHUB_UPSTREAM_CA_FILE": w.agentCfg.caFile,
		"EDGEHUB_IDENTITY_REFRESH": identityRefresh.String(),
		"EDGEHUB_LOG_LEVEL":        "debug",
	}
	if h.fullPolicy != "" {
		env["EDGEHUB_STORE_FULL_POLICY"] = h.fullPolicy
	}
	opts := map[string]any{}
	w.s.be.decorateEdgeHub(w.sc, env, opts)
	envOut := map[string]any{}
	for k, v := range env {
		envOut[k] = map[string]any{"value": v}
	}
	settings := map[string]any{"image": w.s.be.image(hubImageRepo, hubImageTag)}
	b, _ := json.Marshal(opts) // maps of strings and slices: cannot fail
	for k, v := range chunkCreateOptions(string(b)) {
		settings[k] = v
	}
	return map[string]any{
		"type":          "docker",
		"status":        "running",
		"restartPolicy": "always",
		"settings":      settings,
		"env":           envOut,
	}
}

// waitHubConnected waits until the edge hub has applied the $edgeHub
// configuration last deployed (it reports lastDesiredStatus 200 for that
// desired version) and holds its connection to IoT Hub.
func (w *world) waitHubConnected(ctx context.Context) error {
	t, err := w.api.moduleTwin(ctx, edgeDevice, "$edgeHub")
	if err != nil {
		return err
	}
	want, _ := number(t.Properties.Desired["$version"])
	return eventually(ctx, startTimeout, "edgeHub runs, connected to IoT Hub, with the deployed configuration", func(ctx context.Context) error {
		if err := w.hubLinkUp(ctx); err != nil {
			return err
		}
		t, err := w.api.moduleTwin(ctx, edgeDevice, "$edgeHub")
		if err != nil {
			return err
		}
		code, desc, ok := lastDesiredStatus(t.Properties.Reported)
		got, _ := number(t.Properties.Reported["lastDesiredVersion"])
		if !ok || code != 200 || got < want {
			return fmt.Errorf("$edgeHub reports lastDesiredStatus %d %q for desired version %d, want 200 for %d", code, desc, got, want)
		}
		return nil
	})
}

// edgeHubClientID is the client id of the edge hub's connection to IoT Hub.
var edgeHubClientID = edgeDevice + "/$edgeHub"

// hubLinkUp checks that IoT Hub has a connection from the edge hub.
func (w *world) hubLinkUp(ctx context.Context) error {
	conns, err := w.api.connections(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(conns, func(c hubConnection) bool { return c.ClientID == edgeHubClientID }) {
		return fmt.Errorf("IoT Hub has no connection from %s; connections: %s", edgeHubClientID, compactJSON(conns))
	}
	return nil
}

// hubLog returns the edge hub's output so far, for diagnostics.
func (w *world) hubLog(ctx context.Context) string {
	return w.s.be.moduleLog(ctx, w.sc, w.agentCfg.dataDir, "edgeHub")
}
