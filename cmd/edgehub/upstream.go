package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/hub/perclient"
	"github.com/outpost-edge/outpost/runtime/hub/uplink"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// envConnectionString is the variable Azure's edge agent sets in edgeHub's environment:
// the edge hub's own module connection string.
const envConnectionString = "IotHubConnectionString"

// upstreamModule is the module identity the connection string must name.
const upstreamModule = "$edgeHub"

// Values of --upstream-mode.
const (
	// modeExtension: one connection as {edge}/$edgeHub carrying every client with Outpost's
	// $edgehub extension (runtime/upstream, runtime/hub/uplink; docs/upstream.md).
	modeExtension = "extension"
	// modePerClient: one plain IoT Hub connection per client, with the client's own token,
	// for an IoT Hub without the extension such as Azure's (runtime/hub/perclient).
	modePerClient = "per-client"
)

// addUpstreamFlags declares the flags of the upstream link.
func addUpstreamFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.upstreamCSFile, "upstream-connection-string-file", "",
		"file holding the edge hub's module connection string for IoT Hub (HostName=...;DeviceId={edge};ModuleId=$edgeHub;SharedAccessKey=...); "+
			"default: the "+envConnectionString+" environment variable; neither: no upstream link")
	fs.StringVar(&c.upstreamCAFile, "upstream-ca-file", "", "PEM roots that IoT Hub's certificate must chain to (default: the system roots)")
	fs.IntVar(&c.upstreamPort, "upstream-port", 0, fmt.Sprintf("IoT Hub's MQTT over TLS port (0: %d)", upstream.DefaultPort))
	fs.DurationVar(&c.identityRefresh, "identity-refresh", 0,
		fmt.Sprintf("how often the cached client identities are checked with IoT Hub (0: %v; extension mode only)", uplink.DefaultRefreshInterval))
	fs.StringVar(&c.upstreamMode, "upstream-mode", modeExtension,
		"how the hub reaches IoT Hub: "+modeExtension+" (one connection carrying every client, needs Outpost's $edgehub extension) or "+
			modePerClient+" (one plain connection per client with its own token, for Azure IoT Hub; the clients' keys must be in the identity cache, e.g. from --config)")
}

// resolveUpstream reads the edge hub's connection string, from --upstream-connection-string-file
// or else the IotHubConnectionString environment variable, checks that it names
// {edge}/$edgeHub with a key, and takes --iothub-hostname and --edge-device-id from it when
// they are not given (they must agree with it when they are). Without a connection string
// it leaves c alone: the hub runs without an upstream link.
func resolveUpstream(c *config, getenv func(string) string) error {
	text, source := strings.TrimSpace(getenv(envConnectionString)), "environment variable "+envConnectionString
	if c.upstreamCSFile != "" {
		b, err := os.ReadFile(c.upstreamCSFile)
		if err != nil {
			return fmt.Errorf("--upstream-connection-string-file: %w", err)
		}
		text, source = strings.TrimSpace(string(b)), "--upstream-connection-string-file "+c.upstreamCSFile
	}
	switch {
	case c.upstreamMode != modeExtension && c.upstreamMode != modePerClient:
		return fmt.Errorf("--upstream-mode %q: want %s or %s", c.upstreamMode, modeExtension, modePerClient)
	case c.upstreamMode == modePerClient && text == "":
		return fmt.Errorf("--upstream-mode %s needs the edge hub's connection string (--upstream-connection-string-file or %s)",
			modePerClient, envConnectionString)
	case c.upstreamPort < 0 || c.upstreamPort > 65535:
		return fmt.Errorf("--upstream-port %d: want a TCP port", c.upstreamPort)
	case c.identityRefresh < 0:
		return fmt.Errorf("--identity-refresh %v: want a positive duration", c.identityRefresh)
	case text == "":
		if c.upstreamCSFile != "" {
			return fmt.Errorf("%s is empty", source)
		}
		return nil
	}
	cs, err := sas.ParseConnectionString(text)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err) // the parser never quotes the key
	}
	switch {
	case cs.ModuleID != upstreamModule:
		return fmt.Errorf("%s: the connection string is for %q; the upstream link needs the edge hub's own module identity {edge}/%s",
			source, sas.Identity{DeviceID: cs.DeviceID, ModuleID: cs.ModuleID}, upstreamModule)
	case cs.SharedAccessKey == "":
		return fmt.Errorf("%s: the connection string has no SharedAccessKey (X.509 upstream authentication is not supported)", source)
	case c.edgeDeviceID != "" && c.edgeDeviceID != cs.DeviceID:
		return fmt.Errorf("--edge-device-id %q but %s is for device %q", c.edgeDeviceID, source, cs.DeviceID)
	case c.iotHubHostName != "" && !strings.EqualFold(c.iotHubHostName, cs.HostName):
		return fmt.Errorf("--iothub-hostname %q but %s is for %q", c.iotHubHostName, source, cs.HostName)
	}
	c.edgeDeviceID, c.iotHubHostName = cs.DeviceID, cs.HostName
	c.upstream = cs
	return nil
}

