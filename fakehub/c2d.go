package fakehub

import (
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// maxPendingC2D is IoT Hub's per-device limit of pending cloud-to-device messages.
const maxPendingC2D = 50

// maxMessageIDLength caps message ids (protocol notes 8).
const maxMessageIDLength = 128

// c2dEntry is a pending C2D message. The queue lives in memory only: it does not survive a
// restart of the hub.
type c2dEntry struct {
	id      string
	topic   string
	body    []byte
	expiry  time.Time    // zero: no expiry
	cl      *mqtt.Client // the connection it was handed to, nil while waiting
	pid     uint16       // its packet id there, once written (QoS 1)
	removed bool         // acknowledged, expired or its device deleted
}

// SendC2D queues a cloud-to-device message for a device and returns its message id
// (m.MessageID, or a new UUID).
//
// The message is delivered as soon as the device is connected and subscribed to
// devices/{d}/messages/devicebound/# (or devices/+/messages/devicebound/#), at the granted
// QoS (1 for every SDK), on devices/{d}/messages/devicebound/{bag}. The bag is fully
// percent-encoded and always carries %24.mid and %24.to=%2Fdevices%2F{d}%2Fmessages%2Fdevicebound,
// then %24.cid, %24.exp, %24.ct, %24.ce, iothub-ack when set, then the application
// properties (protocol notes 3). A PUBACK completes the message; a message not acknowledged
// when the connection ends is delivered again on the next connection. Expired messages
// (ExpiryTime set and passed) are dropped.
//
// Errors: ErrNotFound (unknown device), ErrInvalid (a module, i.e. an id with '/', an
// invalid ack or property), ErrTooLarge (over 64 KB: body plus property names and values),
// ErrQueueFull (50 messages pending), ErrThrottled.
func (s *Server) SendC2D(deviceID string, m C2DMessage) (string, error) {
	id, err := s.sendC2D(deviceID, m)
	if err != nil {
		return "", fmt.Errorf("send C2D to %q: %w", deviceID, err)
	}
	return id, nil
}

func (s *Server) sendC2D(deviceID string, m C2DMessage) (string, error) {
	if strings.Contains(deviceID, "/") {
		return "", fmt.Errorf("%w: cloud-to-device messages go to devices only, not modules", ErrInvalid)
	}
	if s.throttle.Load() {
		return "", ErrThrottled
	}
	switch m.Ack {
	case "", "none", "positive", "negative", "full":
	default:
		return "", fmt.Errorf("%w: ack %q is not none, positive, negative or full", ErrInvalid, m.Ack)
	}
	msg := iothub.Message{Body: m.Body, Properties: map[string]string{}, System: map[string]string{}}
	for k, v := range m.Properties {
		if _, system := systemKey(k); system || k == "" {
			return "", fmt.Errorf("%w: application property name %q is empty or reserved", ErrInvalid, k)
		}
		msg.Properties[k] = v
	}
	id := m.MessageID
	if len(id) > maxMessageIDLength {
		return "", fmt.Errorf("%w: message id of %d characters, more than %d", ErrInvalid, len(id), maxMessageIDLength)
	}
	if id == "" {
		var err error
		if id, err = newMessageID(); err != nil {
			return "", err
		}
	}
	for name, v := range map[string]string{
		iothub.SysCorrelationID:   m.CorrelationID,
		iothub.SysContentType:     m.ContentType,
		iothub.SysContentEncoding: m.ContentEncoding,
		iothub.SysAck:             m.Ack,
	} {
		if v != "" {
			msg.System[name] = v
		}
	}
	if !m.ExpiryTime.IsZero() {
		msg.System[iothub.SysExpiry] = m.ExpiryTime.UTC().Format(time.RFC3339Nano)
	}
	// The limit counts what the sender controls (body, application properties, system
	// property values); the message id and "to" the hub adds do not count against it.
	if n := msg.Size(); n > iothub.MaxC2DMessageSize {
		return "", fmt.Errorf("%w: message of %d bytes exceeds %d", ErrTooLarge, n, iothub.MaxC2DMessageSize)
	}
	msg.System[iothub.SysMessageID] = id
	msg.System[iothub.SysTo] = iothub.C2DTo(deviceID)
	topic := iothub.C2DTopic(deviceID, msg.Bag())
	if len(topic) > iothub.MaxTopicLength {
		return "", fmt.Errorf("%w: properties make a %d-byte topic, more than %d", ErrTooLarge, len(topic), iothub.MaxTopicLength)
	}
	entry := &c2dEntry{id: id, topic: topic, body: append([]byte(nil), m.Body...), expiry: m.ExpiryTime}

	s.mu.Lock()
	if _, ok := s.devices[deviceID]; !ok {
		s.mu.Unlock()
		return "", ErrNotFound
	}
	s.pruneC2DLocked(deviceID, s.now())
	if len(s.c2d[deviceID]) >= maxPendingC2D {
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %d messages are pending", ErrQueueFull, maxPendingC2D)
	}
	s.c2d[deviceID] = append(s.c2d[deviceID], entry)
	s.mu.Unlock()
	s.deliverC2D(deviceID)
	return id, nil
}

// systemKey reports whether an application property name would read back as a system
// property on the device (see iothub.MessageFromBag).
func systemKey(k string) (string, bool) {
	if name, ok := strings.CutPrefix(k, iothub.SystemPrefix); ok {
		return name, true
	}
	return k, k == iothub.SysAck || k == iothub.SysOperation
}

// PendingC2D returns the number of the device's C2D messages not yet acknowledged.
func (s *Server) PendingC2D(deviceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneC2DLocked(deviceID, s.now())
	return len(s.c2d[deviceID])
}

// pruneC2DLocked drops expired messages that are not in flight.
func (s *Server) pruneC2DLocked(deviceID string, now time.Time) {
	q := s.c2d[deviceID]
	out := q[:0]
	for _, e := range q {
		if e.cl == nil && !e.expiry.IsZero() && now.After(e.expiry) {
			e.removed = true
			continue
		}
		out = append(out, e)
	}
	clear(q[len(out):])
	if len(out) == 0 {
		delete(s.c2d, deviceID)
		return
	}
	s.c2d[deviceID] = out
}

// deliverC2D hands every waiting message of the device to its connection, if it has one
// subscribed to C2D. Messages already handed to a connection are not sent again until that
// connection ends.
func (s *Server) deliverC2D(deviceID string) {
	if s.oboDeliverC2D(deviceID) {
		return // the device is attached to an edge hub with "c2d" (obo_deliver.go)
	}
	var e effects
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		s.stopClients(e.stop)
	}()
	c := s.online[deviceID]
	if c == nil {
		return
	}
	qos, ok := subscription(c.cl, iothub.KindC2D, c.ident)
	if !ok {
		return
	}
	s.pruneC2DLocked(deviceID, s.now())
	for _, entry := range s.c2d[deviceID] {
		if entry.cl != nil {
			continue
		}
		entry.cl, entry.pid = c.cl, 0
		if !s.enqueueLocked(c, outItem{topic: entry.topic, payload: entry.body, qos: qos, c2d: entry}, &e) {
			entry.cl = nil
			return
		}
		if qos == 0 {
			entry.removed = true // at most once: a QoS 0 subscriber never acknowledges
		}
	}
	if qos == 0 {
		s.removeC2DLocked(deviceID, func(e *c2dEntry) bool { return e.removed })
	}
}

// c2dAcked completes the message a PUBACK acknowledges.
func (s *Server) c2dAcked(cl *mqtt.Client, pid uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[cl]
	if c == nil || c.ident.ModuleID != "" || pid == 0 {
		return
	}
	s.removeC2DLocked(c.ident.DeviceID, func(e *c2dEntry) bool { return e.cl == cl && e.pid == pid })
}

// c2dDropped makes a message pending again when mochi drops its inflight packet.
func (s *Server) c2dDropped(cl *mqtt.Client, pid uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.c2d {
		for _, e := range q {
			if e.cl == cl && e.pid == pid && pid != 0 {
				e.cl, e.pid = nil, 0
			}
		}
	}
}

func (s *Server) removeC2DLocked(deviceID string, match func(*c2dEntry) bool) {
	q := s.c2d[deviceID]
	out := q[:0]
	for _, e := range q {
		if match(e) {
			e.removed = true
			continue
		}
		out = append(out, e)
	}
	clear(q[len(out):])
	if len(out) == 0 {
		delete(s.c2d, deviceID)
		return
	}
	s.c2d[deviceID] = out
}
