package perclient

import (
	"context"
	"fmt"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Cloud is the link as the hub's relay sees it (hub.Cloud): twins, direct methods and C2D
// of each identity over that identity's own connection, and the hub's own twin over the
// edge hub's connection. It is a separate type because hub.Cloud and hub.Presence both
// have an Attach method, with different arguments. Get it with Link.Cloud.
type Cloud struct{ l *Link }

// Cloud returns the hub.Cloud of the link.
func (l *Link) Cloud() *Cloud { return &Cloud{l: l} }

// Connected reports whether the edge hub's own connection is up: the hub then answers twin
// requests from IoT Hub and flushes reported properties; an identity whose own connection
// is down fails them with an error matching upstream.ErrOffline, and the hub falls back to
// its cache for it.
func (c *Cloud) Connected() bool { return c.l.Connected() }

// Attach asks IoT Hub to forward what subs name for id: for the edge hub's own identity
// (its configuration), on its connection; for a client, as Link.Attach.
func (c *Cloud) Attach(ctx context.Context, id sas.Identity, subs upstream.Subscriptions) error {
	return c.l.Attach(ctx, id, hub.Subscriptions{Desired: subs.Desired, Methods: subs.Methods, C2D: subs.C2D})
}

// GetTwin returns id's device-facing twin document, fetched on id's connection.
func (c *Cloud) GetTwin(ctx context.Context, id sas.Identity) ([]byte, error) {
	s, err := c.session(id, "get twin")
	if err != nil {
		return nil, err
	}
	body, err := s.getTwin(ctx)
	if err != nil {
		return nil, fmt.Errorf("get twin of %q: %w", id, err)
	}
	return body, nil
}

// UpdateReported applies a reported patch to id's twin on id's connection and returns the
// new reported version.
func (c *Cloud) UpdateReported(ctx context.Context, id sas.Identity, patch []byte) (int64, error) {
	s, err := c.session(id, "update reported properties")
	if err != nil {
		return 0, err
	}
	v, err := s.updateReported(ctx, patch)
	if err != nil {
		return 0, fmt.Errorf("update reported properties of %q: %w", id, err)
	}
	return v, nil
}

// RespondMethod answers the method request rid that OnMethod delivered for id, on id's
// connection: rid is IoT Hub's own request id.
func (c *Cloud) RespondMethod(ctx context.Context, id sas.Identity, rid string, status int, payload []byte) error {
	s, err := c.session(id, "answer method")
	if err != nil {
		return err
	}
	if err := s.respondMethod(ctx, rid, status, payload); err != nil {
		return fmt.Errorf("answer method request %q of %q: %w", rid, id, err)
	}
	return nil
}

// OnDesired registers the handler of desired patches (the body as IoT Hub sent it, with
// "$version"). Handlers are called from each identity's own goroutine, in arrival order.
func (c *Cloud) OnDesired(h func(id sas.Identity, patch []byte, version int64)) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.onDesired = h
}

// OnMethod registers the handler of direct method requests; h must hand the call on and
// return, and the answer goes back with RespondMethod.
func (c *Cloud) OnMethod(h func(id sas.Identity, name, rid string, payload []byte)) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.onMethod = h
}

// OnC2D registers the handler of C2D messages for leaf devices: a message is acknowledged
// to IoT Hub only when h returns nil.
func (c *Cloud) OnC2D(h func(id sas.Identity, m iothub.Message) error) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.onC2D = h
}

func (c *Cloud) session(id sas.Identity, what string) (*session, error) {
	if s := c.l.session(id); s != nil {
		return s, nil
	}
	return nil, &offlineError{msg: fmt.Sprintf("%s of %q: no connection: its client has not connected in this run",
		what, iothub.ClientID(id.DeviceID, id.ModuleID))}
}
