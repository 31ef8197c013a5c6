package route

import "strings"

// Message is what a route sees: where the message came from, its body and its two
// property bags. The router only reads it.
type Message struct {
	// Source is the message source: TelemetrySource(), ModuleSource(m, o) or
	// TwinChangeSource() (SourceOf derives it from system properties). A missing
	// trailing '/' is tolerated.
	Source string
	// Body is the raw payload; $body queries read it only when contentType is
	// application/json and contentEncoding is utf-8, utf-16 or utf-32.
	Body []byte
	// App holds the application properties. Names are matched case-insensitively.
	App map[string]string
	// System holds the system properties by routing name (messageId, correlationId,
	// userId, to, ack, contentType, contentEncoding, connectionDeviceId,
	// connectionModuleId, connectionDeviceGenerationId, connectionAuthMethod, outputName,
	// inputName, enqueuedTime, messageSchema, creationTime, iothub-interface-id, modelId,
	// dt-subject, messageType, ...). Names are matched case-insensitively.
	System map[string]string
}

// Well-known system property names used by the router itself.
const (
	SysContentType        = "contentType"
	SysContentEncoding    = "contentEncoding"
	SysConnectionModuleID = "connectionModuleId"
	SysOutputName         = "outputName"
	SysMessageType        = "messageType"
	// TwinChangeMessageType is the messageType value that marks a twin change notification.
	TwinChangeMessageType = "twinChangeNotification"
)

const (
	telemetrySource  = "/messages/"
	twinChangeSource = "/twinChangeNotifications/"
)

// TelemetrySource returns "/messages/", the source of device-to-cloud telemetry from a
// leaf device (a client without a module id).
func TelemetrySource() string { return telemetrySource }

// ModuleSource returns "/messages/modules/{module}/outputs/{output}/", or
// "/messages/modules/{module}/" when output is "".
func ModuleSource(module, output string) string {
	if output == "" {
		return "/messages/modules/" + module + "/"
	}
	return "/messages/modules/" + module + "/outputs/" + output + "/"
}

// TwinChangeSource returns "/twinChangeNotifications/", the source of reported-property
// change notifications.
func TwinChangeSource() string { return twinChangeSource }

// SourceOf derives a message's source from its system properties the way edgeHub does
// (RoutingMessageConverter.cs): messageType=twinChangeNotification gives the twin change
// source; otherwise connectionModuleId (plus outputName when present) gives a module
// source; otherwise telemetry.
func SourceOf(system map[string]string) string {
	if mt, ok := lookupFold(system, SysMessageType); ok && strings.EqualFold(mt, TwinChangeMessageType) {
		return twinChangeSource
	}
	if module, ok := lookupFold(system, SysConnectionModuleID); ok {
		output, _ := lookupFold(system, SysOutputName)
		return ModuleSource(module, output)
	}
	return telemetrySource
}

// normaliseSource applies Azure's source normalisation (CustomMessageSource.Create and
// BaseMessageSource): trim spaces, drop trailing '*'s, drop trailing '/'s, append one '/'.
func normaliseSource(path string) string {
	s := strings.TrimSpace(path)
	s = strings.TrimRight(s, "*")
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	return s + "/"
}

// sourceMatches reports whether a message source falls under a (normalised) route
// source: a case-insensitive prefix match, made segment-safe by the trailing '/' on both
// sides (route /messages/modules/m/ does not match module m1). The message source gets
// its single trailing '/' virtually, without allocating.
func sourceMatches(msgSource, routeSource string) bool {
	ms := strings.TrimRight(strings.TrimSpace(msgSource), "/")
	switch {
	case len(routeSource) <= len(ms):
		return strings.EqualFold(ms[:len(routeSource)], routeSource)
	case len(routeSource) == len(ms)+1:
		return strings.EqualFold(ms, routeSource[:len(ms)])
	}
	return false
}

// isTwinChange reports whether a message source is the twin change notification source.
func isTwinChange(msgSource string) bool {
	return strings.EqualFold(strings.TrimRight(strings.TrimSpace(msgSource), "/")+"/", twinChangeSource)
}

// lookupFold finds name in m case-insensitively (Azure uses OrdinalIgnoreCase
// dictionaries). An exact match wins; among several keys differing only in case the
// smallest key wins, so the result never depends on map iteration order.
func lookupFold(m map[string]string, name string) (string, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	var bestK, bestV string
	found := false
	for k, v := range m {
		if strings.EqualFold(k, name) && (!found || k < bestK) {
			bestK, bestV, found = k, v, true
		}
	}
	return bestV, found
}
