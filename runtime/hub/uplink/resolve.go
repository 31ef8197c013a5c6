package uplink

import (
	"context"
	"errors"
	"fmt"

	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Resolve authenticates a client on its behalf with IoT Hub (hub.IdentityResolver):
// password is the SAS token the client presented. When IoT Hub accepts it, the identity's
// record (keys, generation id, status) is cached before Resolve returns nil; the hub then
// verifies the token against the cache. A 404 or 403 answer also removes the identity from
// the cache: it was deleted or left the edge device's scope. While the link is down the
// error wraps hub.ErrOffline: a client the cache cannot verify is refused.
func (l *Link) Resolve(ctx context.Context, id sas.Identity, password string) error {
	got, err := l.cloud.Authenticate(ctx, id, password)
	switch {
	case err == nil:
	case errors.Is(err, upstream.ErrNotFound), errors.Is(err, upstream.ErrOutOfScope):
		if _, cached := l.cache.Get(id); cached {
			if derr := l.cache.Delete(ctx, id); derr != nil {
				return errors.Join(err, fmt.Errorf("removing it from the cache: %w", derr))
			}
			l.log.Info("identity removed from the cache: IoT Hub no longer knows it in this scope", "identity", id.String(), "err", err)
		}
		return err
	default:
		return hubError(err)
	}
	rec, err := recordOf(got)
	if err != nil {
		return err
	}
	old, cached := l.cache.Get(id)
	if cached && old == rec {
		return nil // nothing new: the token itself does not verify with these keys
	}
	if err := l.cache.Put(ctx, rec); err != nil {
		return fmt.Errorf("caching identity %q: %w", id, err)
	}
	if cached {
		l.log.Info("identity updated from IoT Hub", "identity", id.String(), "generation_id", rec.GenerationID)
	} else {
		l.log.Info("identity learned from IoT Hub", "identity", id.String(), "generation_id", rec.GenerationID)
	}
	return nil
}

// recordOf turns IoT Hub's record into the cache's. Only symmetric-key identities can be
// cached: the hub verifies SAS tokens.
func recordOf(r upstream.Identity) (identities.Record, error) {
	rec := identities.Record{DeviceID: r.DeviceID, ModuleID: r.ModuleID, Keys: r.Keys(),
		Disabled: !r.Enabled(), GenerationID: r.GenerationID}
	if rec.Keys.Primary == "" && rec.Keys.Secondary == "" {
		return identities.Record{}, fmt.Errorf("identity %q authenticates with %q, not symmetric keys: %w",
			r.ID(), r.Authentication.Type, ErrNoKeys)
	}
	return rec, nil
}
