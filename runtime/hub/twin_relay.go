package hub

import (
	"context"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// linkPollInterval is how often the hub checks Cloud.Connected to notice that the link
// came back, for when nobody calls CloudStateChanged.
const linkPollInterval = 500 * time.Millisecond

// initRelay builds the parts that relay twins, methods and C2D between IoT Hub and the
// local clients, and keep the hub's own configuration (twin*.go, method*.go, c2d*.go,
// config_*.go), and registers the Cloud handlers. New calls it.
func (s *Server) initRelay() {
	s.methods = newMethodCalls(s)
	s.c2d = newC2DPumps(s)
	if s.deps.Twins != nil {
		s.twins = newTwinSync(s)
	}
	if s.deps.Cloud == nil {
		return
	}
	s.hubCfg = newConfigSync(s)
	s.deps.Cloud.OnDesired(s.onCloudDesired)
	s.deps.Cloud.OnMethod(s.onCloudMethod)
	s.deps.Cloud.OnC2D(s.onCloudC2D)
}

// applyCachedConfig applies the $edgeHub configuration cached by an earlier run, if any.
// Run calls it before serving, so it replaces a configuration applied with ApplyConfig
// before Run: the twin's configuration is the authoritative one.
func (s *Server) applyCachedConfig() {
	if s.hubCfg != nil {
		s.hubCfg.applyCached()
	}
}

// startRelay starts the relay's goroutines under ctx; Run calls it once serving.
func (s *Server) startRelay(ctx context.Context) {
	s.c2d.run(ctx)
	s.serveMethods()
	if s.hubCfg != nil {
		s.bg.goFunc(func() { s.hubCfg.run(ctx) })
	}
	if s.twins != nil {
		s.bg.goFunc(func() { s.twins.runFlusher(ctx) })
	}
	if s.deps.Cloud != nil {
		s.bg.goFunc(func() { s.watchLink(ctx) })
	}
}

// stopRelay waits for the relay's goroutines after Run's ctx ended.
func (s *Server) stopRelay() {
	s.closeMethods()
	s.bg.close()
	s.c2d.wait()
}

// CloudStateChanged tells the hub that the link to IoT Hub went down (false) or came back
// (true). Whoever reads upstream.Client.States (a channel with one reader) should pass every
// value on: the hub then resynchronises twins, flushes reported properties and re-reads its
// configuration at once, even after an outage too short for the hub's own polling of
// Cloud.Connected to notice. Safe to call from any goroutine, before or during Run.
func (s *Server) CloudStateChanged(up bool) {
	if !up {
		s.linkUp.Store(false)
		return
	}
	if !s.linkUp.Swap(true) {
		s.onLinkUp()
	}
}

// watchLink polls Cloud.Connected and reports rising edges until ctx ends.
func (s *Server) watchLink(ctx context.Context) {
	t := time.NewTicker(linkPollInterval)
	defer t.Stop()
	for {
		s.CloudStateChanged(s.deps.Cloud.Connected())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// onLinkUp runs the reconnection work: resync every subscribed client's desired
// properties, flush reported patches, re-read the hub's configuration. It only signals.
func (s *Server) onLinkUp() {
	s.log.Debug("link to IoT Hub up: resynchronising twins and configuration")
	if s.twins != nil {
		s.twins.linkUp()
	}
	if s.hubCfg != nil {
		s.hubCfg.linkUp()
	}
}

// relayHook tells the relay about connections and subscriptions: a subscription to
// desired patches triggers a desired resync, one to C2D (or a connection keeping it) wakes
// the device's C2D pump, connections and subscriptions wake method calls waiting for
// their target, and the hub's reported "clients" follow connections. It is added after
// the authentication hook, so the registry is up to date when it runs.
type relayHook struct {
	mqtt.HookBase
	s      *Server
	active sync.Map // *mqtt.Client -> sas.Identity: connections whose session was established
}

func (h *relayHook) ID() string { return "outpost-relay" }

func (h *relayHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnSubscribed, mqtt.OnDisconnect:
		return true
	}
	return false
}

func (h *relayHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	s := h.s
	c, ok := s.conns.get(cl.ID)
	if !ok || c.cl != cl {
		return
	}
	id := c.creds.identity
	h.active.Store(cl, id)
	if s.hubCfg != nil {
		s.hubCfg.report.connected(id, s.opts.Now())
	}
	s.methods.clientsChanged()
	// A client that kept its session (CleanSession=0) is subscribed already.
	if s.twins != nil && s.subscribedTo(cl.ID, iothub.KindTwinPatchDesired) {
		s.twins.requestResync(id)
	}
	if id.ModuleID == "" {
		s.c2d.wake(id.DeviceID)
	}
}

func (h *relayHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	s := h.s
	id, ok := identityOf(cl.ID)
	if !ok {
		return
	}
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] >= packets.ErrUnspecifiedError.Code {
			continue // refused
		}
		sub, err := iothub.ParseFilter(f.Filter)
		if err != nil {
			continue
		}
		switch sub.Kind {
		case iothub.KindTwinPatchDesired:
			if s.twins != nil {
				s.twins.requestResync(id)
			}
		case iothub.KindC2D:
			s.c2d.wake(id.DeviceID)
		case iothub.KindMethodRequest:
			s.methods.clientsChanged()
		}
	}
}

func (h *relayHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	s := h.s
	v, established := h.active.LoadAndDelete(cl)
	if !established || s.hubCfg == nil {
		return
	}
	if c, ok := s.conns.get(cl.ID); ok && c.cl != cl {
		return // a newer connection took over the identity
	}
	s.hubCfg.report.disconnected(v.(sas.Identity), s.opts.Now())
}

// group runs the relay's goroutines and waits for them; once closed it starts none.
type group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// goFunc runs fn on a new goroutine and reports true, or reports false once close began.
func (g *group) goFunc(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// close stops new goroutines and waits for the running ones.
func (g *group) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
