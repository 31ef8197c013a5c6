// Package readahead reads a stream connection ahead of its reader while the peer sends
// faster than the reader asks.
//
// A reader with a small buffer (mochi reads each client through a 2 KB bufio.Reader)
// pays one read system call per buffer-full: about one per message for a client
// streaming 1 KB publishes. Conn watches what each read returns: once a read fills the
// reader's buffer, more is probably waiting, and the next read asks the socket for up to
// Size bytes, serving the reader from them until they are used up. A connection whose
// reads come back short (an idle or slow client) reads directly, as before, and holds no
// buffer: buffers come from a shared pool and go back as soon as they are drained, so
// memory follows the number of connections streaming at the moment, not the number
// connected.
//
//	c := readahead.New(conn) // Read only from one goroutine at a time, as with bufio
package readahead

import (
	"net"
	"sync"
)

// Size is the largest read Conn makes on the reader's behalf.
const Size = 16 << 10

var pool = sync.Pool{New: func() any { b := make([]byte, Size); return &b }}

// Conn is a net.Conn whose Read reads ahead while the peer streams. Read must not be
// called concurrently (as with any buffered reader); the other methods are the wrapped
// connection's.
type Conn struct {
	net.Conn
	ahead     *[]byte // bytes read but not yet delivered: (*ahead)[r:w]; nil when none
	r, w      int
	err       error // the error that came with the bytes in ahead, returned once they are
	streaming bool  // the last read returned all the reader asked for, or more
}

// New wraps c.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read delivers buffered bytes first; then it reads directly into p, or, while the peer
// streams and p is smaller than Size, reads up to Size bytes ahead.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.ahead != nil {
		n := copy(p, (*c.ahead)[c.r:c.w])
		c.r += n
		if c.r < c.w {
			return n, nil
		}
		c.release()
		err := c.err
		c.err = nil
		return n, err
	}
	if !c.streaming || len(p) >= Size {
		n, err := c.Conn.Read(p)
		c.streaming = n == len(p)
		return n, err
	}
	b := pool.Get().(*[]byte)
	m, err := c.Conn.Read(*b)
	n := copy(p, (*b)[:m])
	c.streaming = m >= len(p)
	if n == m {
		pool.Put(b)
		return n, err
	}
	c.ahead, c.r, c.w, c.err = b, n, m, err
	return n, nil
}

// Buffered returns the number of bytes read from the connection and not yet delivered.
func (c *Conn) Buffered() int { return c.w - c.r }

func (c *Conn) release() {
	pool.Put(c.ahead)
	c.ahead, c.r, c.w = nil, 0, 0
}
