package fakehub

import (
	"fmt"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Shared access policies created on first start, with IoT Hub's default names. Their rights
// follow IoT Hub: iothubowner has all; service has ServiceConnect; registryRead and
// registryReadWrite the registry rights; device has DeviceConnect. The HTTP layer decides
// what each may call; on MQTT only policies with DeviceConnect (iothubowner, device) may sign
// a device's CONNECT token (protocol notes 1.5: sr={host}/devices/{d}, skn=device).
const (
	PolicyIoTHubOwner       = "iothubowner"
	PolicyService           = "service"
	PolicyRegistryRead      = "registryRead"
	PolicyRegistryReadWrite = "registryReadWrite"
	PolicyDevice            = "device"
)

var policyNames = []string{PolicyIoTHubOwner, PolicyService, PolicyRegistryRead, PolicyRegistryReadWrite, PolicyDevice}

// deviceConnectPolicies may sign device tokens.
var deviceConnectPolicies = map[string]bool{PolicyIoTHubOwner: true, PolicyDevice: true}

func newKeys() (sas.Keys, error) {
	p, err := sas.NewKey()
	if err != nil {
		return sas.Keys{}, err
	}
	sec, err := sas.NewKey()
	if err != nil {
		return sas.Keys{}, err
	}
	return sas.Keys{Primary: p, Secondary: sec}, nil
}

// PolicyKeys returns the keys of a shared access policy; the HTTP layer verifies service
// tokens with them. Unknown names give ErrNotFound.
func (s *Server) PolicyKeys(name string) (sas.Keys, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.policies[name]
	if !ok {
		return sas.Keys{}, fmt.Errorf("shared access policy %q: %w", name, ErrNotFound)
	}
	return k, nil
}

// IdentityKeys returns the symmetric keys a device or module authenticates with. It gives
// ErrNotFound for an unknown identity, for one that does not use symmetric keys, and for a
// disabled device or a module of a disabled device, since IoT Hub rejects their tokens
// (protocol notes 1.5, step 8).
func (s *Server) IdentityKeys(id sas.Identity) (sas.Keys, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identityKeysLocked(id)
}

func (s *Server) identityKeysLocked(id sas.Identity) (sas.Keys, error) {
	d, ok := s.devices[id.DeviceID]
	if !ok {
		return sas.Keys{}, fmt.Errorf("device %q: %w", id.DeviceID, ErrNotFound)
	}
	if d.Status != statusEnabled {
		return sas.Keys{}, fmt.Errorf("device %q is disabled: %w", id.DeviceID, ErrNotFound)
	}
	auth := d.Authentication
	if id.ModuleID != "" {
		m, ok := s.modules[identityKey(id.DeviceID, id.ModuleID)]
		if !ok {
			return sas.Keys{}, fmt.Errorf("module %q: %w", id, ErrNotFound)
		}
		auth = m.Authentication
	}
	if auth.Type != authSAS || auth.SymmetricKey == nil {
		return sas.Keys{}, fmt.Errorf("%q authenticates with %q, not symmetric keys: %w", id, auth.Type, ErrNotFound)
	}
	return sas.Keys{Primary: auth.SymmetricKey.PrimaryKey, Secondary: auth.SymmetricKey.SecondaryKey}, nil
}

// ServiceConnectionString returns the iothubowner connection string,
// "HostName=...;SharedAccessKeyName=iothubowner;SharedAccessKey=...". It is also written to
// DataDir/service-connection-string.
func (s *Server) ServiceConnectionString() string {
	k, err := s.PolicyKeys(PolicyIoTHubOwner)
	if err != nil {
		return ""
	}
	return sas.ConnectionString{HostName: s.Hostname, SharedAccessKeyName: PolicyIoTHubOwner, SharedAccessKey: k.Primary}.String()
}

// DeviceConnectionString returns "HostName=...;DeviceId=...;SharedAccessKey=<primary>" for a
// symmetric-key device, or "...;x509=true" for an X.509 device. Unknown devices give
// ErrNotFound.
func (s *Server) DeviceConnectionString(deviceID string) (string, error) {
	return s.connectionString(deviceID, "")
}

// ModuleConnectionString returns "HostName=...;DeviceId=...;ModuleId=...;SharedAccessKey=...".
func (s *Server) ModuleConnectionString(deviceID, moduleID string) (string, error) {
	if moduleID == "" {
		return "", fmt.Errorf("module connection string: %w: empty module id", ErrInvalid)
	}
	return s.connectionString(deviceID, moduleID)
}

func (s *Server) connectionString(deviceID, moduleID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceID]
	if !ok {
		return "", fmt.Errorf("device %q: %w", deviceID, ErrNotFound)
	}
	auth := d.Authentication
	if moduleID != "" {
		m, ok := s.modules[identityKey(deviceID, moduleID)]
		if !ok {
			return "", fmt.Errorf("module %q: %w", identityKey(deviceID, moduleID), ErrNotFound)
		}
		auth = m.Authentication
	}
	cs := sas.ConnectionString{HostName: s.Hostname, DeviceID: deviceID, ModuleID: moduleID}
	switch {
	case auth.Type == authSAS && auth.SymmetricKey != nil:
		cs.SharedAccessKey = auth.SymmetricKey.PrimaryKey
	case auth.Type == authSelfSigned || auth.Type == authCA:
		cs.X509 = true
	default:
		return "", fmt.Errorf("%q: %w: authentication type %q has no connection string", identityKey(deviceID, moduleID), ErrInvalid, auth.Type)
	}
	return cs.String(), nil
}
