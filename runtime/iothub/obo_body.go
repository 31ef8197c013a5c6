package iothub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
)

// Bodies of the on-behalf-of extension (see obo.go). All are JSON objects. Requests whose
// body is not described here (identity GET, detach, twin GET) ignore their body; answers
// other than 2xx carry an OBOError.

// Subscription names in an attach request: what IoT Hub forwards for the attached identity.
const (
	// OBOSubDesired asks for desired-property notifications on
	// $edgehub/{I}/twin/PATCH/properties/desired/?$version={n}.
	OBOSubDesired = "desired"
	// OBOSubMethods asks for direct method requests on $edgehub/{I}/methods/POST/{name}/.
	OBOSubMethods = "methods"
	// OBOSubC2D asks for cloud-to-device messages on devices/{d}/messages/devicebound/ (leaf
	// devices only: modules have no C2D).
	OBOSubC2D = "c2d"
)

// Identity statuses in an OBOIdentity, as the registry spells them.
const (
	OBOStatusEnabled  = "enabled"
	OBOStatusDisabled = "disabled"
)

// Authentication types in an OBOIdentity, as the registry spells them.
const (
	OBOAuthSAS        = "sas"
	OBOAuthSelfSigned = "selfSigned"
	OBOAuthCA         = "certificateAuthority"
	OBOAuthNone       = "none"
)

// OBOCredentials is the body of an auth request: the credentials the client presented to the
// edge hub. Exactly one field is set: Password, the client's SAS token ("SharedAccessSignature
// sr=..."), or X509Thumbprint, the SHA-1 or SHA-256 hex thumbprint of the certificate the
// client presented.
type OBOCredentials struct {
	Password       string `json:"password,omitempty"`
	X509Thumbprint string `json:"x509Thumbprint,omitempty"`
}

// ParseOBOCredentials decodes an auth request body. Errors wrap ErrMalformedBody: not a JSON
// object, neither or both fields set.
func ParseOBOCredentials(body []byte) (OBOCredentials, error) {
	var c OBOCredentials
	if err := decodeBody(body, &c); err != nil {
		return OBOCredentials{}, fmt.Errorf("auth request: %w", err)
	}
	if (c.Password == "") == (c.X509Thumbprint == "") {
		return OBOCredentials{}, fmt.Errorf("auth request: %w: want exactly one of \"password\" and \"x509Thumbprint\"", ErrMalformedBody)
	}
	return c, nil
}

// OBOIdentity is the identity record IoT Hub returns with 200 to auth and identity requests:
// the registry's view of a device or module, keys included, which is what lets the edge hub
// verify that identity's later tokens itself (as edgeHub's device-scope cache does) and keep
// authenticating it while the cloud is unreachable. A module's Status is its device's (the
// registry has no module status; disabling a device disables its modules).
type OBOIdentity struct {
	DeviceID       string                    `json:"deviceId"`
	ModuleID       string                    `json:"moduleId,omitempty"`
	GenerationID   string                    `json:"generationId"`
	Status         string                    `json:"status"`
	Authentication OBOIdentityAuthentication `json:"authentication"`
	DeviceScope    string                    `json:"deviceScope,omitempty"`
	ParentScopes   []string                  `json:"parentScopes,omitempty"`
	Etag           string                    `json:"etag,omitempty"`
}

