package moduleclient

import (
	"context"
	"fmt"
	"maps"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// SendEvent sends a device-to-cloud message (or a module's default output) on
// devices/{d}[/modules/{m}]/messages/events/{bag} at QoS 1 and returns when the hub
// acknowledged it (PUBACK). The bag carries m.Properties and m.System (message id, content
// type, ...), fully percent-encoded.
//
// A message over iothub.MaxMessageSize (256 KB, as Message.Size counts) fails with
// ErrTooLarge before anything is sent. While the client reconnects (a lost connection, a token
// renewal) SendEvent waits for the new connection; if a connection drops before the PUBACK,
// the message is sent again on the next one, so the hub may receive it twice (at-least-once).
// If ctx ends first, SendEvent returns ctx.Err() and the message may or may not have arrived.
func (c *Client) SendEvent(ctx context.Context, m iothub.Message) error {
	if size := m.Size(); size > iothub.MaxMessageSize {
		return fmt.Errorf("send event from %q: %d bytes, over the %d-byte limit: %w", c.clientID, size, iothub.MaxMessageSize, ErrTooLarge)
	}
	topic := iothub.TelemetryTopic(c.cs.DeviceID, c.cs.ModuleID, m.Bag())
	if len(topic) > iothub.MaxTopicLength {
		return fmt.Errorf("send event from %q: properties take %d bytes of topic, over the %d-byte limit: %w",
			c.clientID, len(topic), iothub.MaxTopicLength, ErrTooLarge)
	}
	if err := c.publish(ctx, topic, m.Body); err != nil {
		return fmt.Errorf("send event from %q: %w", c.clientID, err)
	}
	return nil
}

// SendOutput sends m to the module output named output: SendEvent with the system property
// "$.on" (iothub.SysOutputName) set, which edgeHub routes as
// /messages/modules/{m}/outputs/{output}. m is not modified. Modules only: a device client
// gets ErrNotModule.
func (c *Client) SendOutput(ctx context.Context, output string, m iothub.Message) error {
	if c.cs.ModuleID == "" {
		return fmt.Errorf("send to output %q from device %q: %w", output, c.cs.DeviceID, ErrNotModule)
	}
	if output == "" {
		return fmt.Errorf("send to output from %q: %w: empty output name", c.clientID, ErrInvalidArgument)
	}
	sys := maps.Clone(m.System)
	if sys == nil {
		sys = map[string]string{}
	}
	sys[iothub.SysOutputName] = output
	m.System = sys
	return c.SendEvent(ctx, m)
}
