package fakehub

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// oboCheckPublish is checkPublish's hook for an edge hub's connection: it decides the topics
// of the extension and the telemetry published on behalf of other identities (handled), and
// leaves everything else (the edge hub's own telemetry and $iothub requests) to checkPublish.
// An error closes the connection.
func (s *Server) oboCheckPublish(c *conn, topic string, payload []byte) (handled bool, err error) {
	if strings.HasPrefix(topic, iothub.OBOTopicPrefix) {
		t, err := iothub.ParseOBOTopic(topic)
		if err != nil {
			return true, err
		}
		if !t.Kind.FromEdge() {
			return true, fmt.Errorf("topic %q (%s) may not be published by an edge hub", topic, t.Kind)
		}
		return true, iothub.ValidateRequestID(t.RequestID)
	}
	t, err := iothub.ParseTopic(topic)
	if err != nil || t.Kind != iothub.KindTelemetry || (t.DeviceID == c.ident.DeviceID && t.ModuleID == c.ident.ModuleID) {
		return false, nil
	}
	id := sas.Identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID}
	s.mu.Lock()
	status, msg := s.oboAdmitLocked(c.obo.edge, id)
	enabled := status == 0 && s.devices[id.DeviceID].Status == statusEnabled
	s.mu.Unlock()
	switch {
	case status != 0:
		return true, fmt.Errorf("telemetry on behalf of %q: %d %s", id, status, msg)
	case !enabled:
		return true, fmt.Errorf("telemetry on behalf of %q: device %q is disabled", id, id.DeviceID)
	}
	for key, want := range map[string]string{iothub.SysConnDeviceID: id.DeviceID, iothub.SysConnModuleID: id.ModuleID} {
		if got, ok := t.Bag.Get(iothub.SystemPrefix + key); ok && got != want {
			return true, fmt.Errorf("telemetry on behalf of %q carries %s%s=%q", id, iothub.SystemPrefix, key, got)
		}
	}
	if n := iothub.MessageFromBag(payload, t.Bag).Size(); n > iothub.MaxMessageSize {
		return true, fmt.Errorf("D2C message of %d bytes exceeds %d", n, iothub.MaxMessageSize)
	}
	return true, nil
}

// oboHandlePublish is handlePublish's hook for an edge hub's connection, for what
// oboCheckPublish handled. The error is a mochi code (packets.ErrRejectPacket: no PUBACK).
func (s *Server) oboHandlePublish(c *conn, pk packets.Packet, now time.Time) (handled bool, err error) {
	if strings.HasPrefix(pk.TopicName, iothub.OBOTopicPrefix) {
		t, err := iothub.ParseOBOTopic(pk.TopicName)
		if err != nil {
			return true, packets.ErrRejectPacket // oboCheckPublish parsed it; cannot happen
		}
		s.oboRequest(c, t, pk.Payload, now)
		return true, nil
	}
	t, err := iothub.ParseTopic(pk.TopicName)
	if err != nil || t.Kind != iothub.KindTelemetry || (t.DeviceID == c.ident.DeviceID && t.ModuleID == c.ident.ModuleID) {
		return false, nil
	}
	if s.throttle.Load() {
		return true, packets.ErrRejectPacket // as for a device: no PUBACK, not captured
	}
	id := sas.Identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID}
	st := senderStamp{ident: id, authType: "sas", authScope: "device", authIssuer: "edgeHub"}
	if id.ModuleID != "" {
		st.authScope = "module"
	}
	s.mu.Lock()
	if rec, ok := s.oboRecordLocked(id); ok {
		st.generationID = rec.GenerationID
		if rec.Authentication.Type == authSelfSigned || rec.Authentication.Type == authCA {
			st.authType = "x509Certificate"
		}
	}
	s.mu.Unlock()
	s.capture(st, t.Bag, pk.Payload, pk.FixedHeader.Retain, false, now)
	return true, nil
}

