package fakehub

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// right is a set of shared access policy permissions (IoT Hub's RegistryRead,
// RegistryReadWrite, ServiceConnect, DeviceConnect). A route needs any one of the bits it
// lists.
type right uint8

const (
	rightRegistryRead   right = 1 << iota // read the identity registry, run queries
	rightRegistryWrite                    // create, update and delete identities
	rightServiceConnect                   // twins, methods, C2D and the fake-only API
	rightDeviceConnect                    // device-facing endpoints only: nothing here

	// rightNone marks a route that needs no authorisation (the health probe).
	rightNone right = 0

	// rightTwinRead: twins can be read with either registry or service rights.
	rightTwinRead = rightRegistryRead | rightServiceConnect
)

// policyRights are the permissions of IoT Hub's built-in shared access policies. A policy
// name the fake hub knows keys for but that is not listed here gets no rights, so that a
// new policy cannot silently grant everything.
var policyRights = map[string]right{
	"iothubowner":       rightRegistryRead | rightRegistryWrite | rightServiceConnect | rightDeviceConnect,
	"service":           rightServiceConnect,
	"device":            rightDeviceConnect,
	"registryRead":      rightRegistryRead,
	"registryReadWrite": rightRegistryRead | rightRegistryWrite,
}

// authorize checks the request's SharedAccessSignature against rt. It returns an apiError
// (401) naming what is wrong, never the token itself.
//
// Two kinds of token are accepted:
//   - a shared access policy token (skn present), verified against the hub host name and
//     the policy's keys, whose policy must hold rt.right;
//   - on rt.edge routes only, a device token of the edge device named by {d}
//     (sr = {host}/devices/{d}), which is what the edge agent uses to manage its modules.
func (a *restAPI) authorize(r *http.Request, rt route) error {
	header := r.Header.Get("Authorization")
	if header == "" {
		return unauthorized("the Authorization header is missing; send \"SharedAccessSignature sr=...&sig=...&se=...&skn=...\"")
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return unauthorized("the Authorization header is not a valid SharedAccessSignature token")
	}
	hosts := []string{a.hostname()}
	now := a.now()

	if tok.KeyName != "" {
		if err := sas.VerifyPolicy(tok, hosts, now, a.s.PolicyKeys); err != nil {
			return unauthorized(tokenProblem(err, "shared access policy "+quote(tok.KeyName)))
		}
		if policyRights[tok.KeyName]&rt.right == 0 {
			return unauthorized(fmt.Sprintf("shared access policy %q does not allow %s %s", tok.KeyName, r.Method, r.URL.Path))
		}
		return nil
	}

	aud, err := tok.Audience()
	if err != nil {
		return unauthorized("the SAS token's resource (sr) is not a hub, device or module URI")
	}
	if !rt.edge {
		return unauthorized(fmt.Sprintf("%s %s needs a shared access policy token (skn); device and module tokens are not accepted here", r.Method, r.URL.Path))
	}
	if aud.ModuleID != "" {
		return unauthorized("module tokens are not accepted on the service API; use the edge device's token or a policy token")
	}
	deviceID := r.PathValue("d")
	id := sas.Identity{DeviceID: deviceID}
	if err := sas.Verify(tok, id, hosts, now, a.s.IdentityKeys); err != nil {
		return unauthorized(tokenProblem(err, "device "+quote(deviceID)))
	}
	d, err := a.s.GetDevice(deviceID)
	if err != nil || !d.Capabilities.IoTEdge {
		return unauthorized(fmt.Sprintf("device %q is not an IoT Edge device; only an edge device may manage its own modules with its device token", deviceID))
	}
	return nil
}

// tokenProblem describes a verification failure by category. It deliberately does not
// repeat err's text, which may quote parts of the token.
func tokenProblem(err error, subject string) string {
	switch {
	case errors.Is(err, sas.ErrExpired):
		return "the SAS token for " + subject + " has expired"
	case errors.Is(err, sas.ErrAudience):
		return "the SAS token's resource (sr) does not match this hub (" + subject + ")"
	case errors.Is(err, sas.ErrSignature):
		return "the SAS token's signature does not match the keys of " + subject
	case errors.Is(err, ErrNotFound):
		return subject + " is unknown"
	case errors.Is(err, sas.ErrMalformedToken):
		return "the SAS token is malformed"
	default:
		return "the SAS token for " + subject + " was rejected"
	}
}

func unauthorized(msg string) apiError {
	return apiError{status: http.StatusUnauthorized, code: 401002, name: "IotHubUnauthorizedAccess", message: msg}
}

// quote quotes s for messages, keeping it short.
func quote(s string) string {
	const max = 130
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}
