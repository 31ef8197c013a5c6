package fakehub

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// outQueueSize bounds the packets the hub has queued for one connection. A client that lets
// it fill up is not reading; the hub closes its connection (it reconnects and resyncs)
// rather than buffering without bound.
const outQueueSize = 1024

// conn is one authenticated MQTT connection. Fields set before the connection is
// established are immutable afterwards; the others are guarded by Server.mu.
type conn struct {
	connID       string
	cl           *mqtt.Client
	key          string // identity key, also the MQTT client id
	ident        sas.Identity
	remote       string
	tls          bool
	connectedAt  time.Time
	generationID string
	modelID      string
	authType     string   // "sas" or "x509Certificate"
	authScope    string   // "device", "module" or "hub"
	obo          *oboConn // an edge hub's connection ({edge}/$edgeHub): extension state (obo.go)

	out       chan outItem
	done      chan struct{}
	closeOnce sync.Once

	will         *mqtt.Will      // the CONNECT's will message, if any
	killSession  bool            // end the MQTT session too when the connection ends
	subDecisions map[string]bool // filters of the SUBSCRIBE being processed
}

// outItem is a packet the hub sends on a connection.
type outItem struct {
	topic   string
	payload []byte
	qos     byte
	c2d     *c2dEntry // set for C2D messages; QoS 1 ones are tracked until PUBACK
}

// effects collects what must happen after Server.mu is released.
type effects struct {
	stop        []*mqtt.Client // connections to close
	endSessions []*mqtt.Client // disconnected sessions to forget
	pump        []string       // devices whose C2D queue should be delivered
}

func (s *Server) apply(e effects) {
	s.stopClients(e.stop)
	for _, cl := range e.endSessions {
		s.endSession(cl)
	}
	for _, d := range e.pump {
		s.deliverC2D(d)
	}
}

// sessionEstablish runs after authentication, before mochi inherits an earlier session with
// the same client id and before the CONNACK is written. It makes the connection the
// identity's current one here, so that whoever sees the CONNACK also sees the identity
// Connected. One connection per identity (protocol notes 1.9): the earlier connection's
// socket is closed first, so that mochi does not write its MQTT 5 DISCONNECT to a 3.1.1
// client, and the inflight messages of the earlier session are dropped, so that pending C2D
// messages are redelivered by the hub (from its queue) instead of being resent by mochi.
func (s *Server) sessionEstablish(cl *mqtt.Client) {
	srv := s.broker.Load()
	if srv == nil {
		return
	}
	if old, ok := srv.Clients.Get(cl.ID); ok && old != cl {
		if !old.Closed() {
			old.Stop(errTakenOver)
		}
		old.ClearInflights()
	}
	now := s.now()
	var e effects
	s.mu.Lock()
	c := s.authed[cl]
	delete(s.authed, cl)
	if c == nil || s.conns == nil {
		s.mu.Unlock()
		cl.Stop(errDropped)
		return
	}
	c.cl = cl
	c.connID = strconv.FormatUint(s.connSeq.Add(1), 10)
	c.connectedAt = now
	c.out = make(chan outItem, outQueueSize)
	c.done = make(chan struct{})
	s.conns[cl] = c
	if prev := s.online[c.key]; prev != nil && prev.cl != cl {
		e.stop = append(e.stop, prev.cl)
	}
	s.online[c.key] = c
	s.setConnectionStateLocked(c, stateConnected, now)
	if rec := s.twins[c.key]; rec != nil && c.modelID != "" && rec.ModelID != c.modelID {
		nrec := &twinRecord{Twin: rec.Twin, ModelID: c.modelID}
		if err := s.saveTwinLocked(c.key, nrec); err != nil {
			s.log.Warn("cannot record the model id", "identity", c.key, "err", err)
		}
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.writeLoop(c)
	s.log.Info("MQTT client connected", "identity", c.key, "remote", c.remote, "tls", c.tls, "auth", c.authType)
	s.apply(e)
}

var errTakenOver = errors.New("a newer connection of the same identity took over (IoT Hub error 400027)")

// sessionEstablished runs after the CONNACK was written and the session (its
// subscriptions) inherited: pending C2D messages can go out, and method invocations waiting
// for the identity can look at its subscriptions.
func (s *Server) sessionEstablished(cl *mqtt.Client) {
	s.mu.Lock()
	c := s.conns[cl]
	if c != nil {
		s.signalLocked()
	}
	s.mu.Unlock()
	if c != nil && c.ident.ModuleID == "" {
		s.deliverC2D(c.ident.DeviceID)
	}
}

// disconnected forgets a connection that ended.
func (s *Server) disconnected(cl *mqtt.Client, cause error) {
	now := s.now()
	var e effects
	s.mu.Lock()
	c := s.conns[cl]
	delete(s.authed, cl)
	if c == nil {
		s.mu.Unlock()
		return
	}
	delete(s.conns, cl)
	if s.online[c.key] == c {
		delete(s.online, c.key)
		s.setConnectionStateLocked(c, stateDisconnected, now)
	}
	if c.ident.ModuleID == "" {
		// Messages in flight on this connection become pending again; if another connection
		// of the device is already up, deliver them there.
		for _, entry := range s.c2d[c.ident.DeviceID] {
			if entry.cl == cl {
				entry.cl, entry.pid = nil, 0
			}
		}
		if s.online[c.key] != nil {
			e.pump = append(e.pump, c.ident.DeviceID)
		}
	}
	if c.obo != nil {
		s.oboDisconnectedLocked(c, now, &e)
	}
	kill := c.killSession
	s.signalLocked()
	s.mu.Unlock()
	c.closeOnce.Do(func() { close(c.done) })
	// The will goes out unless the client ended with DISCONNECT. Mochi's own will handling
	// depends on where its read loop was when the hub closed the socket, so the hub decides
	// here, once, from the stop cause.
	if c.will != nil && !errors.Is(cl.StopCause(), packets.CodeDisconnect) {
		s.captureWill(c, *c.will)
	}
	if kill {
		s.endSession(cl)
	}
	s.log.Info("MQTT client disconnected", "identity", c.key, "remote", c.remote, "cause", cause)
	s.apply(e)
}

// endSession forgets an MQTT session (subscriptions, inflight), so that the identity's next
// CONNECT starts clean (used when an identity is deleted or disabled).
func (s *Server) endSession(cl *mqtt.Client) {
	srv := s.broker.Load()
	if srv == nil {
		return
	}
	if !cl.Closed() {
		cl.Stop(errDropped)
	}
	srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	if cur, ok := srv.Clients.Get(cl.ID); ok && cur == cl {
		srv.Clients.Delete(cl.ID)
	}
}

// dropIdentityLocked closes the identity's connection (and, with kill, its session).
func (s *Server) dropIdentityLocked(key string, kill bool, e *effects) {
	s.oboDropLocked(key)
	for cl, c := range s.authed {
		if c.key == key {
			e.stop = append(e.stop, cl)
		}
	}
	c := s.online[key]
	if c != nil {
		c.killSession = c.killSession || kill
		e.stop = append(e.stop, c.cl)
	}
	if srv := s.broker.Load(); kill && srv != nil {
		if cl, ok := srv.Clients.Get(key); ok && (c == nil || cl != c.cl) {
			e.endSessions = append(e.endSessions, cl)
		}
	}
}

// setConnectionStateLocked updates the registry's connection fields (not persisted: after a
// restart every identity is Disconnected).
func (s *Server) setConnectionStateLocked(c *conn, state string, now time.Time) {
	if c.ident.ModuleID == "" {
		if d := s.devices[c.ident.DeviceID]; d != nil {
			d.ConnectionState, d.ConnectionStateUpdatedTime, d.LastActivityTime = state, now, now
		}
		return
	}
	if m := s.modules[c.key]; m != nil {
		m.ConnectionState, m.ConnectionStateUpdatedTime, m.LastActivityTime = state, now, now
	}
}

// touchLocked records activity on the identity.
func (s *Server) touchLocked(c *conn, now time.Time) {
	if c.ident.ModuleID == "" {
		if d := s.devices[c.ident.DeviceID]; d != nil {
			d.LastActivityTime = now
		}
	} else if m := s.modules[c.key]; m != nil {
		m.LastActivityTime = now
	}
}

// signalLocked wakes everything waiting for a connection or subscription change.
func (s *Server) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// connOf returns the established connection of a client, or nil.
func (s *Server) connOf(cl *mqtt.Client) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[cl]
}

