package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/store"
)

// movableStore is the store as the hub sees it: the *store.Store of one run of the hub,
// which is also a hub.StoreMover through the storeLocation (storeloc.go).
type movableStore struct {
	*store.Store
	loc *storeLocation
}

var _ hub.StoreMover = movableStore{}

// StoreFolder returns the folder of the store now.
func (m movableStore) StoreFolder() string { return m.loc.Folder() }

// PlanMove checks a folder named by the $edgeHub twin (storeLocation.plan).
func (m movableStore) PlanMove(requested string, version int64) (string, error) {
	return m.loc.plan(requested, version)
}

// MoveStore asks the serve loop to stop this run of the hub and move the store.
func (m movableStore) MoveStore(folder string, version int64) {
	m.loc.request(moveRequest{folder: folder, version: version})
}

// serveMovable runs the hub until ctx is done, in rounds: each round opens the store where
// storeLocation says, wires a hub.Server and its upstream link on it, and runs them until
// ctx is done or the hub asks for the store to move (its $edgeHub twin named another
// folder); the store is then closed and moved between two rounds (storeloc.go). The
// certificates, the listeners' addresses and the metrics address last across rounds;
// clients reconnect to the next round by themselves.
func serveMovable(ctx context.Context, c config, ic *initialConfig, logger *slog.Logger) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	tlsCerts, err := newServerCerts(ctx, c, logger.With("component", "certs")) // certsdir.go
	if err != nil {
		return err
	}
	loc, err := openStoreLocation(c.dataDir, c.certsDir, osMoveFS(), logger.With("component", "store-location"))
	if err != nil {
		return err
	}

	// Certificates are renewed (with --certs-dir: read again) in the background while the
	// hub runs: new handshakes get the renewed certificate, connected clients keep theirs
	// until they reconnect.
	certsCtx, stopCerts := context.WithCancel(ctx)
	certsDone := make(chan error, 1)
	go func() { certsDone <- tlsCerts.run(certsCtx) }()
	defer func() {
		stopCerts()
		<-certsDone
	}()

	for {
		req, err := serveRound(ctx, &c, ic, tlsCerts, loc, logger)
		if err != nil {
			return err
		}
		if req == nil {
			logger.Info("edgehub stopped")
			return nil
		}
		if err := loc.move(*req); err != nil {
			return err
		}
	}
}

// serveRound runs one hub on the store where loc says until ctx is done (nil) or the hub
// asks for a move (the request). The first round binds the listeners and the metrics
// server; c then holds their bound addresses, so that later rounds bind the same ones.
func serveRound(ctx context.Context, c *config, ic *initialConfig, tlsCerts serverCerts, loc *storeLocation, logger *slog.Logger) (*moveRequest, error) {
	ids, err := identities.Open(identities.Options{Path: filepath.Join(c.dataDir, identitiesFile)})
	if err != nil {
		return nil, err
	}
	defer ids.Close()
	twins, storeMaxBytes, err := openTwins(*c, logger) // twins.go
	if err != nil {
		return nil, err
	}
	defer twins.Close()
	policy, _ := parsePolicy(c.storeFullPolicy) // validated by parseConfig
	st, err := store.Open(store.Options{
		Path:       loc.storePath(),
		MaxBytes:   storeMaxBytes,
		FullPolicy: policy,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	defer st.Close()

	link, err := newLink(*c, ids, logger.With("component", "upstream"))
	if err != nil {
		return nil, err
	}
	loc.drain()
	srv, err := hub.New(hub.Options{
		IoTHubHostName:      c.iotHubHostName,
		GatewayHostName:     c.gatewayHostName,
		EdgeDeviceID:        c.edgeDeviceID,
		TLSAddr:             c.tlsAddr,
		TLS:                 tlsCerts.tls, // follows renewals without restarting the listener
		PlainAddr:           c.plainAddr,
		HTTPSAddr:           c.httpsAddr,
		MaxLocalMessageSize: c.maxMessageSize,
		Logger:              logger.With("component", "hub"),
	}, link.deps(hub.Deps{Store: movableStore{Store: st, loc: loc}, Identities: ids, IdentityChanges: ids.Changes(), Twins: twins}))
	if err != nil {
		return nil, err
	}
	// The next round listens where this one does (":0" resolved once).
	c.tlsAddr, c.plainAddr, c.httpsAddr = srv.TLSAddr(), srv.PlainAddr(), srv.HTTPSAddr()
	if err := applyInitialConfig(ctx, ic, ids, srv); err != nil {
		_ = srv.Close()
		return nil, err
	}

	// The store commits while the hub runs; it stops after the hub, so that every publish
	// the hub accepted is committed.
	storeCtx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- st.Run(storeCtx) }()
	defer func() {
		stopStore()
		<-storeDone
	}()

	metricsAddr, stopMetrics, err := startMetrics(*c, srv, st, logger)
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	defer stopMetrics()
	if metricsAddr != "" {
		c.metricsAddr = metricsAddr
	}

	logger.Info("edgehub ready",
		"tls_address", srv.TLSAddr(), "plain_address", srv.PlainAddr(),
		"edge_device_id", c.edgeDeviceID, "iothub_hostname", c.iotHubHostName,
		"gateway_hostname", c.gatewayHostName,
		"ca_file", tlsCerts.caPath, "metrics_address", metricsAddr, "https_address", srv.HTTPSAddr(),
		"store_folder", loc.Folder())
	link.logReady(logger, *c)

	// The hub stops when ctx is done or when it asks for a move.
	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	var req *moveRequest
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case r := <-loc.requests:
			req = &r
			logger.Info("stopping the hub to move the store; clients will reconnect", "from", loc.Folder(), "to", r.folder,
				"stored_messages", st.Stats().Messages)
			stopHub()
		case <-hubCtx.Done():
		}
	}()
	stopLink := link.start(hubCtx, srv) // the link stops after the hub
	err = srv.Run(hubCtx)
	stopLink()
	stopHub()
	<-watchDone
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		// Stopping anyway: the cached configuration asks for the move again at the next
		// start.
		return nil, nil
	}
	return req, nil
}
