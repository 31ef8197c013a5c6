package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// credentials is what a client presented and what it proved: the identity it connects as,
// the identity whose key signed its token (itself, or its device for a module using a
// device token), and the token, kept to check it again later.
type credentials struct {
	identity sas.Identity
	signer   sas.Identity
	token    sas.Token
}

// authenticator applies the CONNECT rules of iothub-mqtt-protocol.md sections 1.2-1.5 and
// 11. It is a pure decision apart from the Identities lookup.
type authenticator struct {
	hosts      []string // accepted token audience hosts: IoT Hub's and the gateway's
	identities Identities
	resolver   IdentityResolver // nil: the cache alone decides (auth_upstream.go)
}

// authenticate checks one CONNECT:
//
//  1. the client id is "{d}" or "{d}/{m}";
//  2. the username parses (both the "?api-version" and the legacy form) and names the same
//     device and module as the client id, compared ordinally; its host is not checked
//     (clients always put the IoT Hub host there, and edgeHub ignores it);
//  3. the password is a SAS token (X.509 clients, which send none, are not supported yet);
//  4. sas.Verify: not expired beyond the 5-minute skew, audience host is IoT Hub's or the
//     gateway's, audience is the identity or its device, signature matches a key that
//     Identities returns for the signer (which fails for unknown or disabled identities);
//     when that fails and a resolver is configured, the cloud is asked and the token
//     verified again against the updated identities (auth_upstream.go).
//
// Every error wraps ErrNotAuthorized and names the rule; none contains the token.
func (a *authenticator) authenticate(ctx context.Context, clientID, username string, password []byte, now time.Time) (credentials, error) {
	c, err := a.check(ctx, clientID, username, password, now)
	if err != nil {
		return credentials{}, fmt.Errorf("%w: %w", ErrNotAuthorized, err)
	}
	return c, nil
}

func (a *authenticator) check(ctx context.Context, clientID, username string, password []byte, now time.Time) (credentials, error) {
	d, m, err := iothub.ParseClientID(clientID)
	if err != nil {
		return credentials{}, err
	}
	u, err := iothub.ParseUsername(username)
	if err != nil {
		return credentials{}, err
	}
	if u.DeviceID != d || u.ModuleID != m {
		return credentials{}, fmt.Errorf("username names %q, client id is %q", iothub.ClientID(u.DeviceID, u.ModuleID), clientID)
	}
	if len(password) == 0 {
		return credentials{}, fmt.Errorf("client %q sent no SAS token (X.509 authentication is not supported)", clientID)
	}
	tok, err := sas.Parse(string(password))
	if err != nil {
		return credentials{}, err
	}
	c := credentials{identity: sas.Identity{DeviceID: d, ModuleID: m}, token: tok}
	if c.signer, err = a.verifyOrResolve(ctx, tok, string(password), c.identity, now); err != nil {
		return credentials{}, err
	}
	return c, nil
}

// verify checks tok for id and returns the identity whose key signed it.
func (a *authenticator) verify(ctx context.Context, tok sas.Token, id sas.Identity, now time.Time) (sas.Identity, error) {
	var signer sas.Identity
	err := sas.Verify(tok, id, a.hosts, now, func(s sas.Identity) (sas.Keys, error) {
		signer = s
		return a.identities.Keys(ctx, s)
	})
	return signer, err
}
