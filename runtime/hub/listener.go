package hub

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// trackingListener wraps the listener mochi serves so that the hub can
//
//   - give every accepted connection a deadline until its CONNECT arrives (mochi reads the
//     first packet without one, so a silent socket, or a TLS handshake that never ends,
//     would hold a goroutine, and mochi's Close, for ever); mochi replaces the deadline
//     with the keep-alive one once the CONNECT is read;
//   - close every connection at shutdown before mochi's Close, which otherwise waits for
//     all client goroutines and could block on a client that stopped reading.
type trackingListener struct {
	net.Listener
	connectTimeout time.Duration
	tls            *tls.Config // nil for a plain listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTrackingListener(addr string, tlsConfig *tls.Config, connectTimeout time.Duration) (*trackingListener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &trackingListener{Listener: l, connectTimeout: connectTimeout, tls: tlsConfig, conns: map[net.Conn]struct{}{}}, nil
}

// Accept returns the next connection, TLS-wrapped when configured (the handshake happens on
// the first read, under the connect deadline).
func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(l.connectTimeout))
	tc := &trackedConn{Conn: c, l: l}
	var out net.Conn = tc
	if l.tls != nil {
		out = tls.Server(tc, l.tls)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return out, nil
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
