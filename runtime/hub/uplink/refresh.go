package uplink

import (
	"context"
	"errors"
	"fmt"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// action is what a refresh does with one cached identity.
type action int

const (
	keep   action = iota // the cache is up to date
	update               // replace the record
	remove               // delete the record
	retry                // no verdict: keep the record, the round is incomplete
	stop                 // the link is down: keep the record, stop the round
)

func (a action) String() string {
	return [...]string{"keep", "update", "remove", "retry", "stop"}[a]
}

// decide is the refresh rule (the table in the package documentation): what to do with
// the cached record given IoT Hub's answer to an identity GET. It returns the new record
// for update.
func decide(cached identities.Record, got upstream.Identity, err error) (identities.Record, action) {
	switch {
	case err == nil:
		rec, rerr := recordOf(got)
		switch {
		case rerr != nil:
			return identities.Record{}, remove
		case rec == cached:
			return cached, keep
		}
		return rec, update
	case errors.Is(err, upstream.ErrNotFound), errors.Is(err, upstream.ErrOutOfScope):
		return identities.Record{}, remove
	case errors.Is(err, upstream.ErrOffline):
		return identities.Record{}, stop
	}
	return identities.Record{}, retry
}

// Refresh runs one refresh round now: every cached identity is asked about and the cache
// updated by decide's rule. It returns nil when every identity got a verdict, else an error
// (wrapping hub.ErrOffline when the link went down: the round stopped there). Run calls it
// periodically; calling it meanwhile is safe.
func (l *Link) Refresh(ctx context.Context) error {
	var (
		counts [stop + 1]int
		errs   []error
	)
	for _, cached := range l.cache.List() {
		id := cached.Identity()
		got, err := l.cloud.GetIdentity(ctx, id)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rec, act := decide(cached, got, err)
		counts[act]++
		log := l.log.With("identity", id.String())
		switch act {
		case update:
			if perr := l.cache.Put(ctx, rec); perr != nil {
				errs = append(errs, fmt.Errorf("caching identity %q: %w", id, perr))
				continue
			}
			log.Info("identity refreshed from IoT Hub", "disabled", rec.Disabled,
				"keys_changed", rec.Keys != cached.Keys, "generation_id", rec.GenerationID)
		case remove:
			if derr := l.cache.Delete(ctx, id); derr != nil {
				errs = append(errs, fmt.Errorf("removing identity %q: %w", id, derr))
				continue
			}
			reason := "no symmetric keys"
			if err != nil {
				reason = err.Error()
			}
			log.Info("identity removed from the cache", "reason", reason)
		case retry:
			errs = append(errs, err)
		case stop:
			return &mapped{kind: hub.ErrOffline, err: err}
		}
	}
	l.log.Debug("identity cache refreshed", "kept", counts[keep], "updated", counts[update],
		"removed", counts[remove], "failed", counts[retry])
	return errors.Join(errs...)
}
