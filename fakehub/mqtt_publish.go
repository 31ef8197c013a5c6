package fakehub

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// checkPublish enforces the dialect on an inbound PUBLISH. An error closes the connection:
//
//   - QoS 2 (protocol notes 2.3, 10);
//   - a topic that is not one of the documented device-to-hub topics: telemetry of the
//     connection's own identity, twin GET, reported PATCH, method response. IoT Hub's
//     behaviour for other topics is UNCONFIRMED (the notes say it "only supports the
//     documented topic names"); closing makes a client bug visible;
//   - a malformed property bag, or a $rid the hub could not echo safely;
//   - telemetry over 256 KB as iothub.Message.Size counts it (IoT Hub closes the connection;
//     nothing is captured).
func (s *Server) checkPublish(cl *mqtt.Client, pk packets.Packet) error {
	c := s.connOf(cl)
	if c == nil {
		return errors.New("PUBLISH before the session was established")
	}
	if pk.FixedHeader.Qos > 1 {
		return errors.New("QoS 2 PUBLISH is not supported by IoT Hub")
	}
	if c.obo != nil {
		if handled, err := s.oboCheckPublish(c, pk.TopicName, pk.Payload); handled {
			return err
		}
	}
	t, err := iothub.ParseTopic(pk.TopicName)
	if err != nil {
		return err
	}
	switch t.Kind {
	case iothub.KindTelemetry:
		if t.DeviceID != c.ident.DeviceID || t.ModuleID != c.ident.ModuleID {
			return fmt.Errorf("telemetry topic of %q published by %q", identityKey(t.DeviceID, t.ModuleID), c.key)
		}
		if n := iothub.MessageFromBag(pk.Payload, t.Bag).Size(); n > iothub.MaxMessageSize {
			return fmt.Errorf("D2C message of %d bytes exceeds %d", n, iothub.MaxMessageSize)
		}
	case iothub.KindTwinGet, iothub.KindTwinPatchReported, iothub.KindMethodResponse:
		if err := iothub.ValidateRequestID(t.RequestID); err != nil {
			return err
		}
	default:
		return fmt.Errorf("topic %q (%s) may not be published by a device", pk.TopicName, t.Kind)
	}
	return nil
}

// handlePublish processes an inbound PUBLISH that checkPublish accepted. The returned error
// is a mochi code: packets.ErrRejectPacket drops the message without PUBACK (throttling).
func (s *Server) handlePublish(cl *mqtt.Client, pk packets.Packet) error {
	c := s.connOf(cl)
	if c == nil {
		return packets.ErrRejectPacket
	}
	now := s.now()
	s.mu.Lock()
	s.touchLocked(c, now)
	s.mu.Unlock()
	if c.obo != nil {
		if handled, err := s.oboHandlePublish(c, pk, now); handled {
			return err
		}
	}
	t, err := iothub.ParseTopic(pk.TopicName)
	if err != nil {
		return packets.ErrRejectPacket // checkPublish parsed it; cannot happen
	}
	switch t.Kind {
	case iothub.KindTelemetry:
		if s.throttle.Load() {
			// S1-like throttling: the message is not acknowledged and not captured; SDKs
			// time out waiting for the PUBACK and send it again.
			return packets.ErrRejectPacket
		}
		s.capture(c.stamp(), t.Bag, pk.Payload, pk.FixedHeader.Retain, false, now)
	case iothub.KindTwinGet:
		s.twinGet(c, t.RequestID)
	case iothub.KindTwinPatchReported:
		s.twinPatchReported(c, t.RequestID, pk.Payload, now)
	case iothub.KindMethodResponse:
		s.methodResponse(c, t.RequestID, t.Status, pk.Payload)
	}
	return nil
}

// captureWill records a will message published to the identity's own telemetry topic;
// wills on other topics are ignored (IoT Hub forwards only telemetry wills).
func (s *Server) captureWill(c *conn, will mqtt.Will) {
	t, err := iothub.ParseTopic(will.TopicName)
	if err != nil || t.Kind != iothub.KindTelemetry || t.DeviceID != c.ident.DeviceID || t.ModuleID != c.ident.ModuleID {
		s.log.Info("ignoring will message on a topic that is not the identity's telemetry topic", "identity", c.key, "topic", will.TopicName)
		return
	}
	if iothub.MessageFromBag(will.Payload, t.Bag).Size() > iothub.MaxMessageSize {
		s.log.Info("ignoring will message over 256 KB", "identity", c.key)
		return
	}
	s.capture(c.stamp(), t.Bag, will.Payload, will.Retain, true, s.now())
}

// systemPropertyNames maps wire names of client-settable system properties to the names
// IoT Hub stamps on the event (protocol notes 2.2). Unlisted "$." properties keep their wire
// name ("$.on", ...); "$.cdid" and "$.cmid" are never trusted from clients and are dropped.
var systemPropertyNames = map[string]string{
	iothub.SysMessageID:       "message-id",
	iothub.SysCorrelationID:   "correlation-id",
	iothub.SysUserID:          "user-id",
	iothub.SysContentType:     "content-type",
	iothub.SysContentEncoding: "content-encoding",
	iothub.SysComponent:       "dt-subject",
	iothub.SysExpiry:          "absolute-expiry-time",
	iothub.SysCreationTime:    "iothub-creation-time-utc",
	iothub.SysInterfaceID:     "iothub-interface-id",
	iothub.SysAck:             iothub.SysAck,
	iothub.SysOperation:       iothub.SysOperation,
}

