package hub

import (
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Batched writes for the module input pumps (pump_window.go).
//
// Client.WritePacket writes one packet per call, a system call each unless mochi's own
// outbound queue happens to be busy. A pump with a window of deliveries to fill encodes
// several PUBLISHes into one buffer (packets.Packet.PublishEncode, as WritePacket does)
// and writes them with one call, under the client's lock that WritePacket holds for its
// write, so the batch stays whole among the connection's other writes. What WritePacket
// adds is not needed here: the OnPacketEncode and OnPacketSent hooks (the hub registers
// neither), MQTT 5 packet size and property rules (the hub serves MQTT 3.1.1 only), and
// mochi's outbound buffer, which only ever holds whole packets of mochi's own queue (a
// batch written while it holds some goes out before them: packets of another stream, so
// no order that matters changes). The byte and packet counters of mochi's $SYS
// information are kept.

// maxWriteBatch is the size at which a pump writes the PUBLISHes it has encoded so far
// rather than encoding more first: a window of 1 MiB messages is not copied whole into
// one buffer.
const maxWriteBatch = 64 << 10

// writeRaw writes b, whole encoded packets (n of them, all PUBLISHes), to cl's connection.
func (d *deliverer) writeRaw(cl *mqtt.Client, b []byte, n int) error {
	d.batches.Add(1)
	written, err := func() (int, error) {
		cl.Lock()
		defer cl.Unlock()
		if cl.Closed() {
			return 0, mqtt.ErrConnectionClosed
		}
		if cl.Net.Conn == nil {
			return 0, fmt.Errorf("%q has no network connection", cl.ID)
		}
		return cl.Net.Conn.Write(b)
	}()
	if d.mochi.Info != nil {
		atomic.AddInt64(&d.mochi.Info.BytesSent, int64(written))
		if err == nil {
			atomic.AddInt64(&d.mochi.Info.PacketsSent, int64(n))
			atomic.AddInt64(&d.mochi.Info.MessagesSent, int64(n))
		}
	}
	return err
}

// writeGuard cuts off a client whose writes block longer than timeout (it stopped
// reading; the connection has no write deadline of its own beyond the keep-alive one).
// One guard serves all the writes of one pump, one at a time: it re-arms a single timer
// rather than creating one per write.
type writeGuard struct {
	timeout time.Duration
	t       *time.Timer
	cl      atomic.Pointer[mqtt.Client] // the client being written to, nil between writes
}

func newWriteGuard(timeout time.Duration) *writeGuard {
	g := &writeGuard{timeout: timeout}
	g.t = time.AfterFunc(time.Hour, g.fire)
	g.t.Stop()
	return g
}

func (g *writeGuard) fire() {
	if cl := g.cl.Load(); cl != nil {
		cl.Stop(fmt.Errorf("%w: write to %q blocked for %v", ErrNoAck, cl.ID, g.timeout))
	}
}

// write writes b (n packets) to cl through d, cutting cl off if it blocks for the timeout.
func (g *writeGuard) write(d *deliverer, cl *mqtt.Client, b []byte, n int) error {
	g.cl.Store(cl)
	g.t.Reset(g.timeout)
	err := d.writeRaw(cl, b, n)
	g.t.Stop()
	g.cl.Store(nil)
	return err
}

// stop releases the guard's timer.
func (g *writeGuard) stop() { g.t.Stop() }
