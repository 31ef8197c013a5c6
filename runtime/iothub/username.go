package iothub

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultAPIVersion is the api-version FormatUsername writes when the caller gives none.
const DefaultAPIVersion = "2021-04-12"

// Username query parameter keys seen in practice (section 1.3).
const (
	ParamAPIVersion       = "api-version"
	ParamDeviceClientType = "DeviceClientType"
	ParamModelID          = "model-id"
	ParamAuthChain        = "auth-chain"
)

// azureMLSuffix is the tail of the one legacy username with 6 segments that edgeHub accepts.
const azureMLSuffix = "/api-version=2017-06-30/DeviceClientType=Microsoft.Azure.Devices.Client/1.5.1-preview-003"

// Username is a parsed CONNECT username (section 1.3).
type Username struct {
	// Host is the first segment, normally the IoT Hub host name (not the gateway's). It is not
	// validated.
	Host string
	// DeviceID and ModuleID are verbatim (not URL-decoded) apart from surrounding white space,
	// which edgeHub trims. ModuleID is empty for a device.
	DeviceID string
	ModuleID string
	// Params holds the query parameters: keys verbatim, values URI-unescaped ('+' literal), the
	// first of duplicate keys, and "" for a key without '='. Unknown keys are kept.
	Params map[string]string
	// Legacy is set for the forms without "?" ("{host}/{d}/api-version=...") and for the
	// 6-segment Azure ML form.
	Legacy bool
}

// APIVersion returns the api-version parameter.
func (u Username) APIVersion() string { return u.Params[ParamAPIVersion] }

// ParseUsername parses a CONNECT username with edgeHub's rules (MqttUsernameParser):
//
//   - split on '/'; when the last segment starts with '?': "{host}/{d}/?{query}" (3 segments)
//     or "{host}/{d}/{m}/?{query}" (4 segments);
//   - otherwise, legacy: "{host}/{d}/{query}" or "{host}/{d}/{m}/{query}" where the last
//     segment contains "api-version=", or the 6-segment Azure ML form ending in
//     "/api-version=2017-06-30/DeviceClientType=Microsoft.Azure.Devices.Client/1.5.1-preview-003";
//   - ids and the query are trimmed of white space; the query is split on '&' then on the
//     first '='; duplicate keys keep the first value; values are URI-unescaped;
//   - api-version must be present and not blank, and the device id must not be blank.
//
// In addition to edgeHub, an empty module id in the module form is rejected. Errors wrap
// ErrMalformedUsername and say what is wrong.
func ParseUsername(s string) (Username, error) {
	u, reason := parseUsername(s)
	if reason != "" {
		return Username{}, fmt.Errorf("username %q: %w: %s", truncate(s), ErrMalformedUsername, reason)
	}
	return u, nil
}

func parseUsername(s string) (Username, string) {
	if strings.TrimSpace(s) == "" {
		return Username{}, "empty"
	}
	segs := strings.Split(s, "/")
	last := segs[len(segs)-1]
	u := Username{Host: segs[0]}
	var rawQuery string
	switch {
	case strings.HasPrefix(last, "?") && len(segs) == 3:
		u.DeviceID, rawQuery = segs[1], last[1:]
	case strings.HasPrefix(last, "?") && len(segs) == 4:
		u.DeviceID, u.ModuleID, rawQuery = segs[1], segs[2], last[1:]
	case strings.HasPrefix(last, "?"):
		return Username{}, fmt.Sprintf("%d segments, want 3 ({host}/{device}/?query) or 4 ({host}/{device}/{module}/?query)", len(segs))
	case len(segs) == 3 && strings.Contains(last, "api-version="):
		u.DeviceID, rawQuery, u.Legacy = segs[1], last, true
	case len(segs) == 4 && strings.Contains(last, "api-version="):
		u.DeviceID, u.ModuleID, rawQuery, u.Legacy = segs[1], segs[2], last, true
	case len(segs) == 6 && hasSuffixFold(s, azureMLSuffix):
		u.DeviceID, u.ModuleID, u.Legacy = segs[1], segs[2], true
		u.Params = map[string]string{
			ParamAPIVersion:       "2017-06-30",
			ParamDeviceClientType: "Microsoft.Azure.Devices.Client/1.5.1-preview-003",
		}
	default:
		return Username{}, "want {host}/{device}[/{module}]/?api-version=... or the legacy {host}/{device}[/{module}]/api-version=..."
	}
	if u.Params == nil {
		u.Params = parseUsernameQuery(strings.TrimSpace(rawQuery))
	}
	u.DeviceID = strings.TrimSpace(u.DeviceID)
	u.ModuleID = strings.TrimSpace(u.ModuleID)
	switch {
	case strings.TrimSpace(u.APIVersion()) == "":
		return Username{}, "missing or empty api-version"
	case u.DeviceID == "":
		return Username{}, "empty device id"
	case u.ModuleID == "" && (len(segs) == 4 || len(segs) == 6):
		return Username{}, "empty module id"
	}
	return u, ""
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// parseUsernameQuery mirrors edgeHub's ParseDeviceClientType: keys verbatim, first duplicate
// wins, values unescaped, a key without '=' maps to "".
func parseUsernameQuery(q string) map[string]string {
	params := map[string]string{}
	for item := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(item, "=")
		if _, dup := params[k]; !dup {
			params[k] = percentDecode(v)
		}
	}
	return params
}

// FormatUsername builds "{host}/{d}/?api-version={v}&{k}={v}..." ("{host}/{d}/{m}/?..." when
// moduleID is not empty). api-version comes first, DefaultAPIVersion when params has none; the
// other keys follow sorted. Keys and values are percent-encoded like Bag.Encode (so a space is
// %20, never '+'). ParseUsername does not decode keys, as edgeHub does not, so only keys made
// of A-Z a-z 0-9 - . _ ~ read back unchanged; all the keys in use are.
func FormatUsername(host, deviceID, moduleID string, params map[string]string) string {
	var sb strings.Builder
	sb.WriteString(host)
	sb.WriteByte('/')
	sb.WriteString(deviceID)
	if moduleID != "" {
		sb.WriteByte('/')
		sb.WriteString(moduleID)
	}
	apiVersion := params[ParamAPIVersion]
	if apiVersion == "" {
		apiVersion = DefaultAPIVersion
	}
	sb.WriteString("/?" + ParamAPIVersion + "=")
	percentEncode(&sb, apiVersion)
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != ParamAPIVersion {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		sb.WriteByte('&')
		percentEncode(&sb, k)
		sb.WriteByte('=')
		percentEncode(&sb, params[k])
	}
	return sb.String()
}

// ParseClientID splits a CONNECT client identifier: "{d}" for a device, "{d}/{m}" for a
// module (section 1.2). Ids are verbatim. Errors wrap ErrMalformedClientID.
func ParseClientID(id string) (deviceID, moduleID string, err error) {
	deviceID, moduleID, isModule := strings.Cut(id, "/")
	switch {
	case deviceID == "":
		err = fmt.Errorf("client id %q: %w: empty device id", truncate(id), ErrMalformedClientID)
	case isModule && moduleID == "":
		err = fmt.Errorf("client id %q: %w: empty module id", truncate(id), ErrMalformedClientID)
	case strings.Contains(moduleID, "/"):
		err = fmt.Errorf("client id %q: %w: more than two segments", truncate(id), ErrMalformedClientID)
	}
	if err != nil {
		return "", "", err
	}
	return deviceID, moduleID, nil
}

// ClientID returns the CONNECT client identifier of an identity: "{d}" or "{d}/{m}".
func ClientID(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}
