package sas

import (
	"errors"
	"testing"
	"time"
)

// registry is a keysFor fake that records the identities it was asked for.
type registry struct {
	keys  map[Identity]Keys
	asked []Identity
}

var errUnknown = errors.New("unknown identity")

func (r *registry) keysFor(id Identity) (Keys, error) {
	r.asked = append(r.asked, id)
	k, ok := r.keys[id]
	if !ok {
		return Keys{}, errUnknown
	}
	return k, nil
}

func TestIdentity_String(t *testing.T) {
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{DeviceID: "d"}, "d"},
		{Identity{DeviceID: "d", ModuleID: "m"}, "d/m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.id.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(se1700, 0)
	dev1 := Identity{DeviceID: "dev1"}
	filter := Identity{DeviceID: "dev1", ModuleID: "filter"}
	hosts := []string{hub, "edge.local"}
	both := Keys{Primary: keyK, Secondary: keyK2}
	tampered := mustParse(t, tokDev1)
	tampered.Signature = "B" + tampered.Signature[1:]

	tests := []struct {
		name      string
		tok       string
		tokValue  *Token // overrides tok
		id        Identity
		hosts     []string
		now       time.Time
		keys      map[Identity]Keys
		want      error
		wantAsked Identity
	}{
		{name: "device token for the device", tok: tokDev1, id: dev1, keys: map[Identity]Keys{dev1: both}, wantAsked: dev1},
		{name: "module token for the module", tok: tokFilter, id: filter, keys: map[Identity]Keys{filter: both}, wantAsked: filter},
		{name: "device token for the device's module", tok: tokDev1, id: filter, keys: map[Identity]Keys{dev1: both}, wantAsked: dev1},
		{name: "device token for another device's module", tok: tokDev1, id: Identity{DeviceID: "dev2", ModuleID: "filter"}, keys: map[Identity]Keys{dev1: both}, want: ErrAudience},
		{name: "module token for its device", tok: tokFilter, id: dev1, keys: map[Identity]Keys{filter: both}, want: ErrAudience},
		{name: "module token for a sibling module", tok: tokFilter, id: Identity{DeviceID: "dev1", ModuleID: "other"}, keys: map[Identity]Keys{filter: both}, want: ErrAudience},
		{name: "device token for another device", tok: tokDev1, id: Identity{DeviceID: "dev2"}, keys: map[Identity]Keys{dev1: both}, want: ErrAudience},
		{name: "ids compared case-insensitively", tok: tokDev1, id: Identity{DeviceID: "DEV1"}, keys: map[Identity]Keys{{DeviceID: "DEV1"}: both}, wantAsked: Identity{DeviceID: "DEV1"}},
		{name: "secondary key accepted", tok: tokDev1K2, id: dev1, keys: map[Identity]Keys{dev1: both}, wantAsked: dev1},
		{name: "lowercase %2f sr", tok: tokLower, id: dev1, keys: map[Identity]Keys{dev1: {Primary: keyK}}, wantAsked: dev1},
		{name: "C# double-encoded ids", tok: tokDouble, id: Identity{DeviceID: "my#dev", ModuleID: "mod?1"}, keys: map[Identity]Keys{{DeviceID: "my#dev", ModuleID: "mod?1"}: {Primary: keyK}}, wantAsked: Identity{DeviceID: "my#dev", ModuleID: "mod?1"}},
		{name: "host compared case-insensitively", tok: tokDev1, id: dev1, hosts: []string{"H.Azure-Devices.NET"}, keys: map[Identity]Keys{dev1: both}, wantAsked: dev1},
		{name: "token for another hub", tok: tokDev1, id: dev1, hosts: []string{"other.azure-devices.net", "edge.local"}, keys: map[Identity]Keys{dev1: both}, want: ErrAudience},
		{name: "no hosts accepted", tok: tokDev1, id: dev1, hosts: []string{}, keys: map[Identity]Keys{dev1: both}, want: ErrAudience},
		{name: "policy token is not a device token", tok: tokOwner, id: dev1, keys: map[Identity]Keys{dev1: {Primary: keyK}}, want: ErrAudience},
		{name: "tampered sig", tokValue: &tampered, id: dev1, keys: map[Identity]Keys{dev1: both}, want: ErrSignature, wantAsked: dev1},
		{name: "signed with another identity's key", tok: tokDev1, id: dev1, keys: map[Identity]Keys{dev1: {Primary: keyK2}}, want: ErrSignature, wantAsked: dev1},
		{name: "unknown identity error passed through", tok: tokDev1, id: dev1, keys: map[Identity]Keys{}, want: errUnknown, wantAsked: dev1},
		{name: "registry key not base64", tok: tokDev1, id: dev1, keys: map[Identity]Keys{dev1: {Primary: "!!"}}, want: ErrInvalidKey, wantAsked: dev1},
		{name: "at the skew boundary", tok: tokDev1, id: dev1, now: now.Add(ClockSkew), keys: map[Identity]Keys{dev1: both}, wantAsked: dev1},
		{name: "just past the skew boundary", tok: tokDev1, id: dev1, now: now.Add(ClockSkew + time.Second), keys: map[Identity]Keys{dev1: both}, want: ErrExpired},
		{name: "malformed audience", tokValue: &Token{Resource: "h%2Fx", Signature: "s", Expiry: se1700}, id: dev1, keys: map[Identity]Keys{dev1: both}, want: ErrMalformedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tok Token
			if tt.tokValue != nil {
				tok = *tt.tokValue
			} else {
				tok = mustParse(t, tt.tok)
			}
			if tt.hosts == nil {
				tt.hosts = hosts
			}
			if tt.now.IsZero() {
				tt.now = now
			}
			r := &registry{keys: tt.keys}
			checkErr(t, Verify(tok, tt.id, tt.hosts, tt.now, r.keysFor), tt.want)
			if tt.wantAsked == (Identity{}) {
				if len(r.asked) != 0 {
					t.Errorf("keysFor called with %v, want no call", r.asked)
				}
			} else if len(r.asked) != 1 || r.asked[0] != tt.wantAsked {
				t.Errorf("keysFor called with %v, want [%v]", r.asked, tt.wantAsked)
			}
		})
	}
}

