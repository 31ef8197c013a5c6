package hub

import (
	"context"
	"errors"

	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// errStale aborts a cache update that has nothing to change.
var errStale = errors.New("stale")

// onCloudDesired is the Cloud's desired-patch handler. It runs on the link's goroutine, so
// it only hands the patch to the identity's worker (or, for the hub's own module twin, to
// the configuration). A patch that does not fit in the worker's queue becomes a resync:
// the GET and diff recover it.
func (s *Server) onCloudDesired(id sas.Identity, body []byte, version int64) {
	if id == s.hubIdentity() {
		s.hubCfg.desiredPatch(body, version)
		return
	}
	if s.twins == nil {
		return
	}
	patch, err := twin.DecodePatch(body)
	if err != nil {
		s.log.Warn("malformed desired patch from IoT Hub; resynchronising instead", "identity", id, "version", version, "err", err)
		s.twins.requestResync(id)
		return
	}
	delete(patch, "$version")
	if !s.twins.enqueue(id, twinJob{kind: jobDesired, patch: patch, version: version}) {
		s.twins.requestResync(id)
	}
}

// desired applies a desired patch from IoT Hub: to the cached twin when it is the next
// version, and to the client when it is connected and subscribed. The client gets the
// patch as is when it directly follows what it has seen; after a gap (patches lost while
// it or the link was away, or dropped on a full queue), or when it has seen nothing yet, it
// gets a resync instead. A patch not newer than what the client has seen is dropped.
func (t *twinSync) desired(ctx context.Context, id sas.Identity, patch map[string]any, version int64) {
	err := t.cache.Update(id, func(e *twincache.Entry) error {
		if e.Twin == nil || version != e.Twin.DesiredVersion+1 {
			return errStale // unknown or out of step: the next fetch brings the truth
		}
		if e.Twin.Desired == nil {
			e.Twin.Desired = map[string]any{}
		}
		twin.Merge(e.Twin.Desired, patch)
		e.Twin.DesiredVersion = version
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		t.log.Warn("caching a desired patch failed", "identity", id, "err", err)
	}
	clientID := iothub.ClientID(id.DeviceID, id.ModuleID)
	if !t.s.subscribedTo(clientID, iothub.KindTwinPatchDesired) {
		return // its next subscription resyncs it
	}
	e, _, err := t.cache.Get(id)
	if err != nil {
		t.log.Warn("reading the twin cache failed", "identity", id, "err", err)
	}
	switch {
	case e.Seen != nil && version <= e.Seen.Version:
		return // stale
	case e.Seen != nil && version == e.Seen.Version+1:
		if t.pushDesired(ctx, id, patch, version) {
			seen := twin.Clone(e.Seen.Desired)
			if seen == nil {
				seen = map[string]any{}
			}
			twin.Merge(seen, patch)
			t.setSeen(id, seen, version)
		}
	default:
		t.resync(id)
	}
}

// resync brings the client's desired properties up to date: it fetches the twin (from the
// cache when the link is down) and, if the client is subscribed, sends it the difference
// between what it has seen and the current desired section, as one patch with the current
// $version. A client that has seen nothing gets the whole desired section.
func (t *twinSync) resync(id sas.Identity) {
	ctx := t.s.baseContext()
	if ctx.Err() != nil {
		return
	}
	clientID := iothub.ClientID(id.DeviceID, id.ModuleID)
	if !t.s.subscribedTo(clientID, iothub.KindTwinPatchDesired) {
		return
	}
	var doc *twin.Twin
	if t.cloud != nil && t.cloud.Connected() {
		fresh, err := t.fetch(ctx, id)
		if err != nil {
			t.log.Info("desired resync: twin not fetched from IoT Hub; using the cache", "identity", id, "err", err)
		}
		doc = fresh
	}
	e, _, err := t.cache.Get(id)
	if err != nil {
		t.log.Warn("reading the twin cache failed", "identity", id, "err", err)
		return
	}
	from := map[string]any{}
	if e.Seen != nil {
		from = e.Seen.Desired
	}
	if doc == nil {
		// Offline: the cached twin, unless the client has seen newer than it.
		if doc = e.Twin; doc == nil || (e.Seen != nil && doc.DesiredVersion < e.Seen.Version) {
			return
		}
	}
	diff := twin.Diff(from, doc.Desired)
	if len(diff) == 0 {
		if e.Seen == nil || e.Seen.Version != doc.DesiredVersion {
			t.setSeen(id, doc.Desired, doc.DesiredVersion)
		}
		return
	}
	if t.pushDesired(ctx, id, diff, doc.DesiredVersion) {
		t.setSeen(id, doc.Desired, doc.DesiredVersion)
	}
}

// pushDesired sends a desired patch to the client at its subscription's QoS and reports
// whether it was delivered (acknowledged, for QoS 1).
func (t *twinSync) pushDesired(ctx context.Context, id sas.Identity, patch map[string]any, version int64) bool {
	topic := iothub.Topic{Kind: iothub.KindTwinPatchDesired, Version: version, HasVersion: true}
	err := t.s.delivery.notify(ctx, iothub.ClientID(id.DeviceID, id.ModuleID), topic, twin.DesiredNotification(patch, version), t.s.opts.AckTimeout)
	if err != nil {
		t.log.Info("desired patch not delivered; the next subscription resyncs", "identity", id, "version", version, "err", err)
		return false
	}
	return true
}

// linkUp is called when the link to IoT Hub comes back: every connected client subscribed
// to desired patches is resynchronised, and pending reported patches are flushed.
func (t *twinSync) linkUp() {
	t.wakeFlusher()
	for _, c := range t.s.conns.all() {
		if t.s.subscribedTo(c.cl.ID, iothub.KindTwinPatchDesired) {
			t.requestResync(c.creds.identity)
		}
	}
}
