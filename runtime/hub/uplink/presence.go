package uplink

import (
	"context"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Attach attaches id on the upstream connection with what it subscribed to locally
// (hub.Presence). The upstream client remembers the attachment and makes it again after
// every reconnection; while the link is down the error wraps hub.ErrOffline and the
// attachment follows when it returns.
func (l *Link) Attach(ctx context.Context, id sas.Identity, subs hub.Subscriptions) error {
	return hubError(l.cloud.Attach(ctx, id, upstream.Subscriptions{Desired: subs.Desired, Methods: subs.Methods, C2D: subs.C2D}))
}

// Detach detaches id (hub.Presence); while the link is down there is nothing to tell.
func (l *Link) Detach(ctx context.Context, id sas.Identity) error {
	return hubError(l.cloud.Detach(ctx, id))
}
