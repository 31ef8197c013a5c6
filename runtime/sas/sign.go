package sas

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

// Keys is an identity's or policy's pair of base64 symmetric keys. Either may
// be "" (not set); a token signed with either one verifies.
type Keys struct {
	Primary, Secondary string
}

// keyBytes is the length of keys made by NewKey, which is what IoT Hub
// generates when a registry entry omits its keys.
const keyBytes = 32

// NewKey returns a new symmetric key: the base64 of 32 bytes from crypto/rand.
func NewKey() (string, error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Sign creates a token for resourceURI, given raw (unencoded, for example
// "h.azure-devices.net/devices/dev1"). It URL-encodes the URI as
// url.QueryEscape does (uppercase %2F), signs sr + "\n" + se with HMAC-SHA256
// keyed by the base64-decoded key, and returns
// "SharedAccessSignature sr=...&sig=...&se=...", followed by "&skn=..." when
// keyName is not "". expiry is truncated to whole seconds. A key that is empty
// or not base64 gives ErrInvalidKey.
func Sign(resourceURI, key, keyName string, expiry time.Time) (string, error) {
	if resourceURI == "" {
		return "", fmt.Errorf("sign: %w: empty resource URI", ErrMalformedToken)
	}
	if expiry.Unix() < 0 {
		return "", fmt.Errorf("sign: %w: expiry %s is before the Unix epoch", ErrMalformedToken, expiry.UTC().Format(time.RFC3339))
	}
	k, err := decodeKey(key)
	if err != nil {
		return "", fmt.Errorf("sign %q: %w", resourceURI, err)
	}
	t := Token{Resource: escape(resourceURI), Expiry: expiry.Unix(), KeyName: keyName}
	t.Signature = signature(k, t.Resource, t.Expiry)
	return t.String(), nil
}

// VerifySignature checks the signature against keys.Primary, then
// keys.Secondary, over Resource verbatim + "\n" + se, comparing in constant
// time. Empty keys are skipped; a key that is not base64 gives ErrInvalidKey;
// no match (or no key at all) gives ErrSignature.
func (t Token) VerifySignature(keys Keys) error {
	var decoded [][]byte
	for _, k := range []struct{ name, value string }{{"primary", keys.Primary}, {"secondary", keys.Secondary}} {
		if k.value == "" {
			continue
		}
		b, err := decodeKey(k.value)
		if err != nil {
			return fmt.Errorf("%s key: %w", k.name, err)
		}
		decoded = append(decoded, b)
	}
	if len(decoded) == 0 {
		return fmt.Errorf("%w: no key to verify with", ErrSignature)
	}
	for _, k := range decoded {
		if hmac.Equal([]byte(signature(k, t.Resource, t.Expiry)), []byte(t.Signature)) {
			return nil
		}
	}
	return fmt.Errorf("%w: matches neither the primary nor the secondary key", ErrSignature)
}

// signature is base64(HMAC-SHA256(key, sr + "\n" + se)).
func signature(key []byte, sr string, se int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sr + "\n" + strconv.FormatInt(se, 10)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// decodeKey decodes a base64 symmetric key. The error never contains the key.
func decodeKey(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid base64", ErrInvalidKey)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	return b, nil
}
