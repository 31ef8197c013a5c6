package upstream

import (
	"context"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Every PUBLISH of a connection goes through its writer, one goroutine that hands the
// packets to paho in submission order, so that no caller ever waits inside paho's Publish.
// That wait is unbounded in practice: when the link dies under load, paho's own writer is
// gone before paho marks the connection lost, and a Publish already under way waits the
// whole WriteTimeout for a writer that will never take its packet. On the hub's $upstream
// pump that held every sender's traffic for up to the keep-alive after the link was back.
// Now the caller only waits for a slot (sendWindow) and the writer alone can be held; the
// loss is noticed by paho's connection-lost handler or by the writer's failed Publish, and
// then every message in flight fails at once with ErrOffline.
//
// Telemetry (SendAsync) also goes through the connection's acker, one goroutine that
// decides the outcomes in submission order: the PUBACK, the connection's loss, the
// caller's context or RequestTimeout, whichever comes first. Requests wait for their own
// answers (requestOn).
//
//	SendAsync --submit--> queue --writer: paho Publish--> acking --acker: PUBACK--> Sending
//	                        \__________ the connection is lost: all fail __________/

// sendWindow bounds the telemetry messages in flight on one connection (queued for the
// writer or waiting for their PUBACK): a caller past it waits for a slot. It is far above
// the hub's window (256) and far below paho's 65535 packet ids.
const sendWindow = 4096

// outgoing is one PUBLISH submitted to a connection's writer.
type outgoing struct {
	topic string
	body  []byte
	// written is closed once paho has the packet; tok is its token from then on.
	written chan struct{}
	tok     mqtt.Token

	// Telemetry only (send != nil): the sender, the caller's context, when it was
	// submitted (RequestTimeout counts from then) and where its outcome goes.
	id     sas.Identity
	ctx    context.Context
	queued time.Time
	send   *Sending
}

// submit queues o for the writer, telemetry also for the acker. A telemetry message waits
// for a slot in the window first (or the connection's loss, or its context). It fails with
// ErrOffline once the connection is lost.
func (cn *conn) submit(o *outgoing) error {
	o.written = make(chan struct{})
	if o.send != nil {
		select {
		case cn.slots <- struct{}{}:
		case <-cn.lost:
			return cn.offline()
		case <-o.ctx.Done():
			return o.ctx.Err()
		}
	}
	cn.outMu.Lock()
	if cn.outClosed {
		cn.outMu.Unlock()
		if o.send != nil {
			<-cn.slots
		}
		return cn.offline()
	}
	cn.queue = append(cn.queue, o)
	if o.send != nil {
		cn.acking = append(cn.acking, o)
	}
	cn.outMu.Unlock()
	wake(cn.writeWake)
	if o.send != nil {
		wake(cn.ackWake)
	}
	return nil
}

// wake signals a goroutine waiting on a channel of size 1 without blocking.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's writer: it publishes what was submitted, in order, until
// the connection is lost. A Publish that paho refuses (its client is no longer connected,
// or its writer did not take the packet within WriteTimeout) ends the connection: the
// messages submitted after it must not reach IoT Hub before it is sent again.
func (c *Client) writeLoop(cn *conn) {
	var batch []*outgoing
	for {
		batch = cn.takeQueue(batch[:0])
		if batch == nil {
			return
		}
		for i, o := range batch {
			o.tok = cn.pc.Publish(o.topic, 1, false, o.body)
			close(o.written)
			batch[i] = nil
			if isClosed(o.tok.Done()) && o.tok.Error() != nil {
				cn.close(fmt.Errorf("%w: publish refused: %w", errLost, o.tok.Error()))
				return
			}
		}
	}
}

// takeQueue waits for submitted messages and moves them into buf; nil once the connection
// is lost.
func (cn *conn) takeQueue(buf []*outgoing) []*outgoing {
	for {
		cn.outMu.Lock()
		if cn.outClosed || isClosed(cn.lost) {
			cn.outMu.Unlock()
			return nil
		}
		if len(cn.queue) > 0 {
			buf = append(buf, cn.queue...)
			clear(cn.queue)
			cn.queue = cn.queue[:0]
			cn.outMu.Unlock()
			return buf
		}
		cn.outMu.Unlock()
		select {
		case <-cn.writeWake:
		case <-cn.lost:
		}
	}
}

// ackLoop is the connection's acker: it decides the outcome of each telemetry message, in
// submission order, and once the connection is lost fails every message still in flight.
func (c *Client) ackLoop(cn *conn) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		o := cn.oldest()
		if o == nil {
			break
		}
		err, lost := c.outcome(cn, o, timer)
		if lost {
			break
		}
		cn.outMu.Lock()
		cn.acking[0] = nil
		cn.acking = cn.acking[1:]
		cn.outMu.Unlock()
		cn.finish(o, err)
	}
	cn.failAll()
}

// oldest waits for the oldest telemetry message without an outcome; nil once the connection
// is lost.
func (cn *conn) oldest() *outgoing {
	for {
		cn.outMu.Lock()
		if len(cn.acking) > 0 {
			o := cn.acking[0]
			cn.outMu.Unlock()
			return o
		}
		cn.outMu.Unlock()
		select {
		case <-cn.ackWake:
		case <-cn.lost:
			return nil
		}
	}
}

// outcome waits for o's outcome: nil (PUBACK), ErrOffline (paho failed the token),
// ErrTimeout or the context's error; lost reports the connection's loss first.
func (c *Client) outcome(cn *conn, o *outgoing, timer *time.Timer) (err error, lost bool) {
	timer.Reset(time.Until(o.queued.Add(c.opts.RequestTimeout)))
	written := o.written
	var acked <-chan struct{}
	for {
		select {
		case <-written:
			written, acked = nil, o.tok.Done()
		case <-acked:
			if err := o.tok.Error(); err != nil {
				return fmt.Errorf("%w: %w", ErrOffline, err), false
			}
			return nil, false
		case <-cn.lost:
			return nil, true
		case <-o.ctx.Done():
			return o.ctx.Err(), false
		case <-timer.C:
			return fmt.Errorf("no PUBACK: %w (%s)", ErrTimeout, c.opts.RequestTimeout), false
		}
	}
}

// failAll closes the connection to new submissions and fails every telemetry message still
// in flight with ErrOffline, except those whose PUBACK was read before the loss: reporting
// them lost would only make the caller send duplicates.
func (cn *conn) failAll() {
	cn.outMu.Lock()
	cn.outClosed = true
	rest := cn.acking
	cn.acking, cn.queue = nil, nil
	cn.outMu.Unlock()
	for _, o := range rest {
		if isClosed(o.written) && isClosed(o.tok.Done()) && o.tok.Error() == nil {
			cn.finish(o, nil)
			continue
		}
		cn.finish(o, cn.offline())
	}
}

// finish reports a telemetry message's outcome and frees its slot and its count in flight.
func (cn *conn) finish(o *outgoing, err error) {
	if err != nil {
		err = fmt.Errorf("send for %q: %w", o.id, err)
	}
	o.send.finish(err)
	<-cn.slots
	cn.inflight.Done()
}

// write submits a non-telemetry PUBLISH (a request, a method answer) and waits until paho
// has it; the caller then waits for its PUBACK or answer.
func (cn *conn) write(ctx context.Context, topic string, body []byte) (mqtt.Token, error) {
	o := &outgoing{topic: topic, body: body}
	if err := cn.submit(o); err != nil {
		return nil, err
	}
	select {
	case <-o.written:
		return o.tok, nil
	case <-cn.lost:
		return nil, cn.offline()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
