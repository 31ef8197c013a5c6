package fakehub_test

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

// TestSecurity_UnauthenticatedSocketsDoNotPinMemory (finding F1, fake hub): as for the
// edge hub, with the fake hub's larger packet limit (~321 KB) and 1-minute CONNECT deadline.
func TestSecurity_UnauthenticatedSocketsDoNotPinMemory(t *testing.T) {
	s := fakehubtest.New(t)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const n = 100
	for range n {
		c, err := net.Dial("tcp", s.PlainMQTTAddress())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{0x10, 0x80, 0xC8, 0x13}); err != nil { // CONNECT, remaining length 320,512
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base+10<<20 {
			t.Fatalf("heap grew by %d MB for %d unauthenticated sockets that sent 4 bytes each", (ms.HeapAlloc-base)>>20, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
