package perclient

import (
	"context"
	"fmt"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Attach records that id's client is connected to the hub with subs (hub.Presence): its
// connection to IoT Hub subscribes to what subs name (desired patches, method requests,
// C2D for a device), now or when it is next up, and is not closed for idleness while the
// client stays. The hub calls it after Resolve or Keys accepted the client, so the session
// exists; if not (a race with the hub's revalidation), the error matches hub.ErrOffline and
// the next connection of the client attaches it again.
func (l *Link) Attach(_ context.Context, id sas.Identity, subs hub.Subscriptions) error {
	s := l.session(id)
	if s == nil {
		return &offlineError{msg: fmt.Sprintf("attach %q: no connection", iothub.ClientID(id.DeviceID, id.ModuleID))}
	}
	s.setSubs(subs, true)
	return nil
}

// Detach records that id's client left the hub (hub.Presence): its connection unsubscribes
// from everything but twin answers (IoT Hub then answers method calls with
// DeviceNotOnline and keeps C2D messages), and stays open for Options.IdleTimeout to send
// what the client left in the store.
func (l *Link) Detach(_ context.Context, id sas.Identity) error {
	if s := l.session(id); s != nil {
		s.setSubs(hub.Subscriptions{}, false)
	}
	return nil
}
