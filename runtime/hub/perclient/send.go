package perclient

import (
	"context"
	"errors"
	"fmt"
	"maps"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Send sends one message on behalf of id on id's own connection and waits for IoT Hub's
// PUBACK (hub.Upstream). Errors are those of SendAsync's outcome.
func (l *Link) Send(ctx context.Context, id sas.Identity, m iothub.Message) error {
	o := l.SendAsync(ctx, id, m)
	select {
	case <-o.Done():
		return o.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendAsync publishes one message on behalf of id, at QoS 1, on id's own connection
// (hub.PipelinedUpstream): messages of successive calls for one identity go out in call
// order on that connection, many in flight; the outcome is the PUBACK.
//
// The outcome fails with an error matching hub.ErrOffline when id has no connection up
// (never connected in this run, lost, refused, expired, idle: an idle one is reopened) or
// loses it before the PUBACK, and LinkState then reports the link down until id is back;
// with one matching hub.ErrRejected (dead-lettered) when IoT Hub would never take the
// message: over 256 KB, a topic over the MQTT limit, or an identity the cache no longer
// knows or has disabled and that has no usable connection.
func (l *Link) SendAsync(_ context.Context, id sas.Identity, m iothub.Message) hub.Outcome {
	topic, err := telemetryTopic(id, m)
	if err != nil {
		return done(&rejectedError{fmt.Errorf("send for %q: %w", id, err)})
	}
	s := l.session(id)
	var w *wire
	if s == nil {
		err = &offlineError{msg: fmt.Sprintf("identity %q: no connection: its client has not connected in this run", iothub.ClientID(id.DeviceID, id.ModuleID))}
	} else {
		w, err = s.current()
	}
	if err != nil {
		if _, kerr := l.opts.Keys.Keys(l.ctx, id); kerr != nil && (s == nil || s.snapshot() == stRefused) {
			// Nobody can send for it any more: it left the cache (or was disabled), and
			// without a connection the message would block the queue forever.
			return done(&rejectedError{fmt.Errorf("send for %q: no connection and %w", id, kerr)})
		}
		l.markUnreachable(id)
		return done(err)
	}
	o := &sending{l: l, id: id, done: make(chan struct{})}
	o.tok = w.pc.Publish(topic, 1, false, m.Body)
	if !w.track(o) {
		o.finish(s.offline("connection lost before the message was sent", w.err))
	}
	return o
}

// telemetryTopic builds the message's topic on the sender's own connection. The hub's
// stamps $.cdid and $.cmid are left out: the connection names the sender, and IoT Hub
// stamps its own.
func telemetryTopic(id sas.Identity, m iothub.Message) (string, error) {
	if n := m.Size(); n > iothub.MaxMessageSize {
		return "", fmt.Errorf("message of %d bytes, over the %d-byte limit", n, iothub.MaxMessageSize)
	}
	sys := maps.Clone(m.System)
	delete(sys, iothub.SysConnDeviceID)
	delete(sys, iothub.SysConnModuleID)
	m.System = sys
	topic := iothub.TelemetryTopic(id.DeviceID, id.ModuleID, m.Bag())
	if len(topic) > iothub.MaxTopicLength {
		return "", fmt.Errorf("properties make a %d-byte topic, over the %d-byte limit", len(topic), iothub.MaxTopicLength)
	}
	return topic, nil
}

// sending is the outcome of one message (hub.Outcome); the connection's ackLoop finishes
// it.
type sending struct {
	l    *Link
	id   sas.Identity
	tok  mqtt.Token
	done chan struct{}
	err  error
}

func (o *sending) Done() <-chan struct{} { return o.done }

// Err returns the outcome once Done is closed (nil before).
func (o *sending) Err() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

// finish records the outcome; an offline failure marks the identity unreachable first, so
// that LinkState is down by the time the pump reads it.
func (o *sending) finish(err error) {
	if err != nil && errors.Is(err, hub.ErrOffline) {
		o.l.markUnreachable(o.id)
	}
	o.err = err
	close(o.done)
}

// finished is an outcome known at once.
type finished struct{ err error }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (f finished) Done() <-chan struct{} { return closedCh }
func (f finished) Err() error            { return f.err }

func done(err error) hub.Outcome { return finished{err} }
