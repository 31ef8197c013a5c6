package hub_test

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// TestSecurity_UnauthenticatedSocketsDoNotPinMemory (finding F1): a CONNECT fixed header
// announcing 1,000,000 bytes (4 bytes on the wire, no credentials) makes mochi allocate
// the whole packet buffer before reading it, and the buffer stays pinned until the
// connect deadline (30 s by default). 100 such sockets pin ~100 MB.
func TestSecurity_UnauthenticatedSocketsDoNotPinMemory(t *testing.T) {
	e := newEnv(t)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const n = 100
	for range n {
		c, err := net.Dial("tcp", e.hub.PlainAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{0x10, 0xC0, 0x84, 0x3D}); err != nil { // CONNECT, remaining length 1,000,000
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base+20<<20 {
			t.Fatalf("heap grew by %d MB for %d unauthenticated sockets that sent 4 bytes each", (ms.HeapAlloc-base)>>20, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
