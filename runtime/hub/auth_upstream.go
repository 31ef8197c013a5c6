package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// IdentityResolver asks the cloud about a client that the identity cache cannot verify
// (Deps.Resolver): the on-behalf-of authentication of design.md section 4 and
// edge-runtime-behaviour.md F.7.
//
// The authentication hook calls Resolve from the connecting client's goroutine, within
// Options.AuthTimeout, when the token failed locally for a reason the cloud may know better:
// an identity the cache does not hold, one it holds as disabled, or a signature that
// matches none of the cached keys (the keys were rolled upstream). It is not called for a
// token that is expired, malformed or issued for another identity or host: the cloud would
// refuse those too.
type IdentityResolver interface {
	// Resolve checks password (the SAS token exactly as the client presented it) for id
	// with the cloud and, when the cloud accepts it, updates what Deps.Identities answers
	// for id (keys, status, generation id) before returning nil. The hub then verifies the
	// token again against Identities, so that the decision, and every revalidation after
	// it, comes from the cache. Any error refuses the client; it wraps ErrOffline when the
	// cloud could not be asked. An implementation must be safe for concurrent use.
	Resolve(ctx context.Context, id sas.Identity, password string) error
}

// resolvable reports whether a local verification failure may be cured by asking the
// cloud: not an expired or malformed token, nor one issued for another identity or host.
func resolvable(err error) bool {
	return !errors.Is(err, sas.ErrExpired) && !errors.Is(err, sas.ErrAudience) &&
		!errors.Is(err, sas.ErrMalformedToken) && !errors.Is(err, context.Canceled)
}

// verifyOrResolve verifies tok for id against the identities and, when that fails for a
// reason the cloud may know better and a resolver is configured, asks the resolver and
// verifies again. It returns the identity whose key signed the token.
func (a *authenticator) verifyOrResolve(ctx context.Context, tok sas.Token, password string, id sas.Identity, now time.Time) (sas.Identity, error) {
	signer, err := a.verify(ctx, tok, id, now)
	if err == nil || a.resolver == nil || !resolvable(err) {
		return signer, err
	}
	if rerr := a.resolver.Resolve(ctx, id, password); rerr != nil {
		return sas.Identity{}, fmt.Errorf("%w (asked upstream: %w)", err, rerr)
	}
	signer, err = a.verify(ctx, tok, id, now)
	if err != nil {
		return sas.Identity{}, fmt.Errorf("accepted upstream but not with the identity's own keys: %w", err)
	}
	return signer, nil
}
