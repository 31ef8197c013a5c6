package moduleclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// resyncTimeout bounds the twin GET made after a (re)connection. When it fails, the next
// connection tries again.
const resyncTimeout = time.Minute

// twinResponse is a message on $iothub/twin/res/{status}/?$rid={rid}[&$version={n}].
type twinResponse struct {
	status  int
	version int64 // 0 when the hub sent none (edgeHub never does)
	body    []byte
}

// deliverTwinResponse hands a response to the request waiting for its $rid. Responses nobody
// waits for (the request timed out, or was answered already) are dropped.
func (c *Client) deliverTwinResponse(t iothub.Topic, body []byte) {
	c.mu.Lock()
	ch := c.pending[t.RequestID]
	c.mu.Unlock()
	if ch == nil {
		c.log.Debug("twin response for no pending request", "rid", t.RequestID, "status", t.Status)
		return
	}
	select {
	case ch <- twinResponse{status: t.Status, version: t.Version, body: body}:
	default: // a duplicate answer
	}
}

// twinRequest publishes a twin request under a new $rid and waits for the matching response.
// If the connection drops first, the request is sent again on the next connection with the
// same $rid. It gives up when ctx is done.
func (c *Client) twinRequest(ctx context.Context, topic func(rid string) string, body []byte) (twinResponse, error) {
	rid := c.rids.next()
	ch := make(chan twinResponse, 1)
	c.mu.Lock()
	c.pending[rid] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, rid)
		c.mu.Unlock()
	}()
	name := topic(rid)
	for {
		cn, err := c.acquire(ctx)
		if err != nil {
			return twinResponse{}, err
		}
		r, retry, err := c.awaitTwin(ctx, cn, cn.pc.Publish(name, 1, false, body), ch)
		cn.inflight.Done()
		if !retry {
			return r, err
		}
	}
}

// awaitTwin waits for the response to a twin request published on cn.
func (c *Client) awaitTwin(ctx context.Context, cn *conn, tok mqtt.Token, ch <-chan twinResponse) (twinResponse, bool, error) {
	published := tok.Done()
	for {
		select {
		case r := <-ch:
			return r, false, nil
		case <-published:
			published = nil
			if err := tok.Error(); err != nil {
				retry, err := c.publishFailed(ctx, cn, err)
				return twinResponse{}, retry, err
			}
		case <-cn.lost:
			return twinResponse{}, true, nil
		case <-ctx.Done():
			return twinResponse{}, false, ctx.Err()
		case <-c.ctx.Done():
			return twinResponse{}, false, ErrClosed
		}
	}
}

// GetTwin fetches the twin ($iothub/twin/GET/?$rid=...) and returns its desired and reported
// sections. Each keeps its "$version" member (a json.Number); numbers are json.Number
// throughout, as twin.DecodePatch produces them. A status other than 200 is a *StatusError.
// The request waits for a connection while the client reconnects, and gives up when ctx is
// done.
func (c *Client) GetTwin(ctx context.Context) (desired, reported map[string]any, err error) {
	r, err := c.twinRequest(ctx, iothub.TwinGetTopic, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("get twin of %q: %w", c.clientID, err)
	}
	if r.status != iothub.StatusOK {
		return nil, nil, fmt.Errorf("get twin of %q: %w", c.clientID, &StatusError{Status: r.status, Body: r.body})
	}
	desired, reported, err = parseTwin(r.body)
	if err != nil {
		return nil, nil, fmt.Errorf("get twin of %q: %w", c.clientID, err)
	}
	return desired, reported, nil
}

// parseTwin decodes a device-facing twin document, {"desired":{...},"reported":{...}}. The
// 2017 form wrapped in {"properties":{...}} is accepted too; a missing section is empty.
func parseTwin(body []byte) (desired, reported map[string]any, err error) {
	doc, err := twin.DecodePatch(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: twin document: %w", ErrProtocol, err)
	}
	if props, ok := doc["properties"].(map[string]any); ok {
		doc = props
	}
	section := func(name string) (map[string]any, error) {
		switch v := doc[name].(type) {
		case nil:
			return map[string]any{}, nil
		case map[string]any:
			return v, nil
		default:
			return nil, fmt.Errorf("%w: twin document: %q is not an object", ErrProtocol, name)
		}
	}
	if desired, err = section("desired"); err != nil {
		return nil, nil, err
	}
	if reported, err = section("reported"); err != nil {
		return nil, nil, err
	}
	return desired, reported, nil
}

// UpdateReported sends a reported-properties patch (JSON merge patch: null deletes a key) and
// returns the new reported version from the 204 answer's $version, or 0 when the hub does not
// send one (edgeHub never does). A status outside 2xx (400 for an invalid patch, 429, 5xx) is a
// *StatusError. If the connection drops before the answer, the patch is sent again on the next
// connection; applying the same merge patch twice gives the same document.
func (c *Client) UpdateReported(ctx context.Context, patch map[string]any) (version int64, err error) {
	if patch == nil {
		patch = map[string]any{}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return 0, fmt.Errorf("update reported properties of %q: %w", c.clientID, err)
	}
	r, err := c.twinRequest(ctx, iothub.TwinPatchReportedTopic, body)
	if err != nil {
		return 0, fmt.Errorf("update reported properties of %q: %w", c.clientID, err)
	}
	if r.status < 200 || r.status > 299 {
		return 0, fmt.Errorf("update reported properties of %q: %w", c.clientID, &StatusError{Status: r.status, Body: r.body})
	}
	return r.version, nil
}

