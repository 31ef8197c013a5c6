package fakehub

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/mqttguard"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// errAuth marks authentication failures in logs.
var errAuth = errors.New("not authorized")

// authenticate decides a CONNECT (protocol notes 1.2-1.8). Every failure is CONNACK 0x05,
// including a disabled device (the notes suggest 0x03 for it, UNCONFIRMED; 0x05 is what
// edgeHub sends and what every SDK reports as an authentication error):
//
//   - the client id is "{d}" or "{d}/{m}" and equals the username's identity, ordinally;
//   - the username parses with iothub.ParseUsername (the host segment is not checked);
//   - the identity exists, and its device is enabled;
//   - with a password: a SAS token for this identity (or, for a module, its device) signed
//     with the primary or secondary key, not expired beyond sas.ClockSkew, audience host
//     Hostname; or a token signed with a policy that has DeviceConnect (skn=iothubowner or
//     skn=device, sr={host}/devices/{d}[/modules/{m}]);
//   - without a password: a TLS client certificate matching the identity's X.509 thumbprint
//     (selfSigned) or chaining to the hub's CA with the identity as common name
//     (certificateAuthority; the hub's own CA stands in for uploaded CA certificates).
//
// On success the connection is remembered until OnSessionEstablished.
func (s *Server) authenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if s.refuseAuth.Load() {
		s.log.Info("refusing MQTT CONNECT (SetRefuseAuth)", "client", pk.Connect.ClientIdentifier)
		return false
	}
	c, err := s.authorize(cl, pk)
	if err != nil {
		s.log.Info("MQTT CONNECT refused", "client", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "err", err)
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for other := range s.authed { // connections whose CONNACK failed never reach OnDisconnect
		if other.Closed() {
			delete(s.authed, other)
		}
	}
	if s.authed == nil {
		return false // not running
	}
	s.authed[cl] = c
	return true
}

func (s *Server) authorize(cl *mqtt.Client, pk packets.Packet) (*conn, error) {
	d, m, err := iothub.ParseClientID(pk.Connect.ClientIdentifier)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAuth, err)
	}
	u, err := iothub.ParseUsername(string(pk.Connect.Username))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAuth, err)
	}
	if u.DeviceID != d || u.ModuleID != m {
		return nil, fmt.Errorf("%w: client id %q does not match username identity %q", errAuth,
			pk.Connect.ClientIdentifier, identityKey(u.DeviceID, u.ModuleID))
	}
	id := sas.Identity{DeviceID: d, ModuleID: m}
	key := identityKey(d, m)
	now := s.now()

	s.mu.Lock()
	dev, devOK := s.devices[d]
	var auth Authentication
	var generation string
	if devOK {
		auth, generation = cloneAuth(dev.Authentication), dev.GenerationID
	}
	modOK := true
	if devOK && m != "" {
		mod, ok := s.modules[key]
		modOK = ok
		if ok {
			auth, generation = cloneAuth(mod.Authentication), mod.GenerationID
		}
	}
	enabled := devOK && dev.Status == statusEnabled
	edgeHub := devOK && dev.Capabilities.IoTEdge && m == moduleEdgeHub
	s.mu.Unlock()
	switch {
	case !devOK:
		return nil, fmt.Errorf("%w: device %q is not registered", errAuth, d)
	case !modOK:
		return nil, fmt.Errorf("%w: module %q is not registered", errAuth, key)
	case !enabled:
		return nil, fmt.Errorf("%w: device %q is disabled", errAuth, d)
	}

	c := &conn{
		key:          key,
		ident:        id,
		remote:       cl.Net.Remote,
		tls:          cl.Net.Listener == listenerTLS,
		generationID: generation,
		modelID:      u.Params[iothub.ParamModelID],
		authType:     "sas",
		authScope:    "device",
	}
	if m != "" {
		c.authScope = "module"
	}
	if edgeHub {
		c.obo = newOBOConn(d) // the edge multiplexing extension (obo.go)
	}
	if pk.Connect.WillFlag {
		c.will = &mqtt.Will{TopicName: pk.Connect.WillTopic, Payload: pk.Connect.WillPayload, Retain: pk.Connect.WillRetain, Qos: pk.Connect.WillQos}
	}
	if pk.Connect.PasswordFlag && len(pk.Connect.Password) > 0 {
		scope, err := s.verifyToken(id, string(pk.Connect.Password), now)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errAuth, err)
		}
		c.authScope = scope
		return c, nil
	}

	cert := peerCertificate(cl)
	if cert == nil {
		return nil, fmt.Errorf("%w: no password and no client certificate", errAuth)
	}
	if err := s.verifyCertificate(cl, cert, auth, key); err != nil {
		return nil, fmt.Errorf("%w: %w", errAuth, err)
	}
	c.authType = "x509Certificate"
	return c, nil
}

