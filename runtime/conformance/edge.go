package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/hub/uplink"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// The edge hub runs in-process, wired by hand as cmd/edgehub wires it (store, identity
// cache, twin cache, upstream client and adapter to the fake IoT Hub), so that the checks
// read its Stats and its log lines directly and a restart is a stop and a start of the
// same wiring over the same data directory and the same address: what an edgeHub
// container restart looks like to a module.

// Files in the edge hub's data directory (as cmd/edgehub names them).
const (
	hubIdentitiesFile = "identities.db"
	hubTwinsFile      = "twins.db"
	hubStoreFile      = "store.db"
)

// Timings of the harness's edge hub: short back-offs so that a run takes seconds.
const (
	hubRetryMin     = 100 * time.Millisecond
	hubRetryMax     = time.Second
	hubReportedSync = 200 * time.Millisecond
	hubAckTimeout   = 10 * time.Second
	linkReconnect   = 100 * time.Millisecond
	hubStopTimeout  = 15 * time.Second
)

// edgeHub is the harness's edge hub: its fixed configuration and the running instance.
type edgeHub struct {
	dir      string
	opts     hub.Options // TLSAddr becomes the bound address after the first start
	upstream sas.ConnectionString
	upCAFile string
	upPort   int
	routes   *deployment.HubConfig
	seed     []identities.Record
	events   *eventLog
	logger   *slog.Logger

	certs    *certs.Manager
	caFile   string
	starts   int
	instance *hubInstance
}

// hubInstance is one start of the edge hub.
type hubInstance struct {
	srv     *hub.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	runErr  error
	closers []func() error
}

// newEdgeHub prepares the data directory and the edge CA (a fresh one per run: the module
// can only trust the hub through EdgeModuleCACertificateFile).
func newEdgeHub(dir string, opts hub.Options, up sas.ConnectionString, upCAFile string, upPort int,
	routes *deployment.HubConfig, seed []identities.Record, events *eventLog, logger *slog.Logger) (*edgeHub, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge hub data directory: %w", err)
	}
	co := certs.Options{Dir: dir, Names: certs.Names(opts.GatewayHostName), Logger: logger}
	cm, err := certs.New(co)
	if err != nil {
		return nil, fmt.Errorf("edge hub certificates: %w", err)
	}
	opts.TLS = cm.TLSConfig()
	return &edgeHub{dir: dir, opts: opts, upstream: up, upCAFile: upCAFile, upPort: upPort, routes: routes,
		seed: seed, events: events, logger: logger, certs: cm, caFile: co.CAPath()}, nil
}