// enqueueLocked queues a packet for the connection's writer. A full queue closes the
// connection (after the lock is released).
func (s *Server) enqueueLocked(c *conn, it outItem, e *effects) bool {
	select {
	case c.out <- it:
		return true
	default:
		s.log.Warn("MQTT client does not read; closing its connection", "identity", c.key, "queued", len(c.out))
		e.stop = append(e.stop, c.cl)
		return false
	}
}

// writeLoop writes the connection's queued packets in order until the connection ends. It
// also notices a connection that closed without mochi calling OnDisconnect, which happens
// when writing the CONNACK fails.
func (s *Server) writeLoop(c *conn) {
	defer s.wg.Done()
	watchdog := time.NewTicker(watchdogInterval)
	defer watchdog.Stop()
	for {
		select {
		case it := <-c.out:
			s.write(c, it)
		case <-c.done:
			return
		case <-watchdog.C:
			if c.cl.Closed() && time.Since(time.Unix(c.cl.StopTime(), 0)) > watchdogInterval {
				s.disconnected(c.cl, errors.New("connection closed before the session started"))
				return
			}
		}
	}
}

// watchdogInterval is how often a connection's writer checks that mochi still serves it.
const watchdogInterval = 5 * time.Second

func (s *Server) write(c *conn, it outItem) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: it.qos},
		TopicName:   it.topic,
		Payload:     it.payload,
	}
	if it.c2d != nil && it.qos > 0 {
		pid, err := c.cl.NextPacketID()
		if err != nil {
			s.log.Warn("no free packet id; C2D message stays pending", "identity", c.key, "err", err)
			s.mu.Lock()
			if it.c2d.cl == c.cl {
				it.c2d.cl = nil
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		mine := !it.c2d.removed && it.c2d.cl == c.cl
		if mine {
			it.c2d.pid = uint16(pid)
		}
		s.mu.Unlock()
		if !mine {
			return
		}
		pk.PacketID = uint16(pid)
		pk.Created = s.now().Unix()
		c.cl.State.Inflight.Set(pk) // so that mochi accepts the PUBACK and tracks the session
	}
	if err := c.cl.WritePacket(pk); err != nil {
		s.log.Debug("MQTT write failed", "identity", c.key, "topic", it.topic, "err", err)
	}
}

// Connections lists the established MQTT connections with the identities each carries, oldest
// first: one per connection in the plain IoT Hub dialect; an edge hub's connection lists its
// own identity ({edge}/$edgeHub) first, then every identity attached on it (obo.go).
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Connection, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, Connection{
			ID:          c.connID,
			RemoteAddr:  c.remote,
			ClientID:    c.cl.ID,
			Identities:  oboIdentitiesLocked(c),
			TLS:         c.tls,
			ConnectedAt: c.connectedAt,
		})
	}
	slices.SortFunc(out, func(a, b Connection) int {
		if c := a.ConnectedAt.Compare(b.ConnectedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
