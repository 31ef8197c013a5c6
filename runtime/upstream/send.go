package upstream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Send sends a telemetry message to IoT Hub on behalf of id, on
// devices/{d}[/modules/{m}]/messages/events/{bag}, at QoS 1, and returns once IoT Hub
// acknowledged it (PUBACK). id need not be attached: stored messages drain after their
// sender left. m.System may carry $.cdid/$.cmid (the hub stamps them); they must name id and
// are not sent (the topic names the sender; IoT Hub stamps its own).
//
// It fails at once with ErrOffline while the link is down (the caller keeps the message and
// tries again later), and with ErrOffline or ErrTimeout if the link drops or IoT Hub does not
// acknowledge in time, in which case IoT Hub may have the message already (at-least-once).
//
// A message IoT Hub would refuse is not sent; the error wraps ErrRejected and says why:
// ErrTooLarge (over 256 KB, or its properties make a topic over 64 KB), ErrInvalidArgument
// (invalid id, $.cdid/$.cmid of another sender), ErrNotFound (the identity was deleted),
// ErrOutOfScope (not in the edge device's scope), ErrDisabled. The last three come from an
// identity check Send makes once per identity and connection (one identity GET; a negative
// verdict is asked again after a minute): IoT Hub closes the whole connection on telemetry
// for such an identity, and one stored message of a deleted leaf would otherwise take the
// link down again after every reconnection.
func (c *Client) Send(ctx context.Context, id sas.Identity, m iothub.Message) error {
	s := c.SendAsync(ctx, id, m)
	select {
	case <-s.Done():
		return s.Err()
	case <-ctx.Done():
		// The message may still go out: at least once, as after any timeout.
		return fmt.Errorf("send for %q: %w", id, ctx.Err())
	}
}

// telemetryTopic checks a message for IoT Hub's rules and builds its topic.
func telemetryTopic(id sas.Identity, m iothub.Message) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if n := m.Size(); n > iothub.MaxMessageSize {
		return "", fmt.Errorf("%w: message of %d bytes, over the %d-byte limit", ErrTooLarge, n, iothub.MaxMessageSize)
	}
	for key, want := range map[string]string{iothub.SysConnDeviceID: id.DeviceID, iothub.SysConnModuleID: id.ModuleID} {
		if got, ok := m.System[key]; ok && got != want {
			return "", fmt.Errorf("%w: $.%s is %q but the message is sent for %q", ErrInvalidArgument, key, got, id)
		}
	}
	sys := maps.Clone(m.System)
	delete(sys, iothub.SysConnDeviceID)
	delete(sys, iothub.SysConnModuleID)
	m.System = sys
	topic := iothub.TelemetryTopic(id.DeviceID, id.ModuleID, m.Bag())
	if len(topic) > iothub.MaxTopicLength {
		return "", fmt.Errorf("%w: properties make a %d-byte topic, over the %d-byte limit", ErrTooLarge, len(topic), iothub.MaxTopicLength)
	}
	return topic, nil
}

// standing is Send's verdict on an identity for one connection.
type standing struct {
	ready chan struct{} // closed once decided
	known bool          // false: the check failed transiently; ask again
	err   error         // nil: may send; else the rejection
	until time.Time     // a rejection is forgotten then
}

// standingOf turns the outcome of an identity request into a verdict; known is false for a
// transient failure (offline, timeout, throttled, protocol error).
func standingOf(r Identity, err error) (verdict error, known bool) {
	switch {
	case err == nil && r.Enabled():
		return nil, true
	case err == nil:
		return fmt.Errorf("%w: %w: device %q is disabled", ErrRejected, ErrDisabled, r.DeviceID), true
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrOutOfScope):
		return fmt.Errorf("%w: %w", ErrRejected, err), true
	}
	return nil, false
}

// noteStanding records what an identity request or an attachment taught about id.
func (c *Client) noteStanding(cn *conn, id sas.Identity, verdict error) {
	st := &standing{ready: make(chan struct{}), known: true, err: verdict, until: c.opts.Now().Add(rejectedTTL)}
	close(st.ready)
	cn.mu.Lock()
	cn.standing[id] = st
	cn.mu.Unlock()
}

// checkStanding returns nil when id may send on cn, the rejection when it may not, or the
// transient error of the identity request that should have told. Concurrent callers for the
// same identity share one request.
func (c *Client) checkStanding(ctx context.Context, cn *conn, id sas.Identity) error {
	for {
		cn.mu.Lock()
		st := cn.standing[id]
		if st != nil && isClosed(st.ready) {
			if st.known && (st.err == nil || c.opts.Now().Before(st.until)) {
				cn.mu.Unlock()
				return st.err
			}
			delete(cn.standing, id) // an expired rejection: ask again
			st = nil
		}
		if st != nil { // someone else is asking
			cn.mu.Unlock()
			select {
			case <-st.ready:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-cn.lost:
				return cn.offline()
			}
		}
		st = &standing{ready: make(chan struct{})}
		cn.standing[id] = st
		cn.mu.Unlock()

		r, err := c.identityOn(ctx, cn, iothub.OBOIdentityGet, id, nil)
		verdict, known := standingOf(r, err)
		cn.mu.Lock()
		st.known, st.err, st.until = known, verdict, c.opts.Now().Add(rejectedTTL)
		if !known && cn.standing[id] == st {
			delete(cn.standing, id)
		}
		close(st.ready)
		cn.mu.Unlock()
		if !known {
			return fmt.Errorf("checking the identity: %w", err)
		}
		if verdict != nil {
			c.log.Info("refusing to send for an identity IoT Hub would refuse", "identity", id, "err", verdict)
		}
		return verdict
	}
}