// edgeLink is the upstream link of a running hub: in extension mode the client and its hub
// adapter, in per-client mode the per-client link (pc). A nil *edgeLink is a hub without
// one.
type edgeLink struct {
	up   *upstream.Client
	link *uplink.Link
	pc   *perclient.Link
	srv  *hub.Server // set by start, before the link reports any change
	wg   sync.WaitGroup
}

// newLink builds the upstream link of --upstream-mode when a connection string is
// configured; nil otherwise.
func newLink(c config, ids *identities.Cache, logger *slog.Logger) (*edgeLink, error) {
	if c.upstream.HostName == "" {
		return nil, nil
	}
	if c.upstreamMode == modePerClient {
		l := &edgeLink{}
		pc, err := perclient.New(perclient.Options{
			Hub:          c.upstream,
			Keys:         ids,
			KeyChanges:   ids.Changes(),
			CAFile:       c.upstreamCAFile,
			Port:         c.upstreamPort,
			Logger:       logger,
			OnLinkChange: l.changed,
		})
		if err != nil {
			return nil, err
		}
		l.pc = pc
		return l, nil
	}
	up, err := upstream.New(upstream.Options{
		ConnectionString: c.upstream,
		CAFile:           c.upstreamCAFile,
		Port:             c.upstreamPort,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	l := &edgeLink{up: up}
	l.link = uplink.New(up, ids, uplink.Options{
		RefreshInterval: c.identityRefresh,
		Logger:          logger,
		OnLinkChange:    l.changed,
	})
	return l, nil
}

// changed tells the hub's relay that the link went up or down at once, rather than when it
// next polls.
func (l *edgeLink) changed(up bool) {
	if l.srv != nil {
		l.srv.CloudStateChanged(up)
	}
}

// deps adds the link to the hub's collaborators: telemetry, on-behalf-of authentication,
// presence, and the relay of twins, methods and C2D.
func (l *edgeLink) deps(d hub.Deps) hub.Deps {
	if l == nil {
		return d
	}
	if l.pc != nil {
		// The per-client link stands between the hub and the identity cache: it vouches for
		// the clients whose tokens it holds, so that every other client's token reaches
		// Resolve (see package perclient, "Authentication").
		d.Upstream, d.Resolver, d.Presence = l.pc, l.pc, l.pc
		d.Identities, d.IdentityChanges = l.pc, l.pc.Changes()
		if d.Twins != nil {
			d.Cloud = l.pc.Cloud()
		}
		return d
	}
	d.Upstream, d.Resolver, d.Presence = l.link, l.link, l.link
	if d.Twins != nil {
		d.Cloud = l.up
	}
	return d
}

// start runs the client and the adapter until ctx ends or the returned stop is called;
// stop returns once they have.
func (l *edgeLink) start(ctx context.Context, srv *hub.Server) (stop func()) {
	if l == nil {
		return func() {}
	}
	l.srv = srv
	ctx, cancel := context.WithCancel(ctx)
	runs := []func(context.Context) error{l.up.Run, l.link.Run}
	if l.pc != nil {
		runs = []func(context.Context) error{l.pc.Run}
	}
	for _, run := range runs {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			_ = run(ctx) // both return nil when ctx ends and log their own trouble
		}()
	}
	return func() {
		cancel()
		l.wg.Wait()
	}
}

// logReady says where messages routed to $upstream go.
func (l *edgeLink) logReady(logger *slog.Logger, c config) {
	if l == nil {
		logger.Warn("no upstream link configured (--upstream-connection-string-file or " + envConnectionString +
			"): messages routed to $upstream are kept in the store, and only identities in the cache can connect")
		return
	}
	port := c.upstreamPort
	if port == 0 {
		port = upstream.DefaultPort
	}
	if l.pc != nil {
		logger.Info("upstream link configured: one connection per client", "mode", modePerClient,
			"iothub_hostname", c.upstream.HostName, "port", port, "identity", c.upstream.DeviceID+"/"+upstreamModule)
		return
	}
	logger.Info("upstream link configured", "mode", modeExtension, "iothub_hostname", c.upstream.HostName, "port", port,
		"identity", c.upstream.DeviceID+"/"+upstreamModule, "identity_refresh", refreshOrDefault(c.identityRefresh))
}

func refreshOrDefault(d time.Duration) time.Duration {
	if d == 0 {
		return uplink.DefaultRefreshInterval
	}
	return d
}
