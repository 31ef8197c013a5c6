package hub

import (
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Batched writes for the module input pumps (pump_window.go) and for the PUBACKs of the
// ingest (ingest_acks.go).
//
// Client.WritePacket writes one packet per call: a system call each, which cost the hub
// about a tenth of its CPU as PUBACKs alone under a durable load. A pump with a window of
// deliveries to fill encodes several PUBLISHes into one buffer (packets.Packet.
// PublishEncode, as WritePacket does), and the acknowledger the PUBACKs of one commit,
// and each writes them with one call, under the client's lock that WritePacket holds for
// its write, so the batch stays whole among the connection's other writes. What
// WritePacket adds is not needed here: the OnPacketEncode and OnPacketSent hooks (the hub
// registers neither), MQTT 5 packet size and property rules (the hub serves MQTT 3.1.1
// only), and mochi's outbound buffer, which only holds packets of mochi's own outbound
// queue: the hub never uses that queue (it delivers through WritePacket or here, mochi
// distributes no client PUBLISH, and no client may subscribe to $SYS), so the buffer
// stays empty and no order changes. The byte and packet counters of mochi's $SYS
// information are kept.

// maxWriteBatch is the size at which a pump writes the PUBLISHes it has encoded so far
// rather than encoding more first: a window of 1 MiB messages is not copied whole into
// one buffer.
const maxWriteBatch = 64 << 10

// writeRaw writes b, whole encoded packets (n of them, all PUBLISHes), to cl's connection.
func (d *deliverer) writeRaw(cl *mqtt.Client, b []byte, n int) error {
	d.batches.Add(1)
	return writeEncoded(d.mochi, cl, b, n, n)
}

// writeEncoded writes b, packets whole encoded packets of which messages are PUBLISHes,
// to cl's connection with one call, under the client's lock as Client.WritePacket does,
// and keeps mochi's byte, packet and message counters. The hub never queues packets on
// mochi's outbound queue (every write of it goes through WritePacket or here), so no
// packet of mochi's own buffer can be overtaken.
func writeEncoded(srv *mqtt.Server, cl *mqtt.Client, b []byte, packets, messages int) error {
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
	if srv.Info != nil {
		atomic.AddInt64(&srv.Info.BytesSent, int64(written))
		if err == nil {
			atomic.AddInt64(&srv.Info.PacketsSent, int64(packets))
			atomic.AddInt64(&srv.Info.MessagesSent, int64(messages))
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
