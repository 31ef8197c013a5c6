package iothub

import "strconv"

// Topic builders. They emit the canonical forms of section 11 ("Outbound topics") that every
// SDK parser accepts. They do not validate: ids, names and request ids are written verbatim,
// so check them first with ValidateDeviceID, ValidateModuleID, ValidateMethodName and
// ValidateRequestID where they come from outside. Ids must not contain '/'.

// TelemetryTopic returns "devices/{d}/messages/events/{bag}", or
// "devices/{d}/modules/{m}/messages/events/{bag}" when moduleID is not empty. Put a module
// output name in the bag as "$.on" (SysOutputName).
func TelemetryTopic(deviceID, moduleID string, b Bag) string {
	return identityPrefix(deviceID, moduleID) + "/messages/events/" + b.Encode()
}

// C2DTopic returns "devices/{d}/messages/devicebound/{bag}", always with the slash after
// "devicebound" (the C SDK skips exactly that many characters). The caller supplies the bag
// and must make it non-empty: C# v1 disconnects when the bag segment is missing, so include at
// least "$.to" (see C2DTo) and "$.mid".
func C2DTopic(deviceID string, b Bag) string {
	return "devices/" + deviceID + "/messages/devicebound/" + b.Encode()
}

// C2DTo returns the value IoT Hub puts in a C2D message's "$.to" property:
// "/devices/{d}/messages/devicebound".
func C2DTo(deviceID string) string {
	return "/devices/" + deviceID + "/messages/devicebound"
}

// InputTopic returns "devices/{d}/modules/{m}/inputs/{input}/{bag}", always with the slash
// after the input name (the C SDK needs it; C#, Python and Node read the bag as segment 6).
// The caller supplies the bag, which always carries "$.cdid" and, when the sender is a module,
// "$.cmid".
func InputTopic(deviceID, moduleID, input string, b Bag) string {
	return "devices/" + deviceID + "/modules/" + moduleID + "/inputs/" + input + "/" + b.Encode()
}

// TwinGetTopic returns "$iothub/twin/GET/?$rid={rid}".
func TwinGetTopic(rid string) string {
	return "$iothub/twin/GET/?$rid=" + rid
}

// TwinPatchReportedTopic returns "$iothub/twin/PATCH/properties/reported/?$rid={rid}".
func TwinPatchReportedTopic(rid string) string {
	return "$iothub/twin/PATCH/properties/reported/?$rid=" + rid
}

// TwinResponseTopic returns "$iothub/twin/res/{status}/?$rid={rid}", followed by
// "&$version={n}" only when version > 0 (IoT Hub adds the new reported version to 204
// answers). $rid always comes first: the C SDK requires token 4 to start with "?$rid=".
func TwinResponseTopic(status int, rid string, version int64) string {
	s := "$iothub/twin/res/" + strconv.Itoa(status) + "/?$rid=" + rid
	if version > 0 {
		s += "&$version=" + strconv.FormatInt(version, 10)
	}
	return s
}

// DesiredPatchTopic returns "$iothub/twin/PATCH/properties/desired/?$version={n}" (uppercase
// PATCH: the C SDK compares it case-sensitively).
func DesiredPatchTopic(version int64) string {
	return "$iothub/twin/PATCH/properties/desired/?$version=" + strconv.FormatInt(version, 10)
}

// MethodRequestTopic returns exactly "$iothub/methods/POST/{name}/?$rid={rid}" with no other
// parameter: C# v1 reads the name as token 3 and the rid as token 4 minus its first 6 bytes.
func MethodRequestTopic(method, rid string) string {
	return "$iothub/methods/POST/" + method + "/?$rid=" + rid
}

// MethodResponseTopic returns "$iothub/methods/res/{status}/?$rid={rid}".
func MethodResponseTopic(status int, rid string) string {
	return "$iothub/methods/res/" + strconv.Itoa(status) + "/?$rid=" + rid
}

func identityPrefix(deviceID, moduleID string) string {
	if moduleID == "" {
		return "devices/" + deviceID
	}
	return "devices/" + deviceID + "/modules/" + moduleID
}
