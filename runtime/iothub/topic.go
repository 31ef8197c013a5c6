package iothub

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind says which template of the dialect a topic name follows (section 0).
type Kind int

// Topic kinds. The comment gives the template; optional parts are in brackets.
const (
	KindTelemetry         Kind = iota + 1 // devices/{d}[/modules/{m}]/messages/events[/[bag[/]]]
	KindC2D                               // devices/{d}/messages/devicebound/{bag}
	KindInput                             // devices/{d}/modules/{m}/inputs/{input}/{bag}
	KindTwinGet                           // $iothub/twin/GET/?$rid={rid}
	KindTwinPatchReported                 // $iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version={n}]
	KindTwinResponse                      // $iothub/twin/res/{status}/?$rid={rid}[&$version={n}]
	KindTwinPatchDesired                  // $iothub/twin/PATCH/properties/desired/?$version={n}
	KindMethodRequest                     // $iothub/methods/POST/{name}/?$rid={rid}
	KindMethodResponse                    // $iothub/methods/res/{status}/?$rid={rid}
)

var kindNames = [...]string{
	KindTelemetry:         "telemetry",
	KindC2D:               "c2d",
	KindInput:             "input",
	KindTwinGet:           "twin-get",
	KindTwinPatchReported: "twin-patch-reported",
	KindTwinResponse:      "twin-response",
	KindTwinPatchDesired:  "twin-patch-desired",
	KindMethodRequest:     "method-request",
	KindMethodResponse:    "method-response",
}

// String returns a short lowercase name such as "twin-get", or "Kind(n)" for an unknown value.
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Topic is a parsed topic name. Which fields are set depends on Kind.
type Topic struct {
	Kind Kind
	// DeviceID and ModuleID identify the sender of telemetry or the receiver of C2D and input
	// messages. They are taken verbatim from the topic, never URL-decoded (ids may contain %).
	DeviceID string
	ModuleID string
	// Input is the module input name of a KindInput topic.
	Input string
	// Bag is the decoded property bag of telemetry, C2D and input topics; nil when empty.
	Bag Bag
	// RequestID is the $rid value, verbatim (not decoded), so it can be echoed byte for byte.
	RequestID string
	// Status is the status of twin and method responses.
	Status int
	// Version is the $version parameter when HasVersion is set.
	Version    int64
	HasVersion bool
	// Method is the method name of a KindMethodRequest topic, verbatim.
	Method string
}

// ParseTopic parses any topic name of the dialect, in either direction. It is tolerant of what
// the SDKs send (see the package documentation): the telemetry bag is everything after
// "messages/events/", raw '/' included; "$iothub" query strings are parsed as query strings,
// with $rid anywhere and other parameters ignored; GET and PATCH may be in any case.
//
// Errors wrap ErrUnknownTopic when no template matches and ErrMalformedTopic when a template
// matches but a part is invalid (empty id or name, missing or empty $rid, non-integer status,
// bad $version, bad bag); the message quotes the topic, truncated when long.
func ParseTopic(s string) (Topic, error) {
	var (
		t   Topic
		err error
	)
	switch {
	case len(s) > MaxTopicLength:
		err = fmt.Errorf("%w: %d bytes, longer than %d", ErrMalformedTopic, len(s), MaxTopicLength)
	case strings.HasPrefix(s, "devices/"):
		t, err = parseDeviceTopic(s[len("devices/"):])
	case strings.HasPrefix(s, "$iothub/"):
		t, err = parseIotHubTopic(s[len("$iothub/"):])
	default:
		err = ErrUnknownTopic
	}
	if err != nil {
		return Topic{}, fmt.Errorf("topic %q: %w", truncate(s), err)
	}
	return t, nil
}

// parseDeviceTopic parses what follows "devices/".
func parseDeviceTopic(rest string) (Topic, error) {
	deviceID, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, ErrUnknownTopic
	}
	var (
		t       Topic
		rawBag  string
		matched bool
	)
	t.DeviceID = deviceID
	if after, ok := strings.CutPrefix(rest, "modules/"); ok {
		t.ModuleID, rest, ok = strings.Cut(after, "/")
		if !ok {
			return Topic{}, ErrUnknownTopic
		}
		if rawBag, matched = cutOptionalTail(rest, "messages/events"); matched {
			t.Kind = KindTelemetry
		} else if after, ok := strings.CutPrefix(rest, "inputs/"); ok {
			// The bag may be absent ("inputs/{name}") and may contain raw '/'.
			t.Kind = KindInput
			t.Input, rawBag, _ = strings.Cut(after, "/")
			if t.Input == "" {
				return Topic{}, fmt.Errorf("%w: empty input name", ErrMalformedTopic)
			}
		} else {
			return Topic{}, ErrUnknownTopic
		}
		if t.ModuleID == "" {
			return Topic{}, fmt.Errorf("%w: empty module id", ErrMalformedTopic)
		}
	} else if rawBag, matched = cutOptionalTail(rest, "messages/events"); matched {
		t.Kind = KindTelemetry
	} else if rawBag, matched = cutOptionalTail(rest, "messages/devicebound"); matched {
		t.Kind = KindC2D
	} else {
		return Topic{}, ErrUnknownTopic
	}
	if t.DeviceID == "" {
		return Topic{}, fmt.Errorf("%w: empty device id", ErrMalformedTopic)
	}
	b, err := ParseBag(rawBag)
	if err != nil {
		return Topic{}, fmt.Errorf("%w: %w", ErrMalformedTopic, err)
	}
	t.Bag = b
	return t, nil
}

