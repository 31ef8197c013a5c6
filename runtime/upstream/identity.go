package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Authenticate asks IoT Hub whether password (the SAS token a client presented to the edge
// hub) authenticates id, on the client's behalf. On success it returns the identity record,
// keys and generation id included, which the hub caches so that the client can reconnect
// while the cloud is unreachable. Errors: ErrUnauthorized (401: the token does not verify,
// or the identity is disabled), ErrOutOfScope (403), ErrNotFound (404), ErrThrottled (429),
// all *StatusError; ErrOffline, ErrTimeout; ErrProtocol for an unreadable record.
func (c *Client) Authenticate(ctx context.Context, id sas.Identity, password string) (Identity, error) {
	r, err := c.identityRequest(ctx, iothub.OBOAuth, id, iothub.OBOCredentials{Password: password})
	if err != nil {
		return Identity{}, fmt.Errorf("authenticate %q: %w", id, err)
	}
	return r, nil
}

// AuthenticateThumbprint is Authenticate for a client that presented an X.509 certificate:
// thumbprint is its SHA-1 or SHA-256 hex digest, checked against a selfSigned identity's
// thumbprints. (Certificate-authority identities cannot be checked this way.)
func (c *Client) AuthenticateThumbprint(ctx context.Context, id sas.Identity, thumbprint string) (Identity, error) {
	r, err := c.identityRequest(ctx, iothub.OBOAuth, id, iothub.OBOCredentials{X509Thumbprint: thumbprint})
	if err != nil {
		return Identity{}, fmt.Errorf("authenticate %q: %w", id, err)
	}
	return r, nil
}

// GetIdentity fetches the current record of id, to refresh the hub's cache: keys that were
// rolled, a device that was disabled (Status "disabled", Enabled false). A deleted identity
// gives ErrNotFound, one outside the scope ErrOutOfScope.
func (c *Client) GetIdentity(ctx context.Context, id sas.Identity) (Identity, error) {
	r, err := c.identityRequest(ctx, iothub.OBOIdentityGet, id, nil)
	if err != nil {
		return Identity{}, fmt.Errorf("get identity %q: %w", id, err)
	}
	return r, nil
}

// identityRequest sends an auth or identity request and decodes the record of a 200 answer.
func (c *Client) identityRequest(ctx context.Context, kind iothub.OBOKind, id sas.Identity, body any) (Identity, error) {
	if err := checkID(id); err != nil {
		return Identity{}, err
	}
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body) // plain structs of strings: cannot fail
	}
	cn, err := c.acquire(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer cn.inflight.Done()
	r, err := c.identityOn(ctx, cn, kind, id, raw)
	if kind == iothub.OBOIdentityGet || err == nil {
		if verdict, known := standingOf(r, err); known {
			c.noteStanding(cn, id, verdict)
		}
	}
	return r, err
}

// identityOn sends an auth or identity request on cn.
func (c *Client) identityOn(ctx context.Context, cn *conn, kind iothub.OBOKind, id sas.Identity, body []byte) (Identity, error) {
	a, err := c.requestOn(ctx, cn, kind, id, body)
	if err != nil {
		return Identity{}, err
	}
	if a.status != http.StatusOK {
		return Identity{}, &StatusError{Status: a.status, Body: a.body}
	}
	rec, err := iothub.ParseOBOIdentity(a.body)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	r := Identity{rec}
	if r.ID() != id {
		return Identity{}, fmt.Errorf("%w: asked for %q, IoT Hub answered with the record of %q", ErrProtocol, id, r.ID())
	}
	return r, nil
}
