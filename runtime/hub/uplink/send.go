package uplink

import (
	"context"
	"errors"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Send sends one message on behalf of id and waits for IoT Hub's acknowledgement
// (hub.Upstream). Errors are mapped as hubError says.
func (l *Link) Send(ctx context.Context, id sas.Identity, m iothub.Message) error {
	return hubError(l.cloud.Send(ctx, id, m))
}

// SendAsync starts sending one message on behalf of id (hub.PipelinedUpstream): messages of
// successive calls reach IoT Hub in call order; the outcome's error is mapped as hubError
// says.
func (l *Link) SendAsync(ctx context.Context, id sas.Identity, m iothub.Message) hub.Outcome {
	return outcome{l.cloud.SendAsync(ctx, id, m)}
}

// outcome maps the error of an upstream.Sending when it is read, so that no goroutine is
// needed per message.
type outcome struct{ s *upstream.Sending }

func (o outcome) Done() <-chan struct{} { return o.s.Done() }
func (o outcome) Err() error            { return hubError(o.s.Err()) }

// hubError maps an error of the upstream client onto the hub's sentinels, keeping the
// original in the chain: upstream.ErrRejected (IoT Hub will never take the message) becomes
// hub.ErrRejected, which dead-letters it; upstream.ErrOffline becomes hub.ErrOffline, on
// which the pump waits for the link. Everything else is transient for the hub as it is.
func hubError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, upstream.ErrRejected):
		return &mapped{kind: hub.ErrRejected, err: err}
	case errors.Is(err, upstream.ErrOffline):
		return &mapped{kind: hub.ErrOffline, err: err}
	}
	return err
}

// mapped is an upstream error that also matches a hub sentinel; its text is the original's.
type mapped struct {
	kind error // the hub's sentinel
	err  error // upstream's error
}

func (m *mapped) Error() string   { return m.err.Error() }
func (m *mapped) Unwrap() []error { return []error{m.kind, m.err} }
