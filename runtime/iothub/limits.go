package iothub

// Limits from section 8.
const (
	// MaxMessageSize caps a D2C message as measured by Message.Size (256 KB).
	MaxMessageSize = 256 * 1024
	// MaxC2DMessageSize caps a cloud-to-device message (64 KB).
	MaxC2DMessageSize = 64 * 1024
	// MaxMethodPayloadSize caps a direct method request or response payload (128 KB).
	MaxMethodPayloadSize = 128 * 1024
	// MaxTopicLength is the MQTT limit on a topic name; property bags ride in the topic.
	MaxTopicLength = 65535
	// MaxSubscriptionsPerClient is IoT Hub's "five topics at a time".
	MaxSubscriptionsPerClient = 5
	// MaxIDLength caps device and module ids.
	MaxIDLength = 128
	// MaxMethodNameLength caps direct method names. IoT Hub documents no limit; 128 matches the
	// other identifiers and keeps method topics short.
	MaxMethodNameLength = 128
	// MaxRequestIDLength caps the $rid values this package considers safe to emit.
	MaxRequestIDLength = 128
)

// Status codes used on twin and method response topics and by the REST surfaces.
const (
	StatusOK              = 200
	StatusNoContent       = 204
	StatusBadRequest      = 400
	StatusNotFound        = 404
	StatusTooManyRequests = 429
	StatusServerError     = 500
	StatusGatewayTimeout  = 504
)
