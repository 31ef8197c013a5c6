package iothub

import (
	"slices"
	"strings"
)

// Message is a telemetry, C2D or module input message split into its body, its application
// properties and its system properties (section 2.2).
type Message struct {
	Body []byte
	// Properties holds the application properties.
	Properties map[string]string
	// System holds the system properties, keyed by their wire name without "$."
	// (SysMessageID, ...), plus the two system keys that have no "$." prefix on the wire:
	// SysAck ("iothub-ack") and SysOperation ("iothub-operation").
	System map[string]string
}

// Wire names of the system properties, as keys of Message.System. On the wire all but SysAck
// and SysOperation are prefixed with "$." (encoded "%24.").
const (
	SysMessageID       = "mid"
	SysCorrelationID   = "cid"
	SysUserID          = "uid"
	SysTo              = "to"
	SysExpiry          = "exp"
	SysContentType     = "ct"
	SysContentEncoding = "ce"
	SysCreationTime    = "ctime"
	SysOutputName      = "on"
	SysConnDeviceID    = "cdid"
	SysConnModuleID    = "cmid"
	SysSchema          = "schema"
	SysInterfaceID     = "ifid"
	SysComponent       = "sub"
	SysDiagID          = "diagid"
	SysDiagContext     = "diagctx"
	SysAck             = "iothub-ack"
	SysOperation       = "iothub-operation"
)

// SystemPrefix marks a system property key on the wire (after percent-decoding).
const SystemPrefix = "$."

// systemOrder is the order in which Message.Bag writes the known system properties. It follows
// the table in section 2.2; unknown system properties follow, sorted.
var systemOrder = []string{
	SysMessageID, SysCorrelationID, SysUserID, SysTo, SysExpiry, SysContentType,
	SysContentEncoding, SysCreationTime, SysOutputName, SysConnDeviceID, SysConnModuleID,
	SysSchema, SysInterfaceID, SysComponent, SysDiagID, SysDiagContext, SysAck, SysOperation,
}

// systemWire maps systemOrder's names to their wire keys (systemWireKey).
var systemWire = func() map[string]string {
	wire := make(map[string]string, len(systemOrder))
	for _, name := range systemOrder {
		wire[name] = systemWireKey(name)
	}
	return wire
}()

// routingNames maps wire names to the names the routing query language uses (the
// $-properties of edgeHub's SystemProperties).
var routingNames = map[string]string{
	SysMessageID:       "messageId",
	SysCorrelationID:   "correlationId",
	SysUserID:          "userId",
	SysTo:              "to",
	SysExpiry:          "absoluteExpiryTime",
	SysContentType:     "contentType",
	SysContentEncoding: "contentEncoding",
	SysCreationTime:    "creationTime",
	SysOutputName:      "outputName",
	SysConnDeviceID:    "connectionDeviceId",
	SysConnModuleID:    "connectionModuleId",
	SysSchema:          "messageSchema",
	SysInterfaceID:     "iothub-interface-id",
	SysComponent:       "dt-subject",
	SysAck:             "ack",
	SysOperation:       "iothub-operation",
}

// RoutingName returns the routing-language name of a system property given its wire name
// (a Message.System key), e.g. "mid" -> "messageId". It reports false for names without one,
// including the tracing keys "diagid" and "diagctx".
func RoutingName(wire string) (string, bool) {
	n, ok := routingNames[wire]
	return n, ok
}

// isSystemKey reports whether a decoded bag key is a system property and returns its
// Message.System name.
func isSystemKey(key string) (string, bool) {
	if name, ok := strings.CutPrefix(key, SystemPrefix); ok {
		return name, true
	}
	if key == SysAck || key == SysOperation {
		return key, true
	}
	return "", false
}

// MessageFromBag splits a decoded property bag into a Message. Keys starting with "$." (known
// or not) and the keys "iothub-ack" and "iothub-operation" become system properties, the rest
// application properties. A Null value becomes "". When a key repeats, the first one wins
// (as with Bag.Get). Both maps are always non-nil.
func MessageFromBag(body []byte, b Bag) Message {
	m := Message{Body: body, Properties: map[string]string{}, System: map[string]string{}}
	for _, p := range b {
		dst, name := m.Properties, p.Key
		if sys, ok := isSystemKey(p.Key); ok {
			dst, name = m.System, sys
		}
		if _, dup := dst[name]; dup {
			continue
		}
		dst[name] = p.Value
		if p.Null {
			dst[name] = ""
		}
	}
	return m
}

// Bag returns the message's properties as a bag ready for Encode: system properties first, in
// the order mid, cid, uid, to, exp, ct, ce, ctime, on, cdid, cmid, schema, ifid, sub, diagid,
// diagctx, iothub-ack, iothub-operation, then unknown system properties sorted by name, then
// application properties sorted by key. System names get their "$." prefix back, except
// iothub-ack and iothub-operation. An application property whose key would read back as a
// system property ("$.x", "iothub-ack") is still written; MessageFromBag will then classify it
// as system, as IoT Hub does.
func (m Message) Bag() Bag {
	b := make(Bag, 0, len(m.System)+len(m.Properties))
	for _, name := range systemOrder {
		if v, ok := m.System[name]; ok {
			b = append(b, Property{Key: systemWire[name], Value: v})
		}
	}
	if len(b) < len(m.System) { // unknown system properties, sorted
		from := len(b)
		for name, v := range m.System {
			if _, known := systemWire[name]; !known {
				b = append(b, Property{Key: systemWireKey(name), Value: v})
			}
		}
		slices.SortFunc(b[from:], byKey)
	}
	from := len(b)
	for k, v := range m.Properties {
		b = append(b, Property{Key: k, Value: v})
	}
	slices.SortFunc(b[from:], byKey)
	return b
}

func byKey(a, b Property) int { return strings.Compare(a.Key, b.Key) }

func systemWireKey(name string) string {
	if name == SysAck || name == SysOperation {
		return name
	}
	return SystemPrefix + name
}

// Size is the message size as IoT Hub accounts it against MaxMessageSize (section 8): the
// body, plus the system property values, plus the application property names and values.
func (m Message) Size() int {
	n := len(m.Body)
	for _, v := range m.System {
		n += len(v)
	}
	for k, v := range m.Properties {
		n += len(k) + len(v)
	}
	return n
}
