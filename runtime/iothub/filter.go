package iothub

import (
	"fmt"
	"strings"
)

// Subscription filters accepted from clients (sections 0, 3, 4, 5.1, 6.1, 11).
const (
	TwinResponseFilter  = "$iothub/twin/res/#"
	DesiredPatchFilter  = "$iothub/twin/PATCH/properties/desired/#"
	MethodRequestFilter = "$iothub/methods/POST/#"
)

// Subscription is a parsed subscription filter.
type Subscription struct {
	// Kind is the kind of topic the filter receives: KindC2D, KindInput, KindTwinResponse,
	// KindTwinPatchDesired or KindMethodRequest.
	Kind Kind
	// DeviceID and ModuleID are set for KindC2D and KindInput filters, verbatim.
	DeviceID string
	ModuleID string
	// AnyDevice is set for "devices/+/messages/devicebound/#" (the embedded C SDK's C2D
	// filter); DeviceID is then empty and the subscriber's own identity applies.
	AnyDevice bool
}

// ParseFilter parses a SUBSCRIBE topic filter. It accepts exactly:
//
//	devices/{d}/messages/devicebound/#      KindC2D
//	devices/+/messages/devicebound/#        KindC2D, AnyDevice
//	devices/{d}/modules/{m}/inputs/#        KindInput (Python, Node)
//	devices/{d}/modules/{m}/#               KindInput (C, C#)
//	$iothub/twin/res/#                      KindTwinResponse
//	$iothub/twin/PATCH/properties/desired/# KindTwinPatchDesired
//	$iothub/methods/POST/#                  KindMethodRequest
//
// Anything else, including empty ids and ids containing the wildcards '+' or '#', fails with
// an error wrapping ErrUnknownTopic that quotes the filter.
func ParseFilter(filter string) (Subscription, error) {
	s, reason := parseFilter(filter)
	if reason != "" {
		return Subscription{}, fmt.Errorf("filter %q: %w: %s", truncate(filter), ErrUnknownTopic, reason)
	}
	return s, nil
}

func parseFilter(filter string) (Subscription, string) {
	switch filter {
	case TwinResponseFilter:
		return Subscription{Kind: KindTwinResponse}, ""
	case DesiredPatchFilter:
		return Subscription{Kind: KindTwinPatchDesired}, ""
	case MethodRequestFilter:
		return Subscription{Kind: KindMethodRequest}, ""
	}
	rest, ok := strings.CutPrefix(filter, "devices/")
	if !ok {
		return Subscription{}, "not a filter of the IoT Hub dialect"
	}
	deviceID, rest, _ := strings.Cut(rest, "/")
	if rest == "messages/devicebound/#" {
		if deviceID == "+" {
			return Subscription{Kind: KindC2D, AnyDevice: true}, ""
		}
		if reason := checkFilterID("device", deviceID); reason != "" {
			return Subscription{}, reason
		}
		return Subscription{Kind: KindC2D, DeviceID: deviceID}, ""
	}
	after, ok := strings.CutPrefix(rest, "modules/")
	if !ok {
		return Subscription{}, "not a filter of the IoT Hub dialect"
	}
	moduleID, rest, _ := strings.Cut(after, "/")
	if rest != "#" && rest != "inputs/#" {
		return Subscription{}, "not a filter of the IoT Hub dialect"
	}
	if reason := checkFilterID("device", deviceID); reason != "" {
		return Subscription{}, reason
	}
	if reason := checkFilterID("module", moduleID); reason != "" {
		return Subscription{}, reason
	}
	return Subscription{Kind: KindInput, DeviceID: deviceID, ModuleID: moduleID}, ""
}

func checkFilterID(what, id string) string {
	if id == "" {
		return "empty " + what + " id"
	}
	if strings.ContainsAny(id, "+#") {
		return what + " id contains an MQTT wildcard"
	}
	return ""
}

// C2DFilter returns "devices/{d}/messages/devicebound/#".
func C2DFilter(deviceID string) string {
	return "devices/" + deviceID + "/messages/devicebound/#"
}

// InputFilter returns "devices/{d}/modules/{m}/inputs/#".
func InputFilter(deviceID, moduleID string) string {
	return "devices/" + deviceID + "/modules/" + moduleID + "/inputs/#"
}

// Filter returns the canonical filter for s ("devices/{d}/modules/{m}/#" canonicalises to the
// ".../inputs/#" form), or "" for an unknown Kind.
func (s Subscription) Filter() string {
	switch s.Kind {
	case KindC2D:
		if s.AnyDevice {
			return C2DFilter("+")
		}
		return C2DFilter(s.DeviceID)
	case KindInput:
		return InputFilter(s.DeviceID, s.ModuleID)
	case KindTwinResponse:
		return TwinResponseFilter
	case KindTwinPatchDesired:
		return DesiredPatchFilter
	case KindMethodRequest:
		return MethodRequestFilter
	}
	return ""
}

// Matches reports whether a topic the hub publishes is delivered under this subscription.
// An AnyDevice C2D subscription matches the C2D topic of any device; the caller restricts it
// to the subscriber's own identity.
func (s Subscription) Matches(t Topic) bool {
	if s.Kind != t.Kind {
		return false
	}
	switch s.Kind {
	case KindC2D:
		return s.AnyDevice || s.DeviceID == t.DeviceID
	case KindInput:
		return s.DeviceID == t.DeviceID && s.ModuleID == t.ModuleID
	}
	return true
}
