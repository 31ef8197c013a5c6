package fakehub

import (
	"slices"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The edge multiplexing extension ("on behalf of", design.md section 4; topics and bodies in
// runtime/iothub obo*.go; the protocol in docs/upstream.md). It lives in obo*.go; the MQTT
// files call into it through small hooks (search for "obo").
//
// A connection authenticated as "{edge}/$edgeHub" of an IoT Edge device (capabilities.iotEdge)
// is an edge hub's connection and may, besides everything a module may do:
//
//   - subscribe to "$edgehub/#" and "devices/+/messages/devicebound/#";
//   - publish telemetry on the plain topics of any identity in its scope; the event is stamped
//     with the real sender (iothub-connection-device-id/-module-id, its generation id, and
//     iothub-connection-auth-method {"scope":"device"|"module","type":...,"issuer":"edgeHub"}).
//     No attach is needed (stored messages drain after the sender left). "$.cdid"/"$.cmid" in
//     the bag must name the topic's identity or be absent. Telemetry for an identity outside
//     the scope, unknown or disabled closes the connection, as IoT Hub closes a connection
//     that publishes where it may not;
//   - publish the extension's requests ($edgehub/{I}/auth, identity/GET, attach, detach,
//     twin/GET, twin/PATCH/properties/reported, methods/res/{status}), answered on
//     $edgehub/{I}/.../res/{status}/?$rid= at QoS 0: 429 while throttled, 404 for an unknown
//     identity, 403 for one outside the scope, 400 for a malformed body, else the operation's
//     answer. A request kind the edge hub may not publish (an answer) closes the connection.
//
// Scope: a module of the edge device itself, or a device whose parentScopes hold the edge
// device's deviceScope (a leaf whose parent is this edge device). Modules of leaves and the
// edge device's own device identity are outside it.
//
// Attached identities (attach, until detach, the identity's deletion or disablement, or the
// end of the edge hub's connection) are Connected in the registry, listed by Connections
// on the edge hub's connection, and get what their attach asked for: desired patches
// ("desired"), method requests ("methods"; an identity neither attached with "methods" nor
// connected itself makes InvokeMethod fail with ErrDeviceNotOnline), C2D messages ("c2d",
// leaf devices only, while the edge hub holds devices/+/messages/devicebound/#; its PUBACK
// completes the message). An attachment wins over a direct connection of the same identity.

// IoT Hub error codes used in extension answers (informative: clients branch on the status).
const (
	oboErrUnauthorized = 401002 // IotHubUnauthorizedAccess
	oboErrOutOfScope   = 403010 // not an IoT Hub code: identity outside the edge device's scope
	oboErrNotFound     = 404001 // DeviceNotFound
)

// oboConn is the extension state of an edge hub's connection. attached is guarded by
// Server.mu.
type oboConn struct {
	edge     string                    // the edge device id
	attached map[string]*oboAttachment // identity key -> attachment
}

func newOBOConn(edge string) *oboConn {
	return &oboConn{edge: edge, attached: map[string]*oboAttachment{}}
}

// oboAttachment is one identity an edge hub's connection carries.
type oboAttachment struct {
	ident                 sas.Identity
	desired, methods, c2d bool
}

// oboAdmitLocked decides whether the edge device may act for id: 0, or the status to answer
// (404 unknown identity, 403 outside the scope) with a message.
func (s *Server) oboAdmitLocked(edge string, id sas.Identity) (int, string) {
	key := identityKey(id.DeviceID, id.ModuleID)
	d, ok := s.devices[id.DeviceID]
	if !ok {
		return iothub.StatusNotFound, "device " + quote(id.DeviceID) + " is not registered"
	}
	e := s.devices[edge]
	if e == nil || !e.Capabilities.IoTEdge {
		return 403, "device " + quote(edge) + " is not an edge device"
	}
	switch {
	case id.DeviceID == edge && id.ModuleID == "":
		return 403, "the edge device's own device identity is not carried on behalf"
	case id.DeviceID == edge:
		if _, ok := s.modules[key]; !ok {
			return iothub.StatusNotFound, "module " + quote(key) + " is not registered"
		}
		return 0, ""
	case id.ModuleID != "":
		return 403, "module " + quote(key) + " belongs to another device; only modules of " + quote(edge) + " are in its scope"
	case !slices.Contains(d.ParentScopes, e.DeviceScope):
		return 403, "device " + quote(id.DeviceID) + " is not a child of " + quote(edge)
	}
	return 0, ""
}

// oboRecordLocked renders the identity record of an admitted identity.
func (s *Server) oboRecordLocked(id sas.Identity) (iothub.OBOIdentity, bool) {
	d, ok := s.devices[id.DeviceID]
	if !ok {
		return iothub.OBOIdentity{}, false
	}
	r := iothub.OBOIdentity{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Status: d.Status}
	auth := d.Authentication
	if id.ModuleID == "" {
		r.GenerationID, r.Etag = d.GenerationID, d.Etag
		r.DeviceScope, r.ParentScopes = d.DeviceScope, slices.Clone(d.ParentScopes)
	} else {
		m, ok := s.modules[identityKey(id.DeviceID, id.ModuleID)]
		if !ok {
			return iothub.OBOIdentity{}, false
		}
		r.GenerationID, r.Etag, auth = m.GenerationID, m.Etag, m.Authentication
	}
	r.Authentication.Type = auth.Type
	switch {
	case auth.Type == authSAS && auth.SymmetricKey != nil:
		r.Authentication.SymmetricKey = &iothub.OBOSymmetricKey{
			PrimaryKey: auth.SymmetricKey.PrimaryKey, SecondaryKey: auth.SymmetricKey.SecondaryKey}
	case auth.Type == authSelfSigned && auth.X509Thumbprint != nil:
		r.Authentication.X509Thumbprint = &iothub.OBOX509Thumbprint{
			PrimaryThumbprint: auth.X509Thumbprint.PrimaryThumbprint, SecondaryThumbprint: auth.X509Thumbprint.SecondaryThumbprint}
	}
	return r, true
}

// oboCarrierLocked returns the edge hub connection that carries the identity with the
// attachment want accepts, and the attachment; nil when none does (or the identity left the
// carrier's scope meanwhile).
func (s *Server) oboCarrierLocked(key string, want func(*oboAttachment) bool) (*conn, *oboAttachment) {
	for _, c := range s.conns {
		if c.obo == nil {
			continue
		}
		a := c.obo.attached[key]
		if a == nil || !want(a) {
			continue
		}
		if status, _ := s.oboAdmitLocked(c.obo.edge, a.ident); status != 0 {
			continue
		}
		return c, a
	}
	return nil, nil
}

// oboIdentitiesLocked lists the identities a connection carries for Connections: its own,
// then the attached ones sorted.
func oboIdentitiesLocked(c *conn) []string {
	ids := []string{c.key}
	if c.obo == nil {
		return ids
	}
	var attached []string
	for key := range c.obo.attached {
		if key != c.key {
			attached = append(attached, key)
		}
	}
	slices.Sort(attached)
	return append(ids, attached...)
}

// oboSetStateLocked records an attached identity's connection state, as
// setConnectionStateLocked does for a direct connection. Detaching leaves an identity
// Connected while it also has a connection of its own.
func (s *Server) oboSetStateLocked(id sas.Identity, state string, now time.Time) {
	key := identityKey(id.DeviceID, id.ModuleID)
	if state == stateDisconnected && s.online[key] != nil {
		return
	}
	if id.ModuleID == "" {
		if d := s.devices[id.DeviceID]; d != nil {
			d.ConnectionState, d.ConnectionStateUpdatedTime, d.LastActivityTime = state, now, now
		}
		return
	}
	if m := s.modules[key]; m != nil {
		m.ConnectionState, m.ConnectionStateUpdatedTime, m.LastActivityTime = state, now, now
	}
}

// oboDisconnectedLocked forgets what an edge hub's connection carried when it ends: its
// identities become Disconnected and the C2D messages in flight on it pending again (pumped
// at once to leaves that are connected themselves).
func (s *Server) oboDisconnectedLocked(c *conn, now time.Time, e *effects) {
	for key, a := range c.obo.attached {
		delete(c.obo.attached, key)
		s.oboSetStateLocked(a.ident, stateDisconnected, now)
	}
	for deviceID, q := range s.c2d {
		reset := false
		for _, entry := range q {
			if entry.cl == c.cl {
				entry.cl, entry.pid, reset = nil, 0, true
			}
		}
		if reset && s.online[deviceID] != nil {
			e.pump = append(e.pump, deviceID)
		}
	}
}

// oboDropLocked detaches an identity that was deleted or disabled from every edge hub
// connection carrying it.
func (s *Server) oboDropLocked(key string) {
	for _, c := range s.conns {
		if c.obo == nil {
			continue
		}
		if a := c.obo.attached[key]; a != nil {
			delete(c.obo.attached, key)
			s.oboSetStateLocked(a.ident, stateDisconnected, s.now())
		}
	}
}

// oboErrorBody is the body of an extension answer other than 2xx.
func oboErrorBody(code int, msg string) []byte { return twinErrorBody(code, "%s", msg) }

// oboErrorCode picks the error code of a status.
func oboErrorCode(status int) int {
	switch status {
	case 401:
		return oboErrUnauthorized
	case 403:
		return oboErrOutOfScope
	case iothub.StatusNotFound:
		return oboErrNotFound
	case iothub.StatusTooManyRequests:
		return errCodeThrottled
	case iothub.StatusBadRequest:
		return errCodeArgumentInvalid
	}
	return errCodeServer
}
