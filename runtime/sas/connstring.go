package sas

import (
	"fmt"
	"strings"
	"time"
)

// ConnectionString is a parsed IoT Hub connection string, for a device, a
// module, or a service (back-end) client.
type ConnectionString struct {
	// HostName is the IoT Hub host. It is the audience of tokens and the
	// host in the MQTT username, even when connecting through a gateway.
	HostName string
	// DeviceID is "" for a service string.
	DeviceID string
	// ModuleID is set for a module string.
	ModuleID string
	// SharedAccessKeyName is the policy name (service strings, or a device
	// using a policy with DeviceConnect rights).
	SharedAccessKeyName string
	// SharedAccessKey is the base64 symmetric key.
	SharedAccessKey string
	// SharedAccessSignature is a ready-made token ("SharedAccessSignature sr=...").
	SharedAccessSignature string
	// GatewayHostName is the edge hub to dial instead of HostName.
	GatewayHostName string
	// X509 reports that the client authenticates with a certificate.
	X509 bool
}

// Canonical key names, in the order String writes them.
const (
	keyHostName              = "HostName"
	keyDeviceID              = "DeviceId"
	keyModuleID              = "ModuleId"
	keySharedAccessKeyName   = "SharedAccessKeyName"
	keySharedAccessKey       = "SharedAccessKey"
	keySharedAccessSignature = "SharedAccessSignature"
	keyGatewayHostName       = "GatewayHostName"
	keyX509                  = "x509"
)

// keyNames lists the canonical key names, longest first where one is a
// prefix of another (SharedAccessKeyName before SharedAccessKey, X509Cert
// before x509), so unknownKey names the longest match.
var keyNames = []string{keyHostName, keyDeviceID, keyModuleID, keySharedAccessKeyName,
	keySharedAccessKey, keySharedAccessSignature, keyGatewayHostName, "X509Cert", keyX509}

// redacted replaces secrets in Redacted.
const redacted = "***"

// ParseConnectionString parses the ';'-separated Key=Value form. Empty parts
// (such as after a trailing ';') are ignored; each part is split on its first
// '=' (values hold base64 padding and whole tokens); keys and values are
// trimmed of surrounding whitespace. Keys match case-insensitively:
// HostName, DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey,
// SharedAccessSignature, GatewayHostName, and x509 (alias X509Cert) whose value
// is "true" or "false" in any case. A key with an empty value counts as absent.
//
// The result must be a device or module string with exactly one credential
// (SharedAccessKey, SharedAccessSignature or x509=true), or a service string
// (no DeviceId) with SharedAccessKeyName and SharedAccessKey. Errors wrap
// ErrMalformedConnectionString, name the key, and never contain a key or
// signature value.
func ParseConnectionString(s string) (ConnectionString, error) {
	var (
		c    ConnectionString
		seen = map[string]bool{}
	)
	for i, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			// Do not echo the part: it may be a fragment of a key.
			return ConnectionString{}, csErr("part %d: no '='", i+1)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		name := canonicalKey(k)
		if name == "" {
			return ConnectionString{}, unknownKey(i+1, k)
		}
		if seen[name] {
			return ConnectionString{}, csErr("duplicate key %s", name)
		}
		seen[name] = true
		switch name {
		case keyHostName:
			c.HostName = v
		case keyDeviceID:
			c.DeviceID = v
		case keyModuleID:
			c.ModuleID = v
		case keySharedAccessKeyName:
			c.SharedAccessKeyName = v
		case keySharedAccessKey:
			c.SharedAccessKey = v
		case keySharedAccessSignature:
			c.SharedAccessSignature = v
		case keyGatewayHostName:
			c.GatewayHostName = v
		case keyX509:
			switch {
			case v == "" || strings.EqualFold(v, "false"):
			case strings.EqualFold(v, "true"):
				c.X509 = true
			default:
				return ConnectionString{}, csErr("key %s: value is not true or false", k)
			}
		}
	}
	if err := c.validate(); err != nil {
		return ConnectionString{}, err
	}
	return c, nil
}

// validate checks the combination of keys and the form of the credentials.
func (c ConnectionString) validate() error {
	if c.HostName == "" {
		return csErr("missing %s", keyHostName)
	}
	if c.ModuleID != "" && c.DeviceID == "" {
		return csErr("%s without %s", keyModuleID, keyDeviceID)
	}
	if c.IsService() {
		if c.SharedAccessKeyName == "" || c.SharedAccessKey == "" {
			return csErr("service string (no %s) needs %s and %s", keyDeviceID, keySharedAccessKeyName, keySharedAccessKey)
		}
		if c.SharedAccessSignature != "" || c.X509 {
			return csErr("service string (no %s) cannot have %s or %s", keyDeviceID, keySharedAccessSignature, keyX509)
		}
	} else {
		n := 0
		for _, set := range []bool{c.SharedAccessKey != "", c.SharedAccessSignature != "", c.X509} {
			if set {
				n++
			}
		}
		if n != 1 {
			return csErr("device or module string needs exactly one of %s, %s, %s=true; has %d",
				keySharedAccessKey, keySharedAccessSignature, keyX509, n)
		}
		if c.SharedAccessKeyName != "" && c.SharedAccessKey == "" {
			return csErr("%s without %s", keySharedAccessKeyName, keySharedAccessKey)
		}
	}
	if c.SharedAccessKey != "" {
		if _, err := decodeKey(c.SharedAccessKey); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMalformedConnectionString, keySharedAccessKey, err)
		}
	}
	if c.SharedAccessSignature != "" {
		if _, err := Parse(c.SharedAccessSignature); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMalformedConnectionString, keySharedAccessSignature, err)
		}
	}
	return nil
}