// senderStamp is what IoT Hub stamps on a D2C message about its sender: the connection's
// identity, or the identity an edge hub sent it for (obo_publish.go).
type senderStamp struct {
	ident                           sas.Identity
	generationID, modelID           string
	authType, authScope, authIssuer string // authIssuer "" means "iothub"
}

// stamp returns the sender stamp of the connection's own identity.
func (c *conn) stamp() senderStamp {
	return senderStamp{ident: c.ident, generationID: c.generationID, modelID: c.modelID,
		authType: c.authType, authScope: c.authScope}
}

// capture stamps a D2C message the way IoT Hub does and appends it to the event log.
func (s *Server) capture(c senderStamp, bag iothub.Bag, body []byte, retain, will bool, now time.Time) {
	msg := iothub.MessageFromBag(body, bag)
	sys := map[string]string{
		"iothub-connection-device-id":          c.ident.DeviceID,
		"iothub-connection-auth-generation-id": c.generationID,
		"iothub-connection-auth-method":        authMethodJSON(c),
		"iothub-enqueuedtime":                  formatEnqueued(now),
		"iothub-message-source":                "Telemetry",
	}
	if c.ident.ModuleID != "" {
		sys["iothub-connection-module-id"] = c.ident.ModuleID
	}
	if c.modelID != "" {
		sys["dt-dataschema"] = c.modelID
	}
	for k, v := range msg.System {
		switch name, known := systemPropertyNames[k]; {
		case k == iothub.SysConnDeviceID || k == iothub.SysConnModuleID:
		case known:
			sys[name] = v
		default:
			sys[iothub.SystemPrefix+k] = v
		}
	}
	props := msg.Properties
	if retain {
		props["mqtt-retain"] = "true"
	}
	if will {
		props["iothub-MessageType"] = "Will"
	}
	s.eventsLog().append(Event{
		DeviceID:         c.ident.DeviceID,
		ModuleID:         c.ident.ModuleID,
		Body:             append([]byte(nil), body...),
		Properties:       props,
		SystemProperties: sys,
		EnqueuedTime:     now,
	})
}

// authMethodJSON renders iothub-connection-auth-method, e.g.
// {"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}.
func authMethodJSON(c senderStamp) string {
	issuer := c.authIssuer
	if issuer == "" {
		issuer = "iothub"
	}
	b, _ := json.Marshal(struct {
		Scope                 string `json:"scope"`
		Type                  string `json:"type"`
		Issuer                string `json:"issuer"`
		AcceptingIPFilterRule any    `json:"acceptingIpFilterRule"`
	}{c.authScope, c.authType, issuer, nil})
	return string(b)
}

// Twin error codes in the IoT Hub error body (UNCONFIRMED for MQTT, see twinErrorBody).
const (
	errCodeArgumentInvalid = 400004 // validation or limit failure
	errCodeFormat          = 400006 // body is not a JSON object
	errCodeThrottled       = 429001
	errCodeServer          = 500001
)

// twinGet answers $iothub/twin/GET with 200 and the device view of the twin. The request
// body is ignored (Node and Python send " ").
func (s *Server) twinGet(c *conn, rid string) {
	var e effects
	s.mu.Lock()
	if s.throttle.Load() {
		s.enqueueLocked(c, outItem{topic: iothub.TwinResponseTopic(iothub.StatusTooManyRequests, rid, 0),
			payload: twinErrorBody(errCodeThrottled, "throttled (SetThrottle)")}, &e)
	} else if rec := s.twins[c.key]; rec == nil {
		s.enqueueLocked(c, outItem{topic: iothub.TwinResponseTopic(iothub.StatusNotFound, rid, 0),
			payload: twinErrorBody(404001, "twin of %q not found", c.key)}, &e)
	} else {
		s.enqueueLocked(c, outItem{topic: iothub.TwinResponseTopic(iothub.StatusOK, rid, 0), payload: rec.Twin.DeviceJSON()}, &e)
	}
	s.mu.Unlock()
	s.apply(e)
}

// twinPatchReported merges a reported-properties patch and answers 204 with
// "&$version={new reported version}" (IoT Hub's form), or 400 with an error body.
func (s *Server) twinPatchReported(c *conn, rid string, body []byte, now time.Time) {
	var e effects
	s.mu.Lock()
	status, version, errBody := s.patchReportedLocked(c.key, body, now)
	s.enqueueLocked(c, outItem{topic: iothub.TwinResponseTopic(status, rid, version), payload: errBody}, &e)
	s.mu.Unlock()
	s.apply(e)
}

func (s *Server) patchReportedLocked(key string, body []byte, now time.Time) (int, int64, []byte) {
	if s.throttle.Load() {
		return iothub.StatusTooManyRequests, 0, twinErrorBody(errCodeThrottled, "throttled (SetThrottle)")
	}
	rec := s.twins[key]
	if rec == nil || s.db == nil {
		return iothub.StatusNotFound, 0, twinErrorBody(404001, "twin of %q not found", key)
	}
	patch, err := twin.DecodePatch(body)
	if err != nil {
		return iothub.StatusBadRequest, 0, twinErrorBody(errCodeFormat, "reported properties: %v", err)
	}
	next := rec.Twin.Clone()
	version, err := next.PatchReported(patch, now)
	if err != nil {
		return iothub.StatusBadRequest, 0, twinErrorBody(errCodeArgumentInvalid, "reported properties: %v", err)
	}
	if err := s.saveTwinLocked(key, &twinRecord{Twin: next, ModelID: rec.ModelID}); err != nil {
		s.log.Error("cannot store reported properties", "identity", key, "err", err)
		return iothub.StatusServerError, 0, twinErrorBody(errCodeServer, "cannot store the twin")
	}
	return iothub.StatusNoContent, version, nil
}
