package fakehub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Captured device-to-cloud messages and cloud-to-device sends of the fake-only API. IoT Hub
// offers these over AMQP (the Event Hub-compatible endpoint, the /messages/devicebound
// link); the fake hub offers them over HTTP instead (protocol notes section 7):
//
//	GET  /fake/events?after=SEQ&limit=N[&wait=30s]   JSON array of events, oldest first
//	GET  /fake/events/stream?after=SEQ               Server-Sent Events, one event per message
//	POST /fake/devices/{d}/messages/devicebound      202 {"messageId":"..."}

// Limits of the events endpoints.
const (
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
	maxEventsWait      = 5 * time.Minute
	// streamKeepAlive is how often an idle event stream sends an SSE comment, so that
	// clients and proxies see the connection alive and a gone client is noticed.
	streamKeepAlive = 15 * time.Second
)

// eventJSON is the wire form of an Event. Body is base64 (encoding/json's []byte form);
// BodyText repeats it as a string when it is valid UTF-8, which telemetry usually is.
type eventJSON struct {
	Seq              int64             `json:"seq"`
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId,omitempty"`
	Body             []byte            `json:"body"`
	BodyText         *string           `json:"bodyText,omitempty"`
	Properties       map[string]string `json:"properties"`
	SystemProperties map[string]string `json:"systemProperties"`
	EnqueuedTime     time.Time         `json:"enqueuedTime"`
}

func toEventJSON(e Event) eventJSON {
	out := eventJSON{
		Seq: e.Seq, DeviceID: e.DeviceID, ModuleID: e.ModuleID,
		Body: e.Body, Properties: e.Properties, SystemProperties: e.SystemProperties,
		EnqueuedTime: e.EnqueuedTime,
	}
	if out.Body == nil {
		out.Body = []byte{}
	}
	if utf8.Valid(e.Body) {
		text := string(e.Body)
		out.BodyText = &text
	}
	if out.Properties == nil {
		out.Properties = map[string]string{}
	}
	if out.SystemProperties == nil {
		out.SystemProperties = map[string]string{}
	}
	return out
}

// listEvents answers the captured events after a sequence number. With wait it long-polls:
// the answer comes as soon as at least one event is there, or empty after wait.
func (a *restAPI) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := queryInt(q.Get("after"), "after", 0, 0, 1<<62)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	limit, err := queryInt(q.Get("limit"), "limit", defaultEventsLimit, 1, maxEventsLimit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		wait, err = time.ParseDuration(v)
		if err != nil || wait < 0 || wait > maxEventsWait {
			a.writeError(w, r, argumentInvalid(fmt.Sprintf("query parameter wait=%s: want a Go duration from 0s to %s, such as 30s", quote(v), maxEventsWait)))
			return
		}
	}

	var events []Event
	if wait == 0 {
		events = a.s.Events(after, int(limit))
	} else {
		// A long poll outlives any write timeout the listener may have.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		events, err = a.s.WaitEvents(ctx, after, int(limit))
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			a.writeError(w, r, fmt.Errorf("waiting for events after %d: %w", after, err))
			return
		}
	}
	out := make([]eventJSON, 0, len(events))
	for _, e := range events {
		out = append(out, toEventJSON(e))
	}
	a.writeJSON(w, http.StatusOK, out)
}

