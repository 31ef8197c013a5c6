package twin

import "strconv"

// IoT Hub's twin limits (iothub-mqtt-protocol.md §5.4, §8). edgeHub's
// ReportedPropertiesValidator carries the same constants, "taken from IoTHub".
const (
	// MaxDesiredBytes bounds the compact JSON encoding of the desired properties.
	MaxDesiredBytes = 32 * 1024
	// MaxReportedBytes bounds the compact JSON encoding of the reported properties.
	MaxReportedBytes = 32 * 1024
	// MaxTagsBytes bounds the compact JSON encoding of the tags.
	MaxTagsBytes = 8 * 1024
	// MaxDepth is the deepest level at which an object or array may sit; see
	// the package documentation for how levels are counted.
	MaxDepth = 10
	// MaxKeyBytes bounds a property name, in UTF-8 bytes.
	MaxKeyBytes = 1024
	// MaxStringBytes bounds a string value, in UTF-8 bytes.
	MaxStringBytes = 4096
	// MaxInt is the largest integer value, 2^52-1.
	MaxInt = 4503599627370495
	// MinInt is the smallest integer value, -2^52.
	MinInt = -4503599627370496
)

// Section names one of the three property collections of a twin.
type Section int

// The twin sections. The zero value is not a section.
const (
	Desired Section = iota + 1
	Reported
	Tags
)

// String returns "desired", "reported" or "tags".
func (s Section) String() string {
	switch s {
	case Desired:
		return "desired"
	case Reported:
		return "reported"
	case Tags:
		return "tags"
	}
	return "section(" + strconv.Itoa(int(s)) + ")"
}

// MaxBytes returns the size limit of the section, or 0 for an unknown section.
func (s Section) MaxBytes() int {
	switch s {
	case Desired:
		return MaxDesiredBytes
	case Reported:
		return MaxReportedBytes
	case Tags:
		return MaxTagsBytes
	}
	return 0
}