// canonicalKey maps a key, in any case, to its canonical name, or "".
func canonicalKey(k string) string {
	for _, name := range keyNames {
		if strings.EqualFold(k, name) {
			if name == "X509Cert" {
				return keyX509
			}
			return name
		}
	}
	return ""
}

// unknownKey names an unknown key, unless it could hold part of a secret: a
// part like "SharedAccessKey<base64>=" (the '=' after the key name forgotten)
// splits at the base64 padding, leaving the key material in the key.
func unknownKey(part int, k string) error {
	for _, name := range keyNames {
		if len(k) > len(name) && strings.EqualFold(k[:len(name)], name) {
			return csErr("part %d: unknown key starting with %s (missing '='?)", part, name)
		}
	}
	if len(k) > maxEchoedKey || strings.IndexFunc(k, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return csErr("part %d: unknown key", part)
	}
	return csErr("part %d: unknown key %q", part, k)
}

// maxEchoedKey bounds the unknown key names quoted in errors; real key names
// are shorter, long ones are more likely pasted secrets.
const maxEchoedKey = 32

func csErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedConnectionString, fmt.Sprintf(format, args...))
}

// String renders c with canonical key names in canonical order: HostName,
// DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey,
// SharedAccessSignature, GatewayHostName, x509=true. Empty fields are omitted.
// It contains the secrets; log Redacted instead.
func (c ConnectionString) String() string { return c.render(false) }

// Redacted is String with the key and signature values replaced by "***",
// for logs.
func (c ConnectionString) Redacted() string { return c.render(true) }

func (c ConnectionString) render(hide bool) string {
	secret := func(v string) string {
		if hide && v != "" {
			return redacted
		}
		return v
	}
	x509 := ""
	if c.X509 {
		x509 = "true"
	}
	var parts []string
	for _, kv := range [][2]string{
		{keyHostName, c.HostName},
		{keyDeviceID, c.DeviceID},
		{keyModuleID, c.ModuleID},
		{keySharedAccessKeyName, c.SharedAccessKeyName},
		{keySharedAccessKey, secret(c.SharedAccessKey)},
		{keySharedAccessSignature, secret(c.SharedAccessSignature)},
		{keyGatewayHostName, c.GatewayHostName},
		{keyX509, x509},
	} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, ";")
}

// IsService reports whether c is a service (back-end) string: one without
// DeviceId.
func (c ConnectionString) IsService() bool { return c.DeviceID == "" }

// ResourceURI returns the raw (unencoded) audience of c's tokens:
// "{host}/devices/{d}", "{host}/devices/{d}/modules/{m}", or "{host}" for a
// service string. It always uses HostName, never GatewayHostName.
func (c ConnectionString) ResourceURI() string {
	switch {
	case c.IsService():
		return c.HostName
	case c.ModuleID == "":
		return c.HostName + "/devices/" + c.DeviceID
	default:
		return c.HostName + "/devices/" + c.DeviceID + "/modules/" + c.ModuleID
	}
}

// Token returns a token valid until now+ttl, signed with SharedAccessKey for
// ResourceURI, with skn = SharedAccessKeyName when set (always for a service
// string). With SharedAccessSignature it returns that token unchanged,
// whatever now and ttl, since it cannot be renewed. An X.509 string gives
// ErrNoKey.
func (c ConnectionString) Token(now time.Time, ttl time.Duration) (string, error) {
	switch {
	case c.SharedAccessSignature != "":
		return c.SharedAccessSignature, nil
	case c.SharedAccessKey == "":
		return "", fmt.Errorf("connection string for %q: %w", c.ResourceURI(), ErrNoKey)
	case ttl <= 0:
		return "", fmt.Errorf("connection string for %q: token ttl %s is not positive", c.ResourceURI(), ttl)
	}
	return Sign(c.ResourceURI(), c.SharedAccessKey, c.SharedAccessKeyName, now.Add(ttl))
}

// ConnectHost returns the host to dial: GatewayHostName if set, else HostName.
func (c ConnectionString) ConnectHost() string {
	if c.GatewayHostName != "" {
		return c.GatewayHostName
	}
	return c.HostName
}