// oboRequest answers one extension request (the method response, which has no answer,
// completes its invocation).
func (s *Server) oboRequest(c *conn, t iothub.OBOTopic, body []byte, now time.Time) {
	id := sas.Identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID}
	key := identityKey(id.DeviceID, id.ModuleID)
	if t.Kind == iothub.OBOMethodResponse {
		s.mu.Lock()
		admit, msg := s.oboAdmitLocked(c.obo.edge, id)
		s.mu.Unlock()
		if admit != 0 {
			s.log.Info("ignoring a method response on behalf of an identity outside the scope", "identity", key, "edge", c.obo.edge, "reason", msg)
			return
		}
		s.completeMethod(key, t.RequestID, t.Status, body)
		return
	}
	var (
		e       effects
		status  int
		payload []byte
		version int64
		pumpC2D bool
	)
	fail := func(st int, msg string) { status, payload = st, oboErrorBody(oboErrorCode(st), msg) }
	s.mu.Lock()
	admit, msg := s.oboAdmitLocked(c.obo.edge, id)
	switch {
	case s.throttle.Load():
		fail(iothub.StatusTooManyRequests, "throttled (SetThrottle)")
	case admit != 0:
		fail(admit, msg)
	case t.Kind == iothub.OBOAuth:
		// Verification reads the registry under its own lock.
		s.mu.Unlock()
		verr := s.oboVerify(id, body, now)
		s.mu.Lock()
		rec, ok := s.oboRecordLocked(id)
		switch {
		case !ok:
			fail(iothub.StatusNotFound, "identity "+quote(key)+" was deleted")
		case errors.Is(verr, iothub.ErrMalformedBody):
			fail(iothub.StatusBadRequest, verr.Error())
		case verr != nil:
			s.log.Info("on-behalf-of authentication refused", "identity", key, "edge", c.obo.edge, "err", verr)
			fail(401, "not authorized: "+verr.Error())
		default:
			status, payload = iothub.StatusOK, mustJSON(rec)
		}
	case t.Kind == iothub.OBOIdentityGet:
		rec, _ := s.oboRecordLocked(id)
		status, payload = iothub.StatusOK, mustJSON(rec)
	case t.Kind == iothub.OBOAttach:
		a, err := iothub.ParseOBOAttachment(body)
		if err != nil {
			fail(iothub.StatusBadRequest, err.Error())
			break
		}
		c.obo.attached[key] = &oboAttachment{ident: id, desired: a.Has(iothub.OBOSubDesired),
			methods: a.Has(iothub.OBOSubMethods), c2d: id.ModuleID == "" && a.Has(iothub.OBOSubC2D)}
		s.oboSetStateLocked(id, stateConnected, now)
		s.signalLocked() // method invocations waiting for the identity
		status, pumpC2D = iothub.StatusNoContent, id.ModuleID == ""
	case t.Kind == iothub.OBODetach:
		if _, ok := c.obo.attached[key]; ok {
			delete(c.obo.attached, key)
			s.oboSetStateLocked(id, stateDisconnected, now)
			s.signalLocked()
		}
		status = iothub.StatusNoContent
	case t.Kind == iothub.OBOTwinGet:
		if rec := s.twins[key]; rec != nil {
			status, payload = iothub.StatusOK, rec.Twin.DeviceJSON()
		} else {
			fail(iothub.StatusNotFound, "twin of "+quote(key)+" not found")
		}
	case t.Kind == iothub.OBOTwinPatchReported:
		status, version, payload = s.patchReportedLocked(key, body, now)
	}
	s.enqueueLocked(c, outItem{topic: t.Reply(status, version).String(), payload: payload}, &e)
	s.mu.Unlock()
	s.apply(e)
	if pumpC2D {
		s.deliverC2D(id.DeviceID)
	}
}

// oboVerify checks the credentials of an auth request: a SAS token as a CONNECT password is
// checked (verifyToken), or the thumbprint of the certificate the client showed the edge hub
// against a selfSigned identity's thumbprints. An identity of a disabled device fails.
func (s *Server) oboVerify(id sas.Identity, body []byte, now time.Time) error {
	cred, err := iothub.ParseOBOCredentials(body)
	if err != nil {
		return err
	}
	if cred.Password != "" {
		_, err := s.verifyToken(id, cred.Password, now)
		return err
	}
	s.mu.Lock()
	rec, ok := s.oboRecordLocked(id)
	s.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%q is not registered", id)
	case !rec.Enabled():
		return fmt.Errorf("device %q is disabled", id.DeviceID)
	case rec.Authentication.X509Thumbprint == nil:
		return fmt.Errorf("%q authenticates with %q, not a certificate thumbprint", id, rec.Authentication.Type)
	}
	got := strings.ToUpper(cred.X509Thumbprint)
	for _, want := range []string{rec.Authentication.X509Thumbprint.PrimaryThumbprint, rec.Authentication.X509Thumbprint.SecondaryThumbprint} {
		if want != "" && subtle.ConstantTimeCompare([]byte(strings.ToUpper(want)), []byte(got)) == 1 {
			return nil
		}
	}
	return errors.New("certificate thumbprint matches neither of the identity's")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakehub: marshal %T: %v", v, err)) // only plain structs are passed
	}
	return b
}
