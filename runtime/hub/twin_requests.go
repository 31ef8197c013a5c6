package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// IoT Hub error codes in twin answers (the fake hub uses the same).
const (
	errCodeFormat          = 400006 // the body is not a JSON object
	errCodeArgumentInvalid = 400004 // a twin limit is broken
	errCodeThrottled       = 429001
	errCodeServer          = 500001
)

// handleRequest handles a PUBLISH on an "$iothub" topic that passed the ACL: twin GET,
// reported patch, method response. It runs in the client's read goroutine (the ingest
// hook), so it never waits for the cloud: a reported patch is stored durably here, before
// the PUBACK, and everything that waits runs on the identity's twin worker. A non-nil
// error refuses the publish (the caller closes the connection); it has been logged.
func (s *Server) handleRequest(cl *mqtt.Client, t iothub.Topic, payload []byte) error {
	id, _ := identityOf(cl.ID) // the authentication hook checked the client id
	if t.Kind != iothub.KindMethodResponse && s.twins == nil {
		s.stats.ignored.Add(1)
		s.log.Debug("twin request without a twin cache (Deps.Twins); acknowledged and ignored", "client_id", cl.ID, "kind", t.Kind.String())
		return nil
	}
	// The $rid is echoed into a topic: one that cannot be is refused, as IoT Hub does.
	if err := iothub.ValidateRequestID(t.RequestID); err != nil {
		s.stats.malformed.Add(1)
		s.log.Warn("request id cannot be echoed, closing connection", "client_id", cl.ID, "err", err)
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	switch t.Kind {
	case iothub.KindTwinGet:
		if !s.twins.enqueue(id, twinJob{kind: jobGet, rid: t.RequestID}) {
			s.twins.respond(id, iothub.StatusTooManyRequests, t.RequestID, 0,
				errorBody(errCodeThrottled, "too many twin requests of %q are waiting", id))
		}
	case iothub.KindTwinPatchReported:
		s.twins.patchReported(id, t.RequestID, payload)
	case iothub.KindMethodResponse:
		if !s.methods.answer(cl.ID, t.RequestID, t.Status, payload) {
			s.log.Debug("method response for no pending call; dropped", "client_id", cl.ID, "rid", t.RequestID)
		}
	}
	return nil
}

// respond writes a twin answer to id's connection ($iothub/twin/res/{status}/?$rid=...,
// with &$version=n when version > 0). A client that left or is not subscribed to
// $iothub/twin/res/# does not get it, as with IoT Hub.
func (t *twinSync) respond(id sas.Identity, status int, rid string, version int64, body []byte) {
	topic := iothub.Topic{Kind: iothub.KindTwinResponse, Status: status, RequestID: rid, Version: version, HasVersion: version > 0}
	if err := t.s.delivery.sendNoAck(iothub.ClientID(id.DeviceID, id.ModuleID), topic, body, t.s.opts.AckTimeout); err != nil {
		t.log.Debug("twin answer not delivered", "identity", id, "rid", rid, "status", status, "err", err)
	}
}

// patchReported validates and stores a reported patch, then lets the worker answer it. It
// runs in the client's read goroutine: the patch is durable before the client's PUBACK,
// and a GET the client sends next sees it.
func (t *twinSync) patchReported(id sas.Identity, rid string, body []byte) {
	patch, err := twin.DecodePatch(body)
	if err != nil {
		t.respond(id, iothub.StatusBadRequest, rid, 0, errorBody(errCodeFormat, "reported properties: %v", err))
		return
	}
	_, err = t.cache.AddReported(id, patch, t.s.opts.Now())
	var le *twin.LimitError
	switch {
	case errors.As(err, &le):
		t.respond(id, iothub.StatusBadRequest, rid, 0, errorBody(errCodeArgumentInvalid, "%v", le))
		return
	case errors.Is(err, twincache.ErrFull):
		t.respond(id, iothub.StatusTooManyRequests, rid, 0, errorBody(errCodeThrottled, "reported properties: %v", err))
		return
	case err != nil:
		t.log.Error("reported patch not stored", "identity", id, "err", err)
		t.respond(id, iothub.StatusServerError, rid, 0, errorBody(errCodeServer, "reported properties could not be stored"))
		return
	}
	if !t.enqueue(id, twinJob{kind: jobPatched, rid: rid}) {
		// Stored, but the worker is swamped: answer now, without IoT Hub's version.
		t.respond(id, iothub.StatusNoContent, rid, 0, nil)
		t.wakeFlusher()
	}
}

// get answers a twin GET: from IoT Hub when the link is up (caching the answer), else
// from the cache, else an empty twin. What the client receives becomes what it has seen
// of its desired properties.
func (t *twinSync) get(ctx context.Context, id sas.Identity, rid string) {
	doc, status, body := t.current(ctx, id)
	if status != iothub.StatusOK {
		t.respond(id, status, rid, 0, body)
		return
	}
	t.respond(id, iothub.StatusOK, rid, 0, doc.DeviceJSON())
	t.setSeen(id, doc.Desired, doc.DesiredVersion)
}

// current returns id's twin: fetched from IoT Hub when the link is up, else the cached
// one, else an empty twin (edge-runtime-behaviour.md F.6). A definite refusal from IoT Hub
// (a 4xx other than 429: the identity is unknown or outside the scope) is returned as the
// status and body to answer instead.
func (t *twinSync) current(ctx context.Context, id sas.Identity) (*twin.Twin, int, []byte) {
	if t.cloud != nil && t.cloud.Connected() {
		doc, err := t.fetch(ctx, id)
		if err == nil {
			return doc, iothub.StatusOK, nil
		}
		var se *upstream.StatusError
		if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != iothub.StatusTooManyRequests {
			return nil, se.Status, se.Body
		}
		t.log.Info("twin not fetched from IoT Hub; answering from the cache", "identity", id, "err", err)
	}
	e, ok, err := t.cache.Get(id)
	if err != nil {
		t.log.Warn("reading the twin cache failed; answering an empty twin", "identity", id, "err", err)
	}
	if ok && e.Twin != nil {
		return e.Twin, iothub.StatusOK, nil
	}
	return twin.New(), iothub.StatusOK, nil
}

// fetch GETs id's twin from IoT Hub and caches it (with the pending reported patches
// re-applied on top).
func (t *twinSync) fetch(ctx context.Context, id sas.Identity) (*twin.Twin, error) {
	ctx, cancel := withTimeout(ctx, t.s.opts.TwinTimeout)
	defer cancel()
	body, err := t.cloud.GetTwin(ctx, id)
	if err != nil {
		return nil, err
	}
	fresh, err := parseDeviceTwin(body)
	if err != nil {
		return nil, fmt.Errorf("twin of %q from IoT Hub: %w", id, err)
	}
	e, err := t.cache.Refresh(id, fresh, t.s.opts.Now())
	if err != nil {
		t.log.Warn("caching the twin failed", "identity", id, "err", err)
		return fresh, nil
	}
	return e.Twin, nil
}

// setSeen records what the client has received of its desired properties.
func (t *twinSync) setSeen(id sas.Identity, desired map[string]any, version int64) {
	err := t.cache.Update(id, func(e *twincache.Entry) error {
		e.Seen = &twincache.Seen{Desired: twin.Clone(desired), Version: version}
		if e.Seen.Desired == nil {
			e.Seen.Desired = map[string]any{}
		}
		return nil
	})
	if err != nil {
		t.log.Warn("recording the desired properties a client received failed", "identity", id, "err", err)
	}
}

// sendNoAck writes topic/payload to clientID at QoS 0 and returns once it is written: for
// answers and requests that are correlated by $rid and never retried (twin answers,
// method requests; IoT Hub sends method requests at QoS 0 too). Unlike deliver, it can run
// in the client's own read goroutine, since it waits for no PUBACK. It fails with
// ErrNotConnected when the client is not connected or not subscribed to topic.
func (d *deliverer) sendNoAck(clientID string, topic iothub.Topic, payload []byte, timeout time.Duration) error {
	cl, ok := d.mochi.Clients.Get(clientID)
	if !ok || cl.Closed() || cl.Net.Inline {
		return fmt.Errorf("%w: %q is not connected", ErrNotConnected, clientID)
	}
	if _, ok := subscribedQoS(cl, topic); !ok {
		return fmt.Errorf("%w: %q is not subscribed to %s", ErrNotConnected, clientID, topic.Kind)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic.String(),
		Payload:     payload,
	}
	stuck := time.AfterFunc(timeout, func() { cl.Stop(fmt.Errorf("%w: write to %q blocked for %v", ErrNoAck, clientID, timeout)) })
	err := cl.WritePacket(pk)
	stuck.Stop()
	if err != nil {
		return fmt.Errorf("%w: write to %q: %w", ErrNotConnected, clientID, err)
	}
	return nil
}

// subscribedTo reports whether clientID is connected and subscribed to topics of kind.
func (s *Server) subscribedTo(clientID string, kind iothub.Kind) bool {
	cl, ok := s.mochi.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return false
	}
	_, ok = subscribedQoS(cl, iothub.Topic{Kind: kind})
	return ok
}
