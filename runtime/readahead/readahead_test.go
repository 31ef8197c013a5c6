package readahead

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
)

// chunkConn is a net.Conn whose reads return the chunks given, one per read (cut to the
// reader's buffer, the rest kept for the next read), then err. It counts the reads.
type chunkConn struct {
	net.Conn // nil: only Read is used
	chunks   [][]byte
	err      error
	reads    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	c.reads++
	if len(c.chunks) == 0 {
		return 0, c.err
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// TestRead_DeliversEveryByteInOrder: whatever the chunks the socket returns and the buffer
// sizes the reader asks with, the reader gets the stream, whole and in order, then the
// connection's error.
func TestRead_DeliversEveryByteInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		want := make([]byte, rng.IntN(200_000))
		for i := range want {
			want[i] = byte(rng.Uint32())
		}
		var chunks [][]byte
		for rest := want; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(40_000))
			chunks = append(chunks, rest[:k])
			rest = rest[k:]
		}
		sock := &chunkConn{chunks: chunks, err: io.EOF}
		c := New(sock)
		var got []byte
		var err error
		for err == nil {
			p := make([]byte, 1+rng.IntN(3*Size))
			var n int
			n, err = c.Read(p)
			got = append(got, p[:n]...)
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("round %d: error %v, want io.EOF", round, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: read %d bytes, not the %d sent", round, len(got), len(want))
		}
		if c.ahead != nil {
			t.Fatalf("round %d: a buffer is held after the end", round)
		}
	}
}

// TestRead_StreamingCostsFewerReads: a reader taking 2 KB at a time from a socket holding
// 1 MB makes about one socket read per Size bytes, not one per 2 KB.
func TestRead_StreamingCostsFewerReads(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MB
	sock := &chunkConn{chunks: [][]byte{data}, err: io.EOF}
	got, err := io.ReadAll(bufio.NewReaderSize(New(sock), 2<<10))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (err %v), want the 1 MB sent", len(got), err)
	}
	if want := len(data)/Size + 3; sock.reads > want {
		t.Fatalf("%d socket reads for 1 MB, want at most %d", sock.reads, want)
	}
}

// TestRead_SlowPeerReadsDirectly: a peer whose messages each fit the reader's buffer is
// read directly, one socket read per message, and no buffer stays held between them.
func TestRead_SlowPeerReadsDirectly(t *testing.T) {
	var chunks [][]byte
	for i := range 50 {
		chunks = append(chunks, bytes.Repeat([]byte{byte(i)}, 300))
	}
	sock := &chunkConn{chunks: chunks, err: io.EOF}
	c := New(sock)
	p := make([]byte, 2<<10)
	for i := range 50 {
		n, err := c.Read(p)
		if err != nil || n != 300 || p[0] != byte(i) {
			t.Fatalf("read %d: %d bytes, first %d, err %v; want message %d", i, n, p[0], err, i)
		}
		if c.ahead != nil {
			t.Fatalf("read %d: a buffer is held for a peer that is not streaming", i)
		}
	}
	if sock.reads != 50 {
		t.Fatalf("%d socket reads for 50 messages, want 50", sock.reads)
	}
}

// errConn returns data and an error from the same read.
type errConn struct {
	net.Conn
	data []byte
	err  error
}

func (c *errConn) Read(p []byte) (int, error) {
	if c.data == nil {
		return 0, c.err
	}
	n := copy(p, c.data)
	c.data = nil
	return n, c.err
}

// TestRead_ErrorAfterBufferedBytes: an error that came with bytes read ahead is returned
// only after the reader has had those bytes.
func TestRead_ErrorAfterBufferedBytes(t *testing.T) {
	boom := errors.New("connection reset")
	data := bytes.Repeat([]byte("x"), 5000)
	c := New(&errConn{data: data, err: boom})
	c.streaming = true // as after a read that filled the reader's buffer
	var got []byte
	p := make([]byte, 1000)
	for {
		n, err := c.Read(p)
		got = append(got, p[:n]...)
		if err != nil {
			if !errors.Is(err, boom) || len(got) != len(data) {
				t.Fatalf("error %v after %d bytes, want %v after %d", err, len(got), boom, len(data))
			}
			return
		}
		if n == 0 {
			t.Fatal("read returned no bytes and no error")
		}
	}
}
