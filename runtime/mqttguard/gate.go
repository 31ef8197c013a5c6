package mqttguard

import (
	"net"
	"sync"
	"sync/atomic"
)

// DefaultMaxPending is a sensible cap on connections still waiting for their CONNECT.
const DefaultMaxPending = 256

// Gate admits connections and counts those whose CONNECT has not been read in full. It is
// safe for concurrent use.
type Gate struct {
	maxPending int
	maxConnect int

	pending atomic.Int64
	refused atomic.Uint64
}

// NewGate returns a gate that admits at most maxPending connections waiting for their
// CONNECT, and closes those whose first packet is not a CONNECT of at most maxConnect bytes
// of remaining length.
func NewGate(maxPending, maxConnect int) *Gate {
	return &Gate{maxPending: maxPending, maxConnect: maxConnect}
}

// Wrap returns c guarded, counted as pending until its CONNECT has been read in full, it
// is refused, or it is closed. With the cap reached it returns false and c unchanged; the
// caller closes c.
func (g *Gate) Wrap(c net.Conn) (net.Conn, bool) {
	if g.pending.Add(1) > int64(g.maxPending) {
		g.pending.Add(-1)
		g.refused.Add(1)
		return c, false
	}
	return &conn{Conn: c, g: g}, true
}

// Pending returns the number of admitted connections whose CONNECT is not read yet.
func (g *Gate) Pending() int { return int(g.pending.Load()) }

// Refused returns how many connections Wrap refused because of the cap.
func (g *Gate) Refused() uint64 { return g.refused.Load() }

// conn checks the first fixed header before handing bytes to the reader. Reads happen on
// mochi's one reader goroutine; Close may come from anywhere, hence the once.
type conn struct {
	net.Conn
	g *Gate

	hdr     [5]byte // the first fixed header as read so far (1 type byte + up to 4 length bytes)
	n       int     // bytes in hdr
	checked bool    // the header passed the check; buffered bytes are hdr[off:n]
	off     int
	left    int // bytes of the CONNECT still to deliver before the slot is released
	done    sync.Once
}

func (c *conn) release() { c.done.Do(func() { c.g.pending.Add(-1) }) }

// Read delivers the connection's bytes once the first fixed header has been checked.
func (c *conn) Read(p []byte) (int, error) {
	if !c.checked {
		if err := c.readHeader(); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	if c.off < c.n {
		n = copy(p, c.hdr[c.off:c.n])
		c.off += n
	} else {
		n, err = c.Conn.Read(p)
	}
	if c.left > 0 {
		c.left -= n
		if c.left <= 0 {
			c.release()
		}
	}
	return n, err
}

// readHeader reads until the fixed header is complete and checks it; a refused connection
// is closed.
func (c *conn) readHeader() error {
	for {
		length, size, err := parseHeader(c.hdr[:c.n], c.g.maxConnect)
		if err != nil {
			c.Close()
			return err
		}
		if size > 0 {
			c.checked = true
			c.left = size + length // the header's bytes and the body
			return nil
		}
		m, err := c.Conn.Read(c.hdr[c.n:])
		c.n += m
		if err != nil && m == 0 {
			return err
		}
	}
}

// parseHeader checks the start of a first packet, b: it must be a CONNECT (type 1, flags
// 0) whose remaining length is at most limit. size is the fixed header's size once b holds
// all of it (0 before); length is then the remaining length, and b may hold body bytes after
// the header.
func parseHeader(b []byte, limit int) (length, size int, err error) {
	if len(b) == 0 {
		return 0, 0, nil
	}
	if b[0] != 0x10 {
		return 0, 0, ErrNotConnect
	}
	mult := 1
	for i := 1; i < len(b) && i <= 4; i++ {
		length += int(b[i]&0x7f) * mult
		if length > limit {
			return 0, 0, ErrConnectTooLarge
		}
		if b[i]&0x80 == 0 {
			return length, i + 1, nil
		}
		mult *= 128
	}
	if len(b) > 4 { // four length bytes, all with the continuation bit
		return 0, 0, ErrConnectTooLarge
	}
	return 0, 0, nil
}

// Unwrap returns the connection a Gate wrapped (a *tls.Conn on a TLS listener, for its
// peer certificates), or c itself when c is not a guarded connection.
func Unwrap(c net.Conn) net.Conn {
	if g, ok := c.(*conn); ok {
		return g.Conn
	}
	return c
}

// Close releases the connection's pending slot and closes it.
func (c *conn) Close() error {
	c.release()
	return c.Conn.Close()
}
