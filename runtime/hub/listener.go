package hub

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/mqttguard"
	"github.com/outpost-edge/outpost/runtime/readahead"
)

// Bounds on connections that have not sent their CONNECT yet (security.md, finding F1).
const (
	// maxConnectLength bounds a CONNECT's remaining length: client id, username (with the
	// dialect's query string) and password (a SAS token) fit in a few KB, and the hub does
	// not implement Will messages, so nothing legitimate comes close. mochi allocates the
	// announced length before reading the body; a larger announcement closes the socket.
	maxConnectLength = 16 << 10
	// maxPendingConnects caps sockets accepted but whose CONNECT is not read in full (TLS
	// handshake included); beyond it new sockets are closed at once. Worst case it pins
	// 1024 x (16 KiB + TLS state + a goroutine), about 30 MB; a lower cap would refuse
	// legitimate clients too early when a few hundred leaf devices reconnect at once, or
	// while a few hundred silent sockets wait out the connect deadline (security_test.go
	// TestSecurity_ConnectFloodLeavesTheHubServing holds 250).
	maxPendingConnects = 1024
)

// trackingListener wraps the listener mochi serves so that the hub can
//
//   - give every accepted connection a deadline until its CONNECT arrives (mochi reads the
//     first packet without one, so a silent socket, or a TLS handshake that never ends,
//     would hold a goroutine, and mochi's Close, for ever); mochi replaces the deadline
//     with the keep-alive one once the CONNECT is read;
//   - check the first packet before mochi reads it (it must be a CONNECT of at most
//     maxConnectLength bytes) and cap the sockets still waiting for their CONNECT, so that a
//     socket without credentials cannot make mochi allocate a maximum-size packet buffer;
//   - close every connection at shutdown before mochi's Close, which otherwise waits for
//     all client goroutines and could block on a client that stopped reading.
type trackingListener struct {
	net.Listener
	connectTimeout time.Duration
	tls            *tls.Config // nil for a plain listener
	gate           *mqttguard.Gate
	log            *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTrackingListener(addr string, tlsConfig *tls.Config, connectTimeout time.Duration, log *slog.Logger) (*trackingListener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &trackingListener{
		Listener:       l,
		connectTimeout: connectTimeout,
		tls:            tlsConfig,
		gate:           mqttguard.NewGate(maxPendingConnects, maxConnectLength),
		log:            log,
		conns:          map[net.Conn]struct{}{},
	}, nil
}

// Accept returns the next connection, TLS-wrapped when configured (the handshake happens on
// the first read, under the connect deadline) and guarded. A socket beyond the cap on
// pending connections is closed and the next one accepted.
func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(l.connectTimeout))
		tc := &trackedConn{Conn: c, l: l}
		var in net.Conn = readahead.New(tc) // mochi reads through 2 KB: fewer reads for a streaming client
		if l.tls != nil {
			in = tls.Server(in, l.tls)
		}
		out, ok := l.gate.Wrap(in)
		if !ok {
			c.Close()
			l.log.Debug("connection refused: too many waiting for CONNECT",
				"remote", c.RemoteAddr().String(), "refused", l.gate.Refused())
			continue
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			out.Close() // releases the gate's slot
			return nil, net.ErrClosed
		}
		l.conns[tc] = struct{}{}
		return out, nil
	}
}

// closeAll closes the listener and every connection it accepted.
func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
}

func (l *trackingListener) forget(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// trackedConn removes itself from its listener when closed.
type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.forget(c) })
	return c.Conn.Close()
}