// OBOIdentityAuthentication is an identity's authentication mechanism: Type is one of
// OBOAuthSAS, OBOAuthSelfSigned, OBOAuthCA, OBOAuthNone; SymmetricKey is set for "sas",
// X509Thumbprint for "selfSigned".
type OBOIdentityAuthentication struct {
	Type           string             `json:"type"`
	SymmetricKey   *OBOSymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *OBOX509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// OBOSymmetricKey is a pair of base64 symmetric keys.
type OBOSymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// OBOX509Thumbprint holds the hex thumbprints of a selfSigned identity's certificates.
type OBOX509Thumbprint struct {
	PrimaryThumbprint   string `json:"primaryThumbprint"`
	SecondaryThumbprint string `json:"secondaryThumbprint,omitempty"`
}

// Enabled reports whether the identity may connect (Status "enabled").
func (r OBOIdentity) Enabled() bool { return r.Status == OBOStatusEnabled }

// ParseOBOIdentity decodes and checks an identity record. Errors wrap ErrMalformedBody: not a
// JSON object; a device id or module id that ValidateDeviceID/ValidateModuleID refuses; a
// status other than "enabled" and "disabled"; an unknown authentication type; a "sas" identity
// without a valid base64 key; a "selfSigned" identity without a primary thumbprint.
func ParseOBOIdentity(body []byte) (OBOIdentity, error) {
	var r OBOIdentity
	if err := decodeBody(body, &r); err != nil {
		return OBOIdentity{}, fmt.Errorf("identity record: %w", err)
	}
	if err := r.check(); err != nil {
		return OBOIdentity{}, fmt.Errorf("identity record %q: %w: %w", truncate(ClientID(r.DeviceID, r.ModuleID)), ErrMalformedBody, err)
	}
	if len(r.ParentScopes) == 0 {
		r.ParentScopes = nil // "parentScopes":[] and no member mean the same
	}
	return r, nil
}

func (r OBOIdentity) check() error {
	if err := ValidateDeviceID(r.DeviceID); err != nil {
		return err
	}
	if r.ModuleID != "" {
		if err := ValidateModuleID(r.ModuleID); err != nil {
			return err
		}
	}
	if r.Status != OBOStatusEnabled && r.Status != OBOStatusDisabled {
		return fmt.Errorf("status %q is neither %q nor %q", truncate(r.Status), OBOStatusEnabled, OBOStatusDisabled)
	}
	a := r.Authentication
	switch a.Type {
	case OBOAuthSAS:
		if a.SymmetricKey == nil || (a.SymmetricKey.PrimaryKey == "" && a.SymmetricKey.SecondaryKey == "") {
			return fmt.Errorf("authentication type %q without a symmetric key", a.Type)
		}
		for _, k := range []string{a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey} {
			if _, err := base64.StdEncoding.DecodeString(k); err != nil {
				return fmt.Errorf("symmetric key is not base64")
			}
		}
	case OBOAuthSelfSigned:
		if a.X509Thumbprint == nil || a.X509Thumbprint.PrimaryThumbprint == "" {
			return fmt.Errorf("authentication type %q without a primary thumbprint", a.Type)
		}
	case OBOAuthCA, OBOAuthNone:
	default:
		return fmt.Errorf("authentication type %q is not one of sas, selfSigned, certificateAuthority, none", truncate(a.Type))
	}
	return nil
}

// OBOAttachment is the body of an attach request: the identity is now connected to the edge
// hub, and Subscriptions (OBOSubDesired, OBOSubMethods, OBOSubC2D) say what IoT Hub should
// forward for it. Attaching again replaces the subscriptions.
type OBOAttachment struct {
	Subscriptions []string `json:"subscriptions"`
}

// ParseOBOAttachment decodes an attach request body. An empty body attaches without
// subscriptions; a repeated name counts once. Errors wrap ErrMalformedBody: not a JSON object,
// or an unknown subscription name.
func ParseOBOAttachment(body []byte) (OBOAttachment, error) {
	var a OBOAttachment
	if len(bytes.TrimSpace(body)) == 0 {
		return a, nil
	}
	if err := decodeBody(body, &a); err != nil {
		return OBOAttachment{}, fmt.Errorf("attach request: %w", err)
	}
	for _, s := range a.Subscriptions {
		if s != OBOSubDesired && s != OBOSubMethods && s != OBOSubC2D {
			return OBOAttachment{}, fmt.Errorf("attach request: %w: subscription %q is not one of %q, %q, %q",
				ErrMalformedBody, truncate(s), OBOSubDesired, OBOSubMethods, OBOSubC2D)
		}
	}
	return a, nil
}

// Has reports whether the attachment asks for the named subscription.
func (a OBOAttachment) Has(name string) bool { return slices.Contains(a.Subscriptions, name) }

// OBOError is the body of an answer other than 2xx: IoT Hub's error shape. ErrorCode is
// informative (for example 404001); clients branch on the topic's status.
type OBOError struct {
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
}

// decodeBody decodes a JSON object into v; anything else wraps ErrMalformedBody.
func decodeBody(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformedBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedBody, err)
	}
	return nil
}
