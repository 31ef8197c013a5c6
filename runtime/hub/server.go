package hub

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/mqttlog"
)

// Capabilities sized on purpose (mochi's defaults suit a general-purpose broker).
const (
	// maxClientWritesPending sizes mochi's per-connection outbound queue. The hub writes
	// what it originates straight to the connection (deliver.go) and never uses mochi's
	// fan-out, so this queue carries nothing in normal operation; 64 pointers per
	// connection instead of mochi's 8192 keeps a hundred idle clients from reserving
	// 6 MB of channel buffers, and a full queue would drop (and count) rather than grow.
	maxClientWritesPending = 64
	// packetOverhead is what an MQTT PUBLISH adds to its payload at most: fixed header
	// (1 byte + up to 4 of length), topic length (2), packet id (2).
	packetOverhead = 9
	// sessionExpiry is how long mochi keeps the session (subscriptions) of a client that
	// disconnected with CleanSession=0. Sessions are per identity, so at most one each.
	sessionExpiry = 24 * time.Hour
	// sysTopicInterval: mochi publishes $SYS statistics every interval to subscribers;
	// no client may subscribe to them here, so do it rarely.
	sysTopicInterval = 3600
)

// Server is the edge hub's MQTT side: a mochi broker speaking IoT Hub's device/module
// dialect, the routes, and the endpoint pumps. Create it with New, apply a configuration
// with ApplyConfig, and Run it.
type Server struct {
	opts  Options
	deps  Deps
	log   *slog.Logger
	mochi *mqtt.Server
	lns   []*trackingListener

	auth     authenticator
	conns    *registry
	delivery *deliverer
	pumps    *pumpSet
	presence *presence // Deps.Presence's view of the clients (presence.go)
	stats    counters
	routing  atomic.Pointer[routing]

	// Twins, direct methods, C2D and the $edgeHub configuration (twin_relay.go): twins is
	// nil without Deps.Twins, hubCfg without Deps.Cloud.
	twins   *twinSync
	methods *methodCalls
	c2d     *c2dPumps
	hubCfg  *configSync
	bg      group
	httpsLn *methodListener // Options.HTTPSAddr (method_http.go)
	linkUp  atomic.Bool     // the link to IoT Hub as last seen (CloudStateChanged)

	running atomic.Bool
	ctxMu   sync.RWMutex
	ctx     context.Context // Run's context, for work done in mochi's goroutines
}

// New validates the options, binds the listeners (so TLSAddr and PlainAddr work at once)
// and returns a Server ready to Run. Run releases the listeners when it returns; a Server
// that will not be run must be Closed. Until ApplyConfig is called there are no routes:
// messages are acknowledged and dropped.
func New(opts Options, deps Deps) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:  o,
		deps:  deps,
		log:   o.Logger,
		conns: newRegistry(),
		ctx:   context.Background(),
	}
	for _, h := range []string{o.IoTHubHostName, o.GatewayHostName} {
		if h != "" {
			s.auth.hosts = append(s.auth.hosts, h)
		}
	}
	s.auth.identities = deps.Identities
	s.auth.resolver = deps.Resolver
	s.routing.Store(&routing{})

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(o.MaxLocalMessageSize + iothub.MaxTopicLength + packetOverhead)
	caps.MaximumClientWritesPending = maxClientWritesPending
	caps.MaximumQos = 1             // subscriptions are granted min(requested, 1)
	caps.MinimumProtocolVersion = 4 // MQTT 3.1 gets CONNACK 0x01; MQTT 5 is refused in OnConnect
	caps.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)
	caps.SharedSubAvailable = 0
	s.mochi = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 slog.New(mqttlog.Handler{Handler: o.Logger.Handler()}).With("broker", "mochi"),
		SysTopicResendInterval: sysTopicInterval,
	})
	s.delivery = newDeliverer(s.mochi)
	s.pumps = newPumpSet(s)
	s.presence = newPresence(s, deps.Presence)
	s.initRelay()
	// Order matters for OnPacketRead: the QoS 2 refusal runs before anything else.
	hooks := []mqtt.Hook{&authHook{s: s}, &aclHook{s: s}, &deliveryHook{s: s}, &ingestHook{s: s}}
	if deps.Presence != nil {
		hooks = append(hooks, &presenceHook{s: s}) // after authHook, whose registry it reads
	}
	hooks = append(hooks, &relayHook{s: s}) // after authHook too (twin_relay.go)
	for _, h := range hooks {
		if err := s.mochi.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("hook %s: %w", h.ID(), err)
		}
	}
	if err := s.listen("tls", o.TLSAddr, o.TLS); err != nil {
		return nil, err
	}
	if err := s.listen("plain", o.PlainAddr, nil); err != nil {
		s.closeListeners()
		return nil, err
	}
	if err := s.listenMethods(); err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, nil
}

