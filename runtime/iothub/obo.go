package iothub

import (
	"fmt"
	"strconv"
	"strings"
)

// The on-behalf-of extension ("obo"): how Outpost's edge hub carries every local client over
// ONE MQTT connection to IoT Hub. IoT Hub's MQTT dialect binds one identity to one connection;
// the extension, implemented by Outpost's fake hub, adds identity-qualified topics so that the
// edge hub, connected once as "{edge}/$edgeHub", can act for the identities in its device
// scope (docs/upstream.md tells the whole story; design.md section 4 the why).
//
// # Connection
//
// A plain IoT Hub CONNECT as the module identity "{edge}/$edgeHub" with its own SAS token. The
// username may carry the extra query parameter "outpost-ext=1" (ParamOutpostExtension); the
// fake hub does not need it. The edge hub subscribes to OBOFilter ("$edgehub/#") and to
// OBOC2DFilter ("devices/+/messages/devicebound/#").
//
// # Topics
//
// An identity path I is "devices/{d}" or "devices/{d}/modules/{m}", ids verbatim (never
// percent-encoded, as everywhere in the dialect). Every extension topic is
// "$edgehub/" + I + "/" + a path relative to IoT Hub's "$iothub/", and every request carries
// its "$rid" first, exactly as on the $iothub topics:
//
//	edge hub -> IoT Hub                                  IoT Hub -> edge hub
//	$edgehub/{I}/auth/?$rid={rid}                        $edgehub/{I}/auth/res/{status}/?$rid={rid}
//	$edgehub/{I}/identity/GET/?$rid={rid}                $edgehub/{I}/identity/res/{status}/?$rid={rid}
//	$edgehub/{I}/attach/?$rid={rid}                      $edgehub/{I}/attach/res/{status}/?$rid={rid}
//	$edgehub/{I}/detach/?$rid={rid}                      $edgehub/{I}/detach/res/{status}/?$rid={rid}
//	$edgehub/{I}/twin/GET/?$rid={rid}                    $edgehub/{I}/twin/res/{status}/?$rid={rid}[&$version={n}]
//	$edgehub/{I}/twin/PATCH/properties/reported/?$rid={rid}
//	                                                     $edgehub/{I}/twin/PATCH/properties/desired/?$version={n}
//	$edgehub/{I}/methods/res/{status}/?$rid={rid}        $edgehub/{I}/methods/POST/{name}/?$rid={rid}
//
// Telemetry and C2D need no new topic: the plain "devices/{d}[/modules/{m}]/messages/events/"
// and "devices/{d}/messages/devicebound/" topics already name the identity. The bodies are in
// obo_body.go.
//
// # Parsing
//
// ParseOBOTopic follows ParseTopic's rules for the $iothub part (query parsed as a query, $rid
// kept verbatim, GET and PATCH in any case). Ids cannot contain '/', so the identity path is
// read segment by segment from the left: a device named "modules" is unambiguous because the
// operation names never are "modules".

// Extension constants.
const (
	// OBOTopicPrefix starts every topic of the extension.
	OBOTopicPrefix = "$edgehub/"
	// OBOFilter is the edge hub's subscription to every extension topic addressed to it.
	OBOFilter = "$edgehub/#"
	// OBOC2DFilter is the edge hub's subscription to the C2D messages of the leaf devices it
	// carries (the embedded C SDK's filter form, accepted by IoT Hub).
	OBOC2DFilter = "devices/+/messages/devicebound/#"
	// ParamOutpostExtension is the username query parameter ("outpost-ext=1") with which the
	// edge hub announces the extension. Optional.
	ParamOutpostExtension = "outpost-ext"
)

// OBOKind says which topic of the extension a topic name is.
type OBOKind int

// Extension topic kinds; the comment gives the part after "$edgehub/{I}/".
const (
	OBOAuth              OBOKind = iota + 1 // auth/?$rid={rid}
	OBOAuthResponse                         // auth/res/{status}/?$rid={rid}
	OBOIdentityGet                          // identity/GET/?$rid={rid}
	OBOIdentityResponse                     // identity/res/{status}/?$rid={rid}
	OBOAttach                               // attach/?$rid={rid}
	OBOAttachResponse                       // attach/res/{status}/?$rid={rid}
	OBODetach                               // detach/?$rid={rid}
	OBODetachResponse                       // detach/res/{status}/?$rid={rid}
	OBOTwinGet                              // twin/GET/?$rid={rid}
	OBOTwinPatchReported                    // twin/PATCH/properties/reported/?$rid={rid}[&$version={n}]
	OBOTwinResponse                         // twin/res/{status}/?$rid={rid}[&$version={n}]
	OBOTwinPatchDesired                     // twin/PATCH/properties/desired/?$version={n}
	OBOMethodRequest                        // methods/POST/{name}/?$rid={rid}
	OBOMethodResponse                       // methods/res/{status}/?$rid={rid}
)

