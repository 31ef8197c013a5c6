package upstream

import (
	"context"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Sending is a telemetry message handed to SendAsync: Done is closed once its outcome is
// known, and Err then returns it (nil: IoT Hub acknowledged the message). It is safe for
// concurrent use.
type Sending struct {
	done chan struct{}
	err  error // written once, before done is closed
}

// Done returns a channel that is closed when the outcome is known.
func (s *Sending) Done() <-chan struct{} { return s.done }

// Err returns the outcome once Done is closed (nil before).
func (s *Sending) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Sending) finish(err error) {
	s.err = err
	close(s.done)
}

// failed returns a Sending already finished with err.
func failed(err error) *Sending {
	s := &Sending{done: make(chan struct{})}
	s.finish(err)
	return s
}

// SendAsync is Send without the wait: it makes the same checks, submits the message to the
// connection's writer and returns; the outcome, with exactly Send's errors, arrives later on
// the returned Sending. It lets a caller keep many messages in flight on the one connection,
// so that a backlog drains at the link's throughput rather than at one round trip per
// message.
//
// Order: the connection's writer publishes messages in submission order, so messages passed
// in successive calls from one goroutine reach IoT Hub in that order (MQTT keeps the order of
// QoS 1 messages on a connection); outcomes are decided in that order too. A failure is
// reported on the message it concerns; when the link drops, every message in flight fails at
// once with ErrOffline, including some IoT Hub may already have (at least once: the caller
// sends them again, in order), and nothing submitted after a message that failed that way is
// published.
//
// SendAsync never waits for the network: not for paho (the writer does, writer.go), not for
// a PUBACK. It may wait, like Send, for the identity check of an identity's first message on
// a connection (one request, cut short by the link's loss), for a token renewal to finish, or
// for a slot while 4096 messages are in flight; ctx bounds those waits and the wait for the
// PUBACK.
func (c *Client) SendAsync(ctx context.Context, id sas.Identity, m iothub.Message) *Sending {
	topic, err := telemetryTopic(id, m)
	if err != nil {
		return failed(fmt.Errorf("send for %q: %w: %w", id, ErrRejected, err))
	}
	cn, err := c.acquire(ctx)
	if err != nil {
		return failed(fmt.Errorf("send for %q: %w", id, err))
	}
	if err := c.checkStanding(ctx, cn, id); err != nil {
		cn.inflight.Done()
		return failed(fmt.Errorf("send for %q: %w", id, err))
	}
	o := &outgoing{topic: topic, body: m.Body, id: id, ctx: ctx, queued: time.Now(), send: &Sending{done: make(chan struct{})}}
	if err := cn.submit(o); err != nil {
		cn.inflight.Done()
		return failed(fmt.Errorf("send for %q: %w", id, err))
	}
	return o.send
}
