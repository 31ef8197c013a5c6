package upstream

import (
	"context"
	"fmt"

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

// SendAsync is Send without the wait: it makes the same checks, publishes the message and
// returns; the outcome, with exactly Send's errors, arrives later on the returned Sending.
// It lets a caller keep many messages in flight on the one connection, so that a backlog
// drains at the link's throughput rather than at one round trip per message.
//
// Order: SendAsync returns after the message was queued for writing, and the connection
// writes in queue order, so messages passed in successive calls from one goroutine reach IoT
// Hub in that order (MQTT keeps the order of QoS 1 messages on a connection). A failure is
// reported on the message it concerns; when the link drops, every message in flight fails with
// ErrOffline, including some IoT Hub may already have (at least once: the caller sends them
// again, in order).
//
// SendAsync itself may wait, like Send, for the identity check of an identity's first message
// on a connection (one request), or for a token renewal to finish; ctx bounds that wait and
// the wait for the PUBACK.
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
	tok := cn.pc.Publish(topic, 1, false, m.Body)
	s := &Sending{done: make(chan struct{})}
	// One goroutine per message in flight (a few KB each, gone at its PUBACK): it keeps the
	// connection counted in use, so a token renewal lets the window drain first.
	go func() {
		defer cn.inflight.Done()
		if err := c.awaitPuback(ctx, cn, tok); err != nil {
			s.finish(fmt.Errorf("send for %q: %w", id, err))
			return
		}
		s.finish(nil)
	}()
	return s
}
