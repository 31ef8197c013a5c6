// Package twin implements IoT Hub device and module twins: the document, JSON
// merge-patch, the $version rules and IoT Hub's limits. The fake hub, the edge
// hub and the module SDK share it, so all three agree byte for byte on what a
// twin looks like and which patches are rejected.
//
// # Documents and patches
//
// Sections (desired, reported, tags) are map[string]any trees of the types
// DecodePatch produces: map[string]any, []any, string, bool, json.Number and
// nil. A patch is applied with Merge (RFC 7386: null deletes, objects merge,
// everything else, arrays included, replaces); Diff computes the patch
// between two documents and is what edgeHub sends a client after a resync.
//
// # Versions
//
// A new twin has desired and reported $version 1 and whole-twin version 1.
// Every successful write to a section adds exactly 1 to that section's
// version (tags have none) and 1 to Twin.Version; a rejected write changes
// nothing (iothub-mqtt-protocol.md §5.3).
//
// # Limits and how depth is counted
//
// Validate enforces §5.4 and edgeHub's ReportedPropertiesValidator
// (edge-runtime-behaviour.md F.6). Depth counts levels of the property
// path: a top-level property is at level 1, a member of its object value at
// level 2, an array element one level below its array. An object or array
// may sit at level MaxDepth (10) at most; a scalar may sit inside a level-10
// object, i.e. at level 11. This is edgeHub's rule (the section root is its
// depth 0, and only objects and arrays are checked against 10), and it
// matches IoT Hub's "JSON objects can have a maximum depth of 10". So
//
//	{"l1":{"l2":...{"l10":{"l11":1}}}}   is accepted
//	{"l1":{"l2":...{"l10":{"l11":{}}}}}  is rejected: property "l1.l2.....l11" is nested 11 levels deep
//
// Sizes are measured the edgeHub way: the byte length of the compact UTF-8
// JSON encoding (Size), not IoT Hub's "key plus value length" estimate.
//
// # Wire forms
//
// Twin.DeviceJSON is the device GET body, DesiredNotification the desired
// patch notification body, Twin.Properties the service-facing "properties"
// object with "$metadata". Encodings are compact with object keys in byte
// order, and "$version" last where present.
//
// # Persistence
//
// A Twin round-trips through encoding/json unchanged (Twin.UnmarshalJSON
// decodes numbers as json.Number; metadata times are stored at millisecond
// precision in UTC). The JSON form is:
//
//	{"desired":{...},"desiredVersion":n,"reported":{...},"reportedVersion":m,
//	 "tags":{...},"version":v,
//	 "metadata":{"desired":NODE,"reported":NODE}}
//	NODE = {"lastUpdated":RFC3339,"lastUpdatedVersion":n?,"children":{"key":NODE,...}?}
package twin