var oboKindNames = [...]string{
	OBOAuth:              "auth",
	OBOAuthResponse:      "auth-response",
	OBOIdentityGet:       "identity-get",
	OBOIdentityResponse:  "identity-response",
	OBOAttach:            "attach",
	OBOAttachResponse:    "attach-response",
	OBODetach:            "detach",
	OBODetachResponse:    "detach-response",
	OBOTwinGet:           "twin-get",
	OBOTwinPatchReported: "twin-patch-reported",
	OBOTwinResponse:      "twin-response",
	OBOTwinPatchDesired:  "twin-patch-desired",
	OBOMethodRequest:     "method-request",
	OBOMethodResponse:    "method-response",
}

// String returns a short lowercase name such as "auth-response", or "OBOKind(n)".
func (k OBOKind) String() string {
	if k > 0 && int(k) < len(oboKindNames) {
		return oboKindNames[k]
	}
	return "OBOKind(" + strconv.Itoa(int(k)) + ")"
}

// FromEdge reports whether the edge hub publishes topics of this kind (requests, and its
// answers to method requests); the others are published by IoT Hub.
func (k OBOKind) FromEdge() bool {
	switch k {
	case OBOAuth, OBOIdentityGet, OBOAttach, OBODetach, OBOTwinGet, OBOTwinPatchReported, OBOMethodResponse:
		return true
	}
	return false
}

// Response returns the kind of the answer to a request of kind k, or 0 when k is not a
// request the edge hub makes.
func (k OBOKind) Response() OBOKind {
	switch k {
	case OBOAuth:
		return OBOAuthResponse
	case OBOIdentityGet:
		return OBOIdentityResponse
	case OBOAttach:
		return OBOAttachResponse
	case OBODetach:
		return OBODetachResponse
	case OBOTwinGet, OBOTwinPatchReported:
		return OBOTwinResponse
	}
	return 0
}

// OBOTopic is a parsed extension topic. Which fields are set depends on Kind.
type OBOTopic struct {
	Kind OBOKind
	// DeviceID and ModuleID name the identity the topic acts for, verbatim.
	DeviceID string
	ModuleID string
	// RequestID is the $rid value, verbatim, on every kind but OBOTwinPatchDesired.
	RequestID string
	// Status is the status of the response kinds.
	Status int
	// Version is the $version parameter when HasVersion is set (twin responses, reported
	// patches, desired patches).
	Version    int64
	HasVersion bool
	// Method is the method name of an OBOMethodRequest, verbatim.
	Method string
}

// OBOPrefix returns "$edgehub/devices/{d}/" or "$edgehub/devices/{d}/modules/{m}/" when
// moduleID is not empty.
func OBOPrefix(deviceID, moduleID string) string {
	return OBOTopicPrefix + identityPrefix(deviceID, moduleID) + "/"
}

// ParseOBOTopic parses a topic of the extension, in either direction. Errors wrap
// ErrUnknownTopic when the topic is not one of the extension (including every topic that does
// not start with "$edgehub/") and ErrMalformedTopic when it is but a part is invalid (empty id
// or method name, missing or empty $rid, non-integer status, bad or missing $version); the
// message quotes the topic, truncated when long.
func ParseOBOTopic(s string) (OBOTopic, error) {
	t, err := parseOBOTopic(s)
	if err != nil {
		return OBOTopic{}, fmt.Errorf("topic %q: %w", truncate(s), err)
	}
	return t, nil
}

func parseOBOTopic(s string) (OBOTopic, error) {
	if len(s) > MaxTopicLength {
		return OBOTopic{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrMalformedTopic, len(s), MaxTopicLength)
	}
	rest, ok := strings.CutPrefix(s, OBOTopicPrefix+"devices/")
	if !ok {
		return OBOTopic{}, ErrUnknownTopic
	}
	var t OBOTopic
	t.DeviceID, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return OBOTopic{}, ErrUnknownTopic
	}
	if after, isModule := strings.CutPrefix(rest, "modules/"); isModule {
		t.ModuleID, rest, ok = strings.Cut(after, "/")
		if !ok {
			return OBOTopic{}, ErrUnknownTopic
		}
		if t.ModuleID == "" {
			return OBOTopic{}, fmt.Errorf("%w: empty module id", ErrMalformedTopic)
		}
	}
	if t.DeviceID == "" {
		return OBOTopic{}, fmt.Errorf("%w: empty device id", ErrMalformedTopic)
	}
	op, err := parseOBOOperation(rest)
	if err != nil {
		return OBOTopic{}, err
	}
	t.Kind, t.RequestID, t.Status, t.Version, t.HasVersion, t.Method =
		op.Kind, op.RequestID, op.Status, op.Version, op.HasVersion, op.Method
	return t, nil
}