// cutOptionalTail matches s against prefix, optionally followed by "/" and anything, and
// returns that anything.
func cutOptionalTail(s, prefix string) (string, bool) {
	if s == prefix {
		return "", true
	}
	return strings.CutPrefix(s, prefix+"/")
}

// parseIotHubTopic parses what follows "$iothub/": a path, then an optional "/", then a query.
func parseIotHubTopic(rest string) (Topic, error) {
	path, query, _ := strings.Cut(rest, "?")
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	var t Topic
	switch {
	case len(segs) == 2 && segs[0] == "twin" && strings.EqualFold(segs[1], "GET"):
		t.Kind = KindTwinGet
	case len(segs) == 4 && segs[0] == "twin" && strings.EqualFold(segs[1], "PATCH") &&
		segs[2] == "properties" && segs[3] == "reported":
		t.Kind = KindTwinPatchReported
	case len(segs) == 4 && segs[0] == "twin" && strings.EqualFold(segs[1], "PATCH") &&
		segs[2] == "properties" && segs[3] == "desired":
		t.Kind = KindTwinPatchDesired
	case len(segs) == 3 && segs[0] == "twin" && segs[1] == "res":
		t.Kind = KindTwinResponse
	case len(segs) == 3 && segs[0] == "methods" && segs[1] == "POST":
		t.Kind = KindMethodRequest
		t.Method = segs[2]
		if t.Method == "" {
			return Topic{}, fmt.Errorf("%w: empty method name", ErrMalformedTopic)
		}
	case len(segs) == 3 && segs[0] == "methods" && segs[1] == "res":
		t.Kind = KindMethodResponse
	default:
		return Topic{}, ErrUnknownTopic
	}
	if t.Kind == KindTwinResponse || t.Kind == KindMethodResponse {
		status, err := strconv.ParseInt(segs[2], 10, 32)
		if err != nil {
			return Topic{}, fmt.Errorf("%w: status %q is not a 32-bit integer", ErrMalformedTopic, truncate(segs[2]))
		}
		t.Status = int(status)
	}
	q := parseQuery(query)
	if t.Kind != KindTwinPatchDesired {
		switch {
		case !q.hasRID:
			return Topic{}, fmt.Errorf("%w: missing $rid", ErrMalformedTopic)
		case q.rid == "":
			return Topic{}, fmt.Errorf("%w: empty $rid", ErrMalformedTopic)
		}
		t.RequestID = q.rid
	}
	switch t.Kind {
	case KindTwinPatchReported, KindTwinResponse, KindTwinPatchDesired:
		if !q.hasVersion {
			if t.Kind == KindTwinPatchDesired {
				return Topic{}, fmt.Errorf("%w: missing $version", ErrMalformedTopic)
			}
			break
		}
		v, err := strconv.ParseInt(q.version, 10, 64)
		if err != nil || v < 0 {
			return Topic{}, fmt.Errorf("%w: $version %q is not a non-negative integer", ErrMalformedTopic, truncate(q.version))
		}
		t.Version, t.HasVersion = v, true
	}
	return t, nil
}

// query holds the parameters of an "$iothub" query string that this package reads.
type query struct {
	rid, version       string
	hasRID, hasVersion bool
}

// parseQuery reads $rid and $version from a query string: items split on '&', then on the
// first '='; keys percent-decoded and matched case-insensitively (edgeHub matches $rid
// case-insensitively); the first occurrence wins; other parameters are ignored. The $rid value
// is kept verbatim so that it can be echoed byte for byte.
func parseQuery(q string) query {
	var out query
	for item := range strings.SplitSeq(q, "&") {
		// An item without '=' ("$rid") counts as present with an empty value.
		rawKey, value, _ := strings.Cut(item, "=")
		switch key := percentDecode(rawKey); {
		case strings.EqualFold(key, "$rid") && !out.hasRID:
			out.rid, out.hasRID = value, true
		case strings.EqualFold(key, "$version") && !out.hasVersion:
			out.version, out.hasVersion = percentDecode(value), true
		}
	}
	return out
}

// String returns the canonical topic name, built with the builders of this package, or ""
// for an unknown Kind. ParseTopic(t.String()) returns t for every t that ParseTopic returned,
// as long as the canonical form fits in MaxTopicLength (re-encoding a raw bag can triple it).
func (t Topic) String() string {
	switch t.Kind {
	case KindTelemetry:
		return TelemetryTopic(t.DeviceID, t.ModuleID, t.Bag)
	case KindC2D:
		return C2DTopic(t.DeviceID, t.Bag)
	case KindInput:
		return InputTopic(t.DeviceID, t.ModuleID, t.Input, t.Bag)
	case KindTwinGet:
		return TwinGetTopic(t.RequestID)
	case KindTwinPatchReported:
		return TwinPatchReportedTopic(t.RequestID) + t.versionParam()
	case KindTwinResponse:
		// Unlike TwinResponseTopic, keep an explicit "$version=0" so String round-trips.
		return TwinResponseTopic(t.Status, t.RequestID, 0) + t.versionParam()
	case KindTwinPatchDesired:
		return DesiredPatchTopic(t.Version)
	case KindMethodRequest:
		return MethodRequestTopic(t.Method, t.RequestID)
	case KindMethodResponse:
		return MethodResponseTopic(t.Status, t.RequestID)
	}
	return ""
}

func (t Topic) versionParam() string {
	if !t.HasVersion {
		return ""
	}
	return "&$version=" + strconv.FormatInt(t.Version, 10)
}