// start opens the edge hub's files and runs a new instance on the same address as the
// previous one (a random loopback port the first time).
func (e *edgeHub) start(ctx context.Context) error {
	if e.instance != nil {
		return errors.New("edge hub already running")
	}
	e.starts++
	e.events.setInstance(e.starts)
	inst := &hubInstance{}
	fail := func(err error) error {
		inst.close()
		return err
	}
	ids, err := identities.Open(identities.Options{Path: filepath.Join(e.dir, hubIdentitiesFile)})
	if err != nil {
		return fail(fmt.Errorf("identity cache: %w", err))
	}
	inst.closers = append(inst.closers, ids.Close)
	// The identities are cached up front, as after a first connection through the link,
	// so that the module's reconnection after the restart does not wait for the link.
	for _, r := range e.seed {
		if err := ids.Put(ctx, r); err != nil {
			return fail(fmt.Errorf("identity cache: %w", err))
		}
	}
	twins, err := twincache.Open(twincache.Options{Path: filepath.Join(e.dir, hubTwinsFile)})
	if err != nil {
		return fail(fmt.Errorf("twin cache: %w", err))
	}
	inst.closers = append(inst.closers, twins.Close)
	// NoSync: the harness restarts the hub process-internally, never the machine, so the
	// store keeps every acknowledged message without paying for fsync.
	st, err := store.Open(store.Options{Path: filepath.Join(e.dir, hubStoreFile), NoSync: true, Logger: e.logger})
	if err != nil {
		return fail(fmt.Errorf("store: %w", err))
	}
	inst.closers = append(inst.closers, st.Close)
	up, err := upstream.New(upstream.Options{
		ConnectionString: e.upstream, CAFile: e.upCAFile, Port: e.upPort,
		ReconnectMin: linkReconnect, ReconnectMax: hubRetryMax, Logger: e.logger.With("component", "upstream"),
	})
	if err != nil {
		return fail(fmt.Errorf("upstream link: %w", err))
	}
	var srvp atomic.Pointer[hub.Server]
	link := uplink.New(up, ids, uplink.Options{
		Logger: e.logger.With("component", "uplink"),
		OnLinkChange: func(up bool) {
			if s := srvp.Load(); s != nil {
				s.CloudStateChanged(up)
			}
		},
	})
	opts := e.opts
	opts.Logger = slog.New(&captureHandler{log: e.events, next: e.logger.With("component", "hub").Handler()})
	srv, err := hub.New(opts, hub.Deps{
		Store: st, Identities: ids, IdentityChanges: ids.Changes(), Twins: twins,
		Upstream: link, Resolver: link, Presence: link, Cloud: up,
	})
	if err != nil {
		return fail(fmt.Errorf("edge hub: %w", err))
	}
	if err := srv.ApplyConfig(e.routes); err != nil {
		_ = srv.Close()
		return fail(fmt.Errorf("edge hub routes: %w", err))
	}
	srvp.Store(srv)
	e.opts.TLSAddr = srv.TLSAddr()
	inst.srv = srv

	// The store and the link stop after the hub, so that every publish the hub accepted
	// is committed (cmd/edgehub's order).
	storeCtx, stopStore := context.WithCancel(context.Background())
	linkCtx, stopLink := context.WithCancel(context.Background())
	hubCtx, stopHub := context.WithCancel(context.Background())
	storeDone, linkDone := make(chan struct{}), make(chan struct{})
	inst.wg.Add(1)
	go func() {
		defer inst.wg.Done()
		defer close(storeDone)
		_ = st.Run(storeCtx) // returns nil when stopped; trouble is logged
	}()
	var linkWG sync.WaitGroup
	for _, run := range []func(context.Context) error{up.Run, link.Run} {
		linkWG.Add(1)
		go func() {
			defer linkWG.Done()
			_ = run(linkCtx) // both return nil when ctx ends and log their own trouble
		}()
	}
	go func() {
		linkWG.Wait()
		close(linkDone)
	}()
	inst.wg.Add(1)
	go func() {
		defer inst.wg.Done()
		inst.runErr = srv.Run(hubCtx)
		stopLink()
		<-linkDone
		stopStore()
		<-storeDone
	}()
	inst.cancel = stopHub // the instance outlives the start call's ctx; stop ends it
	e.instance = inst
	return nil
}

// stop stops the running instance and closes its files, waiting at most hubStopTimeout.
func (e *edgeHub) stop() error {
	inst := e.instance
	if inst == nil {
		return nil
	}
	e.instance = nil
	inst.cancel()
	done := make(chan struct{})
	go func() {
		inst.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(hubStopTimeout):
		return fmt.Errorf("%w: the edge hub did not stop within %v", ErrHarness, hubStopTimeout)
	}
	err := inst.close()
	if inst.runErr != nil {
		return fmt.Errorf("edge hub: %w", inst.runErr)
	}
	return err
}

// stats returns the running instance's counters (zero when stopped).
func (e *edgeHub) stats() hub.Stats {
	if e.instance == nil {
		return hub.Stats{}
	}
	return e.instance.srv.Stats()
}

// close closes the instance's files, newest first.
func (inst *hubInstance) close() error {
	var errs []error
	for i := len(inst.closers) - 1; i >= 0; i-- {
		errs = append(errs, inst.closers[i]())
	}
	inst.closers = nil
	return errors.Join(errs...)
}