// Operation tables of parseOBOOperation.
var (
	oboIotHubKinds = map[Kind]OBOKind{
		KindTwinGet: OBOTwinGet, KindTwinPatchReported: OBOTwinPatchReported,
		KindTwinResponse: OBOTwinResponse, KindTwinPatchDesired: OBOTwinPatchDesired,
		KindMethodRequest: OBOMethodRequest, KindMethodResponse: OBOMethodResponse,
	}
	oboRequests  = map[string]OBOKind{"auth": OBOAuth, "attach": OBOAttach, "detach": OBODetach}
	oboResponses = map[string]OBOKind{"auth": OBOAuthResponse, "identity": OBOIdentityResponse,
		"attach": OBOAttachResponse, "detach": OBODetachResponse}
)

// parseOBOOperation parses the part after the identity path. The twin and method operations
// are the $iothub paths and go through parseIotHubTopic, so both dialects follow one set of
// rules; the others are parsed the same way.
func parseOBOOperation(rest string) (OBOTopic, error) {
	if strings.HasPrefix(rest, "twin/") || strings.HasPrefix(rest, "methods/") {
		it, err := parseIotHubTopic(rest)
		if err != nil {
			return OBOTopic{}, err
		}
		return OBOTopic{Kind: oboIotHubKinds[it.Kind], RequestID: it.RequestID, Status: it.Status,
			Version: it.Version, HasVersion: it.HasVersion, Method: it.Method}, nil
	}
	path, query, _ := strings.Cut(rest, "?")
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	var t OBOTopic
	switch {
	case len(segs) == 1 && oboRequests[segs[0]] != 0:
		t.Kind = oboRequests[segs[0]]
	case len(segs) == 2 && segs[0] == "identity" && strings.EqualFold(segs[1], "GET"):
		t.Kind = OBOIdentityGet
	case len(segs) == 3 && segs[1] == "res" && oboResponses[segs[0]] != 0:
		t.Kind = oboResponses[segs[0]]
		status, err := strconv.ParseInt(segs[2], 10, 32)
		if err != nil {
			return OBOTopic{}, fmt.Errorf("%w: status %q is not a 32-bit integer", ErrMalformedTopic, truncate(segs[2]))
		}
		t.Status = int(status)
	default:
		return OBOTopic{}, ErrUnknownTopic
	}
	q := parseQuery(query)
	switch {
	case !q.hasRID:
		return OBOTopic{}, fmt.Errorf("%w: missing $rid", ErrMalformedTopic)
	case q.rid == "":
		return OBOTopic{}, fmt.Errorf("%w: empty $rid", ErrMalformedTopic)
	}
	t.RequestID = q.rid
	return t, nil
}

// String returns the canonical topic name, or "" for an unknown Kind. It is also the builder:
// OBOTopic{Kind: OBOAuth, DeviceID: "leaf1", RequestID: "7"}.String() is
// "$edgehub/devices/leaf1/auth/?$rid=7". A twin response or reported patch carries
// "&$version={n}" when HasVersion is set. ParseOBOTopic(t.String()) returns t for every t
// that ParseOBOTopic returned. Like the other builders it does not validate: check ids,
// method names and request ids first where they come from outside.
func (t OBOTopic) String() string {
	p := OBOPrefix(t.DeviceID, t.ModuleID)
	rid := "/?$rid=" + t.RequestID
	res := func(op string) string { return p + op + "/res/" + strconv.Itoa(t.Status) + rid }
	version := ""
	if t.HasVersion {
		version = "&$version=" + strconv.FormatInt(t.Version, 10)
	}
	switch t.Kind {
	case OBOAuth:
		return p + "auth" + rid
	case OBOAuthResponse:
		return res("auth")
	case OBOIdentityGet:
		return p + "identity/GET" + rid
	case OBOIdentityResponse:
		return res("identity")
	case OBOAttach:
		return p + "attach" + rid
	case OBOAttachResponse:
		return res("attach")
	case OBODetach:
		return p + "detach" + rid
	case OBODetachResponse:
		return res("detach")
	case OBOTwinGet:
		return p + "twin/GET" + rid
	case OBOTwinPatchReported:
		return p + "twin/PATCH/properties/reported" + rid + version
	case OBOTwinResponse:
		return res("twin") + version
	case OBOTwinPatchDesired:
		return p + "twin/PATCH/properties/desired/?$version=" + strconv.FormatInt(t.Version, 10)
	case OBOMethodRequest:
		return p + "methods/POST/" + t.Method + rid
	case OBOMethodResponse:
		return res("methods")
	}
	return ""
}

// Reply returns the response topic to the request t with the given status: same identity and
// $rid, Kind t.Kind.Response(). A twin response gets "&$version={version}" when version > 0
// (IoT Hub's form for 204 answers to reported patches). For a kind that is not a request the
// result has Kind 0 and String returns "".
func (t OBOTopic) Reply(status int, version int64) OBOTopic {
	r := OBOTopic{Kind: t.Kind.Response(), DeviceID: t.DeviceID, ModuleID: t.ModuleID,
		RequestID: t.RequestID, Status: status}
	if r.Kind == OBOTwinResponse && version > 0 {
		r.Version, r.HasVersion = version, true
	}
	return r
}