// OnDesired registers h for desired-property changes and subscribes to
// $iothub/twin/PATCH/properties/desired/#. patch is a JSON merge patch (null means deleted,
// numbers are json.Number) without "$version"; version is the desired version it leads to.
//
// IoT Hub does not queue desired patches for disconnected clients (protocol notes 5.3), so
// after every connection, and when h is first registered on a connected client, the client
// GETs the twin. If the desired version moved beyond the last one delivered, h receives the
// whole desired document as a patch, plus an explicit null for every property that was in the
// last document delivered and is gone now (so applying every patch h receives in order always
// yields the hub's document). On the first connection this delivers the initial desired
// properties. Notifications whose version is not newer than the last delivered are dropped.
//
// h runs on a goroutine of its own, one update at a time, in version order.
func (c *Client) OnDesired(h func(patch map[string]any, version int64)) {
	c.mu.Lock()
	c.onDesired = h
	c.mu.Unlock()
	c.updateSubscriptions()
}

// desiredUpdate is a desired-properties change waiting for the OnDesired callback.
type desiredUpdate struct {
	patch   map[string]any
	version int64
	// full marks a whole document from a twin GET, rather than a notification patch.
	full bool
	ack  func() // nil for resync documents
}

// desiredState is what the desired worker remembers. Only that goroutine touches it.
type desiredState struct {
	// version is the last desired version delivered (or seen in a full document).
	version int64
	// doc is the desired document as of version, once a full document has been seen.
	doc map[string]any
}

// receiveDesired queues a desired-patch notification. One that does not fit is acknowledged
// anyway and replaced by a resync: the GET after the queue drains recovers the change.
func (c *Client) receiveDesired(t iothub.Topic, m mqtt.Message) {
	patch, err := twin.DecodePatch(m.Payload())
	if err != nil {
		c.log.Warn("ignoring malformed desired-properties patch", "version", t.Version, "err", err)
		m.Ack()
		return
	}
	delete(patch, "$version")
	if !c.desiredQ.offer(desiredUpdate{patch: patch, version: t.Version, ack: m.Ack}) {
		c.desiredStale.Store(true)
		m.Ack()
		c.log.Warn("desired-properties queue full; will resynchronise from the twin", "version", t.Version)
	}
}

// applyDesired runs on the desired worker: it filters stale versions, keeps the document
// up to date and calls the handler.
func (c *Client) applyDesired(u desiredUpdate) {
	if u.ack != nil {
		defer u.ack()
	}
	defer c.resyncIfStale()
	c.mu.Lock()
	h := c.onDesired
	c.mu.Unlock()
	if h == nil {
		return
	}
	st := &c.desired
	if u.version <= st.version {
		if u.full && u.version == st.version {
			// The same state we delivered as patches: adopt it as the reference document
			// for computing deletions later.
			st.doc = twin.Clone(u.patch)
		}
		return
	}
	patch := u.patch
	switch {
	case u.full:
		patch = withDeletions(st.doc, u.patch)
		st.doc = twin.Clone(u.patch)
	case st.doc != nil:
		twin.Merge(st.doc, u.patch)
	}
	st.version = u.version
	c.safely("desired-properties handler", func() { h(patch, u.version) })
}

// resyncIfStale starts a resync once the queue has drained after a dropped notification.
func (c *Client) resyncIfStale() {
	if len(c.desiredQ.ch) == 0 && c.desiredStale.Swap(false) {
		go c.resyncDesired(nil)
	}
}

// resyncDesired GETs the twin and queues the full desired document. With cn set, it is tied
// to that connection: it gives up when cn drops (the next connection resyncs again).
func (c *Client) resyncDesired(cn *conn) {
	ctx, cancel := context.WithTimeout(c.ctx, resyncTimeout)
	defer cancel()
	if cn != nil {
		go func() {
			select {
			case <-cn.lost:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	desired, _, err := c.GetTwin(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("desired-properties resync failed", "err", err)
		}
		return
	}
	version, ok := versionOf(desired)
	if !ok {
		c.log.Warn("desired-properties resync: the twin has no desired $version")
		return
	}
	if !c.desiredQ.offer(desiredUpdate{patch: twin.StripReadOnly(desired), version: version, full: true}) {
		c.desiredStale.Store(true)
	}
}

// versionOf reads the "$version" member of a twin section.
func versionOf(section map[string]any) (int64, bool) {
	switch v := section["$version"].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case float64:
		return int64(v), true
	}
	return 0, false
}

// withDeletions returns doc (deep-copied) plus a null for every property of prev, at any
// depth, that doc no longer has. Applying the result to prev with merge-patch semantics gives
// doc. A nil prev gives a copy of doc.
func withDeletions(prev, doc map[string]any) map[string]any {
	out := twin.Clone(doc)
	if out == nil {
		out = map[string]any{}
	}
	for k, pv := range prev {
		nv, ok := out[k]
		if !ok {
			out[k] = nil
			continue
		}
		pm, pIsObject := pv.(map[string]any)
		nm, nIsObject := nv.(map[string]any)
		if pIsObject && nIsObject {
			out[k] = withDeletions(pm, nm)
		}
	}
	return out
}
