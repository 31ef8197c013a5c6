// Package iothub implements the Azure IoT Hub MQTT dialect that Outpost speaks on both sides
// (edge hub, fake hub, module SDK): topic names and subscription filters, property bags,
// message system properties, the CONNECT client identifier and username, identifier rules,
// limits and the status codes used on twin and method topics.
//
// The package is pure: no I/O, no clock, standard library only. Every parser is tolerant of
// what the official SDKs actually send, and every builder emits the one canonical form that
// every SDK parser accepts. The wire rules come from docs/iothub-mqtt-protocol.md (sections 0,
// 1.2, 1.3, 2, 3, 4, 5.1, 6.1, 8 and 11).
//
// # Inbound: be liberal
//
//   - [ParseTopic] takes everything after "messages/events/" as the property bag, raw '/'
//     included (the C SDK sends "%24.ct=application/json" unencoded), and strips one trailing
//     '/' (C# and Node append one).
//   - [ParseBag] percent-decodes keys and values but keeps '+' literal, and keeps a '%' that
//     does not start a valid escape (the C SDK does not encode by default).
//   - "$iothub/..." query strings are parsed as real query strings: "$rid" may appear anywhere
//     and unknown parameters are ignored. The $rid value is kept verbatim, so that echoing it
//     back produces exactly the bytes the client sent.
//   - GET and PATCH are accepted in any case; POST and every other literal are case-sensitive.
//   - [ParseUsername] follows edgeHub's MqttUsernameParser, including the legacy forms.
//
// # Outbound: be exact
//
// The C and C# SDKs parse hub-originated topics positionally (split on '/'), so:
//
//   - request/response topics are exactly "{prefix}/?$rid={rid}" with $rid first
//     ([TwinResponseTopic], [MethodRequestTopic]); [ValidateRequestID] and [ValidateMethodName]
//     say which values keep those parsers working;
//   - C2D topics are "devices/{d}/messages/devicebound/{bag}" and module input topics are
//     "devices/{d}/modules/{m}/inputs/{input}/{bag}"; the caller supplies a non-empty bag
//     ("$.to" for C2D, "$.cdid"/"$.cmid" for inputs), which [Bag.Encode] fully
//     percent-encodes, so a bag never contains a raw '/', '=', '&' or '$'.
//
// # Identifiers
//
// Device and module ids are never URL-decoded by this package (IoT Hub allows '%' in ids).
// Parsers only require them to be non-empty; use [ValidateDeviceID] and [ValidateModuleID]
// where the registry rules matter.
//
// # The on-behalf-of extension
//
// The obo*.go files hold Outpost's extension of the dialect with which the edge hub carries
// every local client over one connection to IoT Hub: "$edgehub/{I}/..." topics
// ([ParseOBOTopic], [OBOTopic]) and their bodies ([OBOIdentity], [OBOCredentials],
// [OBOAttachment], [OBOError]). obo.go documents the topics; docs/upstream.md the protocol.
package iothub
