package fakehub

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/mqttguard"
)

// Listener ids, also used to tell TLS from plain connections (Connection.TLS).
const (
	listenerTLS   = "mqtt-tls"
	listenerPlain = "mqtt-plain"
)

// connectArrivalTimeout bounds the time between accepting a socket and receiving CONNECT
// (TLS handshake included), as edgeHub's ConnectArrivalTimeout does; mochi replaces the
// deadline with 1.5 x keep-alive once CONNECT is in.
const connectArrivalTimeout = time.Minute

// Bounds on connections that have not sent their CONNECT yet (docs/security.md, F1): mochi
// allocates a packet's announced length before reading its body, so the first fixed header
// is checked before mochi sees it.
const (
	// maxConnectLength admits a CONNECT whose Will message is a maximal telemetry message
	// (256 KB) plus 16 KiB for the client id, username, password and Will topic.
	maxConnectLength = iothub.MaxMessageSize + 16<<10
	// maxPendingConnects caps sockets accepted but whose CONNECT is not read in full.
	maxPendingConnects = mqttguard.DefaultMaxPending
)

// listener is a mochi listener that owns its socket so that the hub can (a) implement
// CutNetwork by accepting and immediately closing connections, (b) bound the wait for
// CONNECT, (c) close connections still in the handshake on shutdown, and (d) check the
// first packet and cap the connections waiting for CONNECT (mqttguard). With tlsConf set
// it terminates TLS, requesting (not requiring) a client certificate for X.509 identities.
type listener struct {
	id      string
	ln      net.Listener
	tlsConf *tls.Config
	cut     func() bool
	log     *slog.Logger
	gate    *mqttguard.Gate

	mu     sync.Mutex
	closed bool
	open   map[net.Conn]struct{} // accepted, not yet handed back by mochi
}

var _ listeners.Listener = (*listener)(nil)

// newListener binds addr now, so the bound address is known before mochi starts serving.
func newListener(id, addr string, tlsConf *tls.Config, cut func() bool) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{
		id: id, ln: ln, tlsConf: tlsConf, cut: cut,
		gate: mqttguard.NewGate(maxPendingConnects, maxConnectLength),
		open: map[net.Conn]struct{}{},
	}, nil
}

// ID returns the listener id.
func (l *listener) ID() string { return l.id }

// Address returns the bound address.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol returns "tcp".
func (l *listener) Protocol() string { return "tcp" }

// Init is called by mochi's AddListener; the socket is already bound.
func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if l.cut() {
			// The network is cut: the client sees its TCP connection close before any
			// CONNACK, like a dead route.
			raw.Close()
			continue
		}
		c := raw
		if l.tlsConf != nil {
			c = tls.Server(raw, l.tlsConf)
		}
		c, ok := l.gate.Wrap(c)
		if !ok {
			raw.Close()
			l.log.Debug("MQTT connection refused: too many waiting for CONNECT",
				"remote", raw.RemoteAddr().String(), "refused", l.gate.Refused())
			continue
		}
		if !l.track(raw) {
			c.Close()
			return
		}
		go func() {
			defer l.untrack(raw)
			_ = raw.SetDeadline(time.Now().Add(connectArrivalTimeout))
			if err := establish(l.id, c); err != nil {
				l.log.Debug("MQTT connection ended", "remote", raw.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.open[c] = struct{}{}
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.open, c)
}

// Close stops accepting, lets mochi close its clients, and closes every socket still open
// (connections that never completed CONNECT).
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	closeClients(l.id)
	l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.open {
		c.Close()
	}
}
