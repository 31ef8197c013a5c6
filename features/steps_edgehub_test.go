package features

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cucumber/godog"
)

// registerEdgeHubSteps: the real edge hub as edgeHub, its configuration,
// the network between the device and IoT Hub, and restarts.
func registerEdgeHubSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^edgeHub is Outpost's edge hub$`, w.realEdgeHub)
	sc.Step(`^edgeHub routes every message to IoT Hub$`, w.routeAllUpstream)
	sc.Step(`^edgeHub has these routes:$`, w.withRoutes)
	sc.Step(`^the store keeps messages for (\d+) seconds?$`, w.storeTTL)
	sc.Step(`^the store is capped at (\d+) bytes and (refuses new messages|drops the oldest messages) when full$`, w.storeCap)
	sc.Step(`^the deployment is applied and edgeHub is connected to IoT Hub$`, w.applyAndConnect)
	sc.Step(`^the network between the device and IoT Hub is cut$`, w.cut)
	sc.Step(`^the network is restored$`, w.restore)
	sc.Step(`^edgeHub is restarted$`, w.restartEdgeHub)
	sc.Step(`^IoT Hub drops the device's connections and refuses new ones as not authorized$`, w.refuseDevice)
	sc.Step(`^IoT Hub accepts the device's connections again$`, w.acceptDevice)
}

// realEdgeHub makes the deployment's edgeHub Outpost's edge hub, with no
// routes yet and the default TTL.
func (w *world) realEdgeHub() error {
	h, err := w.newHubSettings()
	if err != nil {
		return err
	}
	w.deployment.hub = h
	return nil
}

// hubSettings returns the deployment's edge hub settings.
func (w *world) hubSettings() (*hubSettings, error) {
	if w.deployment.hub == nil {
		return nil, fmt.Errorf(`the scenario needs "Given edgeHub is Outpost's edge hub" first`)
	}
	return w.deployment.hub, nil
}

func (w *world) routeAllUpstream() error {
	h, err := w.hubSettings()
	if err != nil {
		return err
	}
	h.routes["toCloud"] = hubRoute{text: "FROM /messages/* INTO $upstream"}
	return nil
}

// Columns of "edgeHub has these routes:"; name and route are required.
const (
	colRouteName     = "name"
	colRoute         = "route"
	colRoutePriority = "priority"
	colRouteTTL      = "time to live"
)

func (w *world) withRoutes(table *godog.Table) error {
	h, err := w.hubSettings()
	if err != nil {
		return err
	}
	rows, err := tableRows(table, colRouteName, colRoute, colRoutePriority, colRouteTTL)
	if err != nil {
		return err
	}
	for _, cell := range rows {
		if cell[colRouteName] == "" || cell[colRoute] == "" {
			return fmt.Errorf("a route needs a name and a route")
		}
		r := hubRoute{text: cell[colRoute]}
		if v := cell[colRoutePriority]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("priority %q: want 0 to 9", v)
			}
			r.priority = &n
		}
		if v := cell[colRouteTTL]; v != "" {
			n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
			if err != nil {
				return fmt.Errorf("time to live %q: want seconds such as 5s", v)
			}
			r.ttlSecs = &n
		}
		h.routes[cell[colRouteName]] = r
	}
	return nil
}

// tableRows reads a table with a header row into one map per row,
// refusing columns it does not know.
func tableRows(table *godog.Table, known ...string) ([]map[string]string, error) {
	if len(table.Rows) < 2 {
		return nil, fmt.Errorf("the table needs a header row and at least one row")
	}
	header := table.Rows[0].Cells
	for _, c := range header {
		ok := false
		for _, k := range known {
			ok = ok || c.Value == k
		}
		if !ok {
			return nil, fmt.Errorf("unknown column %q; known: %s", c.Value, strings.Join(known, ", "))
		}
	}
	var out []map[string]string
	for _, row := range table.Rows[1:] {
		cell := map[string]string{}
		for i, c := range row.Cells {
			cell[header[i].Value] = strings.TrimSpace(c.Value)
		}
		out = append(out, cell)
	}
	return out, nil
}

