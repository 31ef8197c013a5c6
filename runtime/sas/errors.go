package sas

import "errors"

// Sentinel errors. Callers match them with errors.Is; the wrapping message
// names the field or key at fault but never a key or signature value.
var (
	// ErrMalformedConnectionString reports a connection string that breaks
	// the grammar or combines keys that do not belong together.
	ErrMalformedConnectionString = errors.New("malformed connection string")
	// ErrMalformedToken reports a SAS token that breaks the grammar, or an
	// audience (sr) of a shape no identity or policy uses.
	ErrMalformedToken = errors.New("malformed SAS token")
	// ErrExpired reports a token whose expiry plus ClockSkew has passed.
	ErrExpired = errors.New("SAS token expired")
	// ErrAudience reports a token issued for another hub, another identity,
	// or the wrong kind of principal (a device token where a policy token is
	// needed, and the reverse).
	ErrAudience = errors.New("SAS token audience mismatch")
	// ErrSignature reports a signature that matches none of the keys.
	ErrSignature = errors.New("SAS token signature mismatch")
	// ErrInvalidKey reports a symmetric key that is empty or not valid base64.
	ErrInvalidKey = errors.New("invalid symmetric key")
	// ErrNoKey reports a connection string that cannot produce a SAS token
	// because it authenticates with an X.509 certificate.
	ErrNoKey = errors.New("connection string has no key to sign with")
)