func TestVerifyPolicy(t *testing.T) {
	now := time.Unix(se1700, 0)
	hosts := []string{hub}
	sign := func(uri, policy, key string) Token {
		s, err := Sign(uri, key, policy, now)
		if err != nil {
			t.Fatal(err)
		}
		return mustParse(t, s)
	}
	policies := map[string]Keys{
		"iothubowner": {Primary: keyK2, Secondary: keyK},
		"service":     {Primary: keyK2},
	}
	tests := []struct {
		name      string
		tok       Token
		hosts     []string
		now       time.Time
		want      error
		wantAsked string
	}{
		{name: "documented reference token (secondary key)", tok: mustParse(t, tokOwner), wantAsked: "iothubowner"},
		{name: "primary key", tok: sign(hub, "service", keyK2), wantAsked: "service"},
		{name: "host/devices prefix", tok: sign(hub+"/devices", "service", keyK2), wantAsked: "service"},
		{name: "host compared case-insensitively", tok: sign("H.AZURE-DEVICES.NET", "service", keyK2), wantAsked: "service"},
		{name: "no skn", tok: sign(hub, "", keyK2), want: ErrAudience},
		{name: "device audience", tok: sign(hub+"/devices/dev1", "service", keyK2), want: ErrAudience},
		{name: "another hub", tok: sign("other.azure-devices.net", "service", keyK2), want: ErrAudience},
		{name: "wrong key", tok: sign(hub, "service", keyK), want: ErrSignature, wantAsked: "service"},
		{name: "unknown policy", tok: sign(hub, "registryRead", keyK), want: errUnknown, wantAsked: "registryRead"},
		{name: "expired", tok: mustParse(t, tokOwner), now: now.Add(ClockSkew + time.Second), want: ErrExpired},
		{name: "at skew boundary", tok: mustParse(t, tokOwner), now: now.Add(ClockSkew), wantAsked: "iothubowner"},
		{name: "malformed audience", tok: sign(hub+"/twins", "service", keyK2), want: ErrMalformedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hosts == nil {
				tt.hosts = hosts
			}
			if tt.now.IsZero() {
				tt.now = now
			}
			var asked []string
			keysFor := func(p string) (Keys, error) {
				asked = append(asked, p)
				k, ok := policies[p]
				if !ok {
					return Keys{}, errUnknown
				}
				return k, nil
			}
			checkErr(t, VerifyPolicy(tt.tok, tt.hosts, tt.now, keysFor), tt.want)
			if tt.wantAsked == "" && len(asked) != 0 || tt.wantAsked != "" && (len(asked) != 1 || asked[0] != tt.wantAsked) {
				t.Errorf("keysFor called with %q, want %q", asked, tt.wantAsked)
			}
		})
	}
}