func (w *world) storeTTL(secs int) error {
	h, err := w.hubSettings()
	if err != nil {
		return err
	}
	h.ttlSecs = secs
	return nil
}

func (w *world) storeCap(bytes int64, policy string) error {
	h, err := w.hubSettings()
	if err != nil {
		return err
	}
	h.maxBytes = bytes
	h.fullPolicy = "reject-new"
	if policy == "drops the oldest messages" {
		h.fullPolicy = "drop-oldest"
	}
	return nil
}

// applyAndConnect applies the deployment and waits until edgeHub runs,
// connected to IoT Hub, with its configuration applied.
func (w *world) applyAndConnect(ctx context.Context) error {
	if _, err := w.hubSettings(); err != nil {
		return err
	}
	if err := w.apply(ctx); err != nil {
		return err
	}
	if err := w.moduleReported(ctx, "edgeHub", "running"); err != nil {
		return err
	}
	return w.waitHubConnected(ctx)
}

// cut cuts the network between the device and IoT Hub: the fake hub drops
// every connection and refuses new ones. It remembers the last message
// IoT Hub had, for "IoT Hub receives nothing".
func (w *world) cut(ctx context.Context) error {
	if err := w.api.cutNetwork(ctx); err != nil {
		return err
	}
	evs, err := w.receivedEvents(ctx)
	if err != nil {
		return err
	}
	w.mark = lastSeq(evs)
	return nil
}

// restore restores the network and waits until edgeHub is connected to
// IoT Hub again: a message sent from then on goes out at once.
func (w *world) restore(ctx context.Context) error {
	if err := w.api.restoreNetwork(ctx); err != nil {
		return err
	}
	return eventually(ctx, reportTimeout, "edgeHub reconnects to IoT Hub", w.hubLinkUp)
}

// restartEdgeHub restarts the edgeHub module through the edge agent's
// management API, as `edgectl restart edgeHub` (`iotedge restart edgeHub`)
// does, and waits until every connected client of the scenario has lost
// its connection and connected again: the witness that the hub really
// went away and came back.
func (w *world) restartEdgeHub(ctx context.Context) error {
	type counts struct{ ups, downs int }
	before := map[string]counts{}
	for name, c := range w.clients {
		if c.c != nil {
			u, d := c.connections()
			before[name] = counts{u, d}
		}
	}
	if len(before) == 0 {
		return fmt.Errorf("no module or leaf device is connected to witness the restart")
	}
	sock := filepath.Join(w.agentCfg.dataDir, "mgmt.sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: reportTimeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://edgeagent/modules/edgeHub/restart", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("the agent's management API (%s): %w", sock, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("restarting edgeHub through the agent's management API: %s", resp.Status)
	}
	return eventually(ctx, startTimeout, "every client lost its connection to edgeHub and connected again", func(context.Context) error {
		for name, b := range before {
			u, d := w.clients[name].connections()
			if d <= b.downs || u <= b.ups {
				return fmt.Errorf("%q: %d connection losses and %d connections, was %d and %d", name, d, u, b.downs, b.ups)
			}
		}
		return nil
	})
}

// refuseDevice makes IoT Hub refuse the device's credentials, as after a
// key was revoked: every new CONNECT gets CONNACK 5, and the established
// connections are dropped (a network cut and restore) so that edgeHub has
// to connect anew.
func (w *world) refuseDevice(ctx context.Context) error {
	if err := w.api.setRefuseAuth(ctx, true); err != nil {
		return err
	}
	if err := w.cut(ctx); err != nil {
		return err
	}
	return w.api.restoreNetwork(ctx)
}

// acceptDevice lets IoT Hub accept the device's connections again and
// waits until edgeHub is connected.
func (w *world) acceptDevice(ctx context.Context) error {
	if err := w.api.setRefuseAuth(ctx, false); err != nil {
		return err
	}
	return eventually(ctx, reportTimeout, "edgeHub reconnects to IoT Hub", w.hubLinkUp)
}