// streamEvents serves the events as Server-Sent Events: "id: <seq>" and one "data:" line
// with the event JSON per message. It starts after Last-Event-ID (what an EventSource
// sends when it reconnects), else after ?after=, else at the oldest retained event, and
// never skips or repeats an event because each read asks for the events after the last
// one written.
func (a *restAPI) streamEvents(w http.ResponseWriter, r *http.Request) {
	after, err := queryInt(r.URL.Query().Get("after"), "after", 0, 0, 1<<62)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, err = queryInt(v, "Last-Event-ID", 0, 0, 1<<62)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives any write timeout of the listener
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": fakehub event stream\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		a.writeErrorLate(r, fmt.Errorf("event stream: flushing: %w", err))
		return
	}

	ctx := r.Context()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, streamKeepAlive)
		events, err := a.s.WaitEvents(waitCtx, after, maxEventsLimit)
		cancel()
		if ctx.Err() != nil {
			return // the client went away or the server is closing
		}
		var frame strings.Builder
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			frame.WriteString(": keep-alive\n\n")
		case err != nil:
			// The hub is broken; end the stream and let the client reconnect.
			a.writeErrorLate(r, fmt.Errorf("event stream: waiting for events after %d: %w", after, err))
			return
		case len(events) == 0:
			return // WaitEvents' answer when the hub is closing
		}
		for _, e := range events {
			data, err := json.Marshal(toEventJSON(e))
			if err != nil {
				a.writeErrorLate(r, fmt.Errorf("event stream: encoding event %d: %w", e.Seq, err))
				return
			}
			fmt.Fprintf(&frame, "id: %d\ndata: %s\n\n", e.Seq, data)
			after = e.Seq
		}
		if _, err := fmt.Fprint(w, frame.String()); err != nil {
			return // the client went away
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writeErrorLate logs an error that happens after the response started, when no error
// response can be sent any more.
func (a *restAPI) writeErrorLate(r *http.Request, err error) {
	a.logger().Warn("fake API request ended early", "method", r.Method, "path", r.URL.Path, "err", err)
}

// queryInt parses an integer parameter within [lo, hi], def when empty.
func queryInt(v, name string, def, lo, hi int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, argumentInvalid(fmt.Sprintf("%s=%s: want an integer from %d to %d", name, quote(v), lo, hi))
	}
	return n, nil
}

// C2D message parameters, read from the query string or, failing that, from request
// headers of the same name. The request's own Content-Type is not used: curl and HTTP
// libraries set it for their own reasons.
const (
	c2dMessageID       = "iothub-messageid"
	c2dCorrelationID   = "iothub-correlationid"
	c2dAck             = "iothub-ack"
	c2dExpiry          = "iothub-expiry"
	c2dContentType     = "iothub-contenttype"
	c2dContentEncoding = "iothub-contentencoding"
	c2dAppPrefix       = "iothub-app-"
)

// sendC2D queues a cloud-to-device message whose payload is the request body.
//
// Application properties come from query parameters "iothub-app-<name>=<value>" (the name
// keeps its case) and from headers "iothub-app-<name>: <value>" (the name is lower-cased,
// since HTTP header names are case-insensitive); the query string wins.
func (a *restAPI) sendC2D(w http.ResponseWriter, r *http.Request) {
	deviceID := r.PathValue("d")
	msg, err := c2dFromRequest(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, maxRequestBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	msg.Body = body
	id, err := a.s.SendC2D(deviceID, msg)
	if err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, ""))
		return
	}
	a.writeJSON(w, http.StatusAccepted, map[string]string{"messageId": id})
}

// c2dFromRequest reads the message properties of a C2D send (not the body).
func c2dFromRequest(r *http.Request) (C2DMessage, error) {
	q := r.URL.Query()
	param := func(name string) string {
		if q.Has(name) {
			return q.Get(name)
		}
		return r.Header.Get(name)
	}
	m := C2DMessage{
		MessageID:       param(c2dMessageID),
		CorrelationID:   param(c2dCorrelationID),
		ContentType:     param(c2dContentType),
		ContentEncoding: param(c2dContentEncoding),
		Ack:             param(c2dAck),
	}
	switch m.Ack {
	case "", "none", "positive", "negative", "full":
	default:
		return C2DMessage{}, argumentInvalid(fmt.Sprintf("%s=%s: want none, positive, negative or full", c2dAck, quote(m.Ack)))
	}
	if v := param(c2dExpiry); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return C2DMessage{}, argumentInvalid(fmt.Sprintf("%s=%s: want an RFC 3339 time such as 2030-01-02T15:04:05Z", c2dExpiry, quote(v)))
		}
		m.ExpiryTime = t
	}
	props := map[string]string{}
	for name, values := range r.Header {
		if len(name) > len(c2dAppPrefix) && strings.EqualFold(name[:len(c2dAppPrefix)], c2dAppPrefix) {
			props[strings.ToLower(name[len(c2dAppPrefix):])] = values[0]
		}
	}
	for name, values := range q {
		if len(name) > len(c2dAppPrefix) && strings.EqualFold(name[:len(c2dAppPrefix)], c2dAppPrefix) {
			props[name[len(c2dAppPrefix):]] = values[0]
		}
	}
	if len(props) > 0 {
		m.Properties = props
	}
	return m, nil
}