func (s *Server) listen(id, addr string, cfg *tls.Config) error {
	if addr == "" {
		return nil
	}
	l, err := newTrackingListener(addr, cfg, s.opts.ConnectTimeout, s.log.With("listener", id))
	if err != nil {
		return fmt.Errorf("listen %s %q: %w", id, addr, err)
	}
	if err := s.mochi.AddListener(listeners.NewNet(id, l)); err != nil {
		l.closeAll()
		return fmt.Errorf("listener %s: %w", id, err)
	}
	s.lns = append(s.lns, l)
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range s.lns {
		l.closeAll()
	}
	s.closeMethods()
}

// TLSAddr returns the bound address of the TLS listener ("" without one), e.g. to learn
// the port chosen for "127.0.0.1:0".
func (s *Server) TLSAddr() string { return s.addr(s.opts.TLS) }

// PlainAddr returns the bound address of the plain listener ("" without one).
func (s *Server) PlainAddr() string { return s.addr(nil) }

func (s *Server) addr(cfg *tls.Config) string {
	for _, l := range s.lns {
		if (l.tls != nil) == (cfg != nil) {
			return l.Addr().(*net.TCPAddr).String()
		}
	}
	return ""
}

// Stats returns the hub's counters and gauges.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	st.Clients = s.conns.count()
	st.Sent = s.pumps.sent()
	return st
}

// Run serves MQTT and runs the pumps until ctx ends, then closes every connection and
// returns nil once all of the hub's goroutines have returned. It does not close the Store
// or the Identities, which the caller owns. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	s.ctxMu.Lock()
	s.ctx = ctx
	s.ctxMu.Unlock()

	// Queues left by an earlier run (or by routes since removed) drain too.
	for _, q := range s.deps.Store.Queues() {
		if ep, ok := endpointOf(q); ok {
			s.pumps.ensure(ep)
		} else if d, ok := c2dDevice(q); ok {
			s.c2d.ensure(d) // C2D messages waiting for a leaf device (c2d.go)
		} else {
			s.log.Warn("store queue is not an endpoint of this hub; left alone", "queue", q)
		}
	}
	s.applyCachedConfig() // before serving: a hub booting offline routes its first message
	if err := s.mochi.Serve(); err != nil {
		s.closeListeners()
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("edge hub serving", "tls", s.TLSAddr(), "plain", s.PlainAddr())
	s.startRelay(ctx)
	s.pumps.run(ctx)
	presenceDone := s.presence.start(ctx)

	tick := time.NewTicker(s.opts.RevalidateInterval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-s.deps.IdentityChanges:
			s.Revalidate(ctx)
		case <-tick.C:
			s.Revalidate(ctx)
		}
	}

	// Close the sockets first: mochi's Close sends DISCONNECT to each client and then
	// waits for every client goroutine, which could block on a client that stopped
	// reading. Publishes blocked in the store see ctx ended and are refused (no PUBACK).
	s.closeListeners()
	err := s.mochi.Close()
	s.pumps.wait()
	<-presenceDone
	s.stopRelay()
	s.log.Info("edge hub stopped")
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// Close releases the listeners of a Server that will not be run (Run releases them
// itself). It returns ErrRunning when Run was called, and Run returns ErrRunning after it.
func (s *Server) Close() error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	s.closeListeners()
	return nil
}

// baseContext is Run's context (Background before Run), for work done in mochi's
// goroutines: authentication and store appends end when the hub stops.
func (s *Server) baseContext() context.Context {
	s.ctxMu.RLock()
	defer s.ctxMu.RUnlock()
	return s.ctx
}

// Revalidate checks every connected client's token again against the current identities
// and clock, and closes the connections that would not be accepted now: identity removed
// or disabled, keys changed, token expired (beyond the 5-minute skew). It returns how many
// it closed. Run calls it every Options.RevalidateInterval and whenever
// Deps.IdentityChanges fires.
func (s *Server) Revalidate(ctx context.Context) int {
	closed := 0
	now := s.opts.Now()
	for _, c := range s.conns.all() {
		if c.cl.Closed() {
			continue // closed already, its OnDisconnect has not run yet
		}
		actx, cancel := context.WithTimeout(ctx, s.opts.AuthTimeout)
		_, err := s.auth.verify(actx, c.creds.token, c.creds.identity, now)
		cancel()
		if err == nil || ctx.Err() != nil {
			continue
		}
		closed++
		s.stats.revoked.Add(1)
		s.log.Info("closing connection: its credentials are no longer valid", "client_id", c.cl.ID, "err", err)
		c.cl.Stop(fmt.Errorf("%w: %w", ErrNotAuthorized, err))
	}
	return closed
}