// verifyToken checks a SAS token presented as the password of identity id (a CONNECT, or an
// edge hub's on-behalf-of auth request): a token for the identity or, for a module, its device,
// signed with the primary or secondary key, not expired beyond sas.ClockSkew, audience host
// Hostname; or a token of a policy with DeviceConnect. It returns the auth scope stamped on
// telemetry: "hub" (policy), "device" (a device token, also when accepted for a module) or
// "module".
func (s *Server) verifyToken(id sas.Identity, password string, now time.Time) (string, error) {
	tok, err := sas.Parse(password)
	if err != nil {
		return "", fmt.Errorf("password: %w", err)
	}
	if tok.KeyName != "" {
		if !deviceConnectPolicies[tok.KeyName] {
			return "", fmt.Errorf("policy %q has no DeviceConnect right", tok.KeyName)
		}
		policy, err := s.PolicyKeys(tok.KeyName)
		if err != nil {
			return "", err
		}
		err = sas.Verify(tok, id, []string{s.Hostname}, now, func(sas.Identity) (sas.Keys, error) { return policy, nil })
		if err != nil {
			return "", err
		}
		return "hub", nil
	}
	if err := sas.Verify(tok, id, []string{s.Hostname}, now, s.IdentityKeys); err != nil {
		return "", err
	}
	if a, err := tok.Audience(); err == nil && a.ModuleID == "" {
		return "device", nil // a device token, possibly accepted for one of its modules
	}
	return "module", nil
}

func peerCertificate(cl *mqtt.Client) *x509.Certificate {
	tc, ok := mqttguard.Unwrap(cl.Net.Conn).(*tls.Conn)
	if !ok {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	return certs[0]
}

// verifyCertificate checks a client certificate against an X.509 identity.
func (s *Server) verifyCertificate(cl *mqtt.Client, cert *x509.Certificate, auth Authentication, key string) error {
	switch auth.Type {
	case authSelfSigned:
		sum1 := sha1.Sum(cert.Raw)
		sum256 := sha256.Sum256(cert.Raw)
		got := []string{strings.ToUpper(hex.EncodeToString(sum1[:])), strings.ToUpper(hex.EncodeToString(sum256[:]))}
		if t := auth.X509Thumbprint; t != nil {
			for _, want := range []string{t.PrimaryThumbprint, t.SecondaryThumbprint} {
				if want != "" && (strings.EqualFold(want, got[0]) || strings.EqualFold(want, got[1])) {
					return nil
				}
			}
		}
		return errors.New("client certificate matches neither thumbprint")
	case authCA:
		if cert.Subject.CommonName != key {
			return fmt.Errorf("client certificate common name %q is not %q", cert.Subject.CommonName, key)
		}
		pool := x509.NewCertPool()
		pool.AddCert(s.pki.ca)
		inter := x509.NewCertPool()
		if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
			for _, c := range tc.ConnectionState().PeerCertificates[1:] {
				inter.AddCert(c)
			}
		}
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: s.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("client certificate does not chain to the hub CA: %w", err)
		}
		return nil
	}
	return fmt.Errorf("identity authenticates with %q, not a certificate", auth.Type)
}
