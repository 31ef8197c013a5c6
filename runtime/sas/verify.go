package sas

import (
	"fmt"
	"strings"
	"time"
)

// Identity names a device ("d") or a module ("d/m").
type Identity struct {
	DeviceID, ModuleID string
}

// String returns "d" for a device and "d/m" for a module, the form used as the
// MQTT client id.
func (i Identity) String() string {
	if i.ModuleID == "" {
		return i.DeviceID
	}
	return i.DeviceID + "/" + i.ModuleID
}

// Verify checks that t authenticates id, following edgeHub's rules:
//   - t is not Expired(now), else ErrExpired;
//   - the audience host equals one of hosts, case-insensitively, else ErrAudience;
//   - the audience is id, or id's device (a device token is valid for the
//     device's modules), ids compared case-insensitively, else ErrAudience;
//   - the signature verifies with keysFor(audience identity), else ErrSignature.
//
// keysFor is called with the audience's identity spelled as in id (a device
// token for a module asks for the device's keys). Its errors are returned
// wrapped, so callers can tell an unknown identity from a bad signature.
func Verify(t Token, id Identity, hosts []string, now time.Time, keysFor func(Identity) (Keys, error)) error {
	if t.Expired(now) {
		return fmt.Errorf("token for %q: %w at %s", id, ErrExpired, t.ExpiresAt().Format(time.RFC3339))
	}
	a, err := t.Audience()
	if err != nil {
		return fmt.Errorf("token for %q: %w", id, err)
	}
	if !hostIn(a.Host, hosts) {
		return fmt.Errorf("token for %q: %w: host %q is not %s", id, ErrAudience, a.Host, strings.Join(hosts, " or "))
	}
	if a.DeviceID == "" {
		return fmt.Errorf("token for %q: %w: hub-level (policy) token, not a device or module token", id, ErrAudience)
	}
	signer := Identity{DeviceID: id.DeviceID}
	switch {
	case !strings.EqualFold(a.DeviceID, id.DeviceID):
		return fmt.Errorf("token for %q: %w: issued for %q", id, ErrAudience, Identity{a.DeviceID, a.ModuleID})
	case a.ModuleID == "":
		// A device token: valid for the device and for each of its modules.
	case id.ModuleID != "" && strings.EqualFold(a.ModuleID, id.ModuleID):
		signer.ModuleID = id.ModuleID
	default:
		return fmt.Errorf("token for %q: %w: issued for %q", id, ErrAudience, Identity{a.DeviceID, a.ModuleID})
	}
	keys, err := keysFor(signer)
	if err != nil {
		return fmt.Errorf("token for %q: keys for %q: %w", id, signer, err)
	}
	if err := t.VerifySignature(keys); err != nil {
		return fmt.Errorf("token for %q: %w", id, err)
	}
	return nil
}

// VerifyPolicy checks a shared access policy token, as sent in the
// Authorization header of the service API: not Expired(now) (ErrExpired); skn
// names a policy (ErrAudience); the audience is hub-level, "host" or a prefix
// such as "host/devices", with host one of hosts, case-insensitively
// (ErrAudience); and the signature verifies with keysFor(skn) (ErrSignature).
// Errors from keysFor are returned wrapped.
func VerifyPolicy(t Token, hosts []string, now time.Time, keysFor func(policy string) (Keys, error)) error {
	if t.Expired(now) {
		return fmt.Errorf("policy token: %w at %s", ErrExpired, t.ExpiresAt().Format(time.RFC3339))
	}
	if t.KeyName == "" {
		return fmt.Errorf("policy token: %w: no policy name (skn)", ErrAudience)
	}
	a, err := t.Audience()
	if err != nil {
		return fmt.Errorf("policy %q: %w", t.KeyName, err)
	}
	if a.DeviceID != "" {
		return fmt.Errorf("policy %q: %w: issued for %q, not the hub", t.KeyName, ErrAudience, Identity{a.DeviceID, a.ModuleID})
	}
	if !hostIn(a.Host, hosts) {
		return fmt.Errorf("policy %q: %w: host %q is not %s", t.KeyName, ErrAudience, a.Host, strings.Join(hosts, " or "))
	}
	keys, err := keysFor(t.KeyName)
	if err != nil {
		return fmt.Errorf("policy %q: %w", t.KeyName, err)
	}
	if err := t.VerifySignature(keys); err != nil {
		return fmt.Errorf("policy %q: %w", t.KeyName, err)
	}
	return nil
}

func hostIn(host string, hosts []string) bool {
	for _, h := range hosts {
		if h != "" && strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}
