package fakehub

import (
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Server is a local IoT Hub: the MQTT device endpoint, the identity registry, twins, D2C
// capture, C2D, direct methods, the service REST API and the test controls (doc.go tells the
// whole story). Its zero value is usable: Start fills in defaults. The exported fields are
// read by Start; do not change them while the server runs.
type Server struct {
	Hostname      string // IoT Hub host name in connection strings and SAS audiences; default "localhost"
	DataDir       string // registry/twins/certs persist here; "" = a temp dir removed by Close
	MQTTAddr      string // MQTT over TLS; default "127.0.0.1:0"
	PlainMQTTAddr string // optional plain MQTT listener; "" = off
	HTTPAddr      string // HTTPS service API; default "127.0.0.1:0"
	PlainHTTPAddr string // optional plain HTTP service API; "" = off
	Logger        *slog.Logger
	Now           func() time.Time

	// Lifecycle, guarded by runMu (Start and Close only). Lock order: runMu, then mu.
	runMu     sync.Mutex
	running   bool
	dir       string // DataDir, or the temp dir in use
	tempDir   string // removed by Close
	pki       pki
	clientTLS *tls.Config
	broker    atomic.Pointer[mqtt.Server] // nil when not running; read by API calls racing with Close
	mqttLns   []*listener
	httpSrvs  []*http.Server
	done      chan struct{} // closed by Close: wakes method waiters, long polls, delays
	wg        sync.WaitGroup
	log       *slog.Logger

	// Bound addresses, written by Start (under runMu) and published in pub for the accessors.
	addrMQTT, addrPlainMQTT, addrHTTP, addrPlainHTTP string
	pub                                              atomic.Pointer[endpoints]

	// mu guards the registry, the twins and all connection state below. It is never held
	// while writing to a network connection or calling a mochi method that takes the
	// client's lock (Client.Stop, NextPacketID, WritePacket).
	mu       sync.Mutex
	db       *bbolt.DB // nil when not running
	policies map[string]sas.Keys
	devices  map[string]*Device
	modules  map[string]*Module         // identity key "{d}/{m}"
	twins    map[string]*twinRecord     // identity key
	configs  map[string]json.RawMessage // desired documents waiting for their module identity
	authed   map[*mqtt.Client]*conn     // authenticated, CONNACK not yet sent
	conns    map[*mqtt.Client]*conn     // established connections
	online   map[string]*conn           // identity key -> its current connection
	c2d      map[string][]*c2dEntry     // device id -> pending C2D messages, oldest first
	calls    map[string]*methodCall     // method $rid -> waiting invocation
	changed  chan struct{}              // closed and replaced when connections or subscriptions change

	// Test controls (faults.go), usable before Start.
	cut, refuseAuth, throttle atomic.Bool
	delay                     atomic.Int64 // time.Duration

	ridSeq  atomic.Uint64 // method request ids
	connSeq atomic.Uint64 // Connection.ID

	evOnce sync.Once
	events *eventLog
}

// Device is a device identity as the registry REST API shows it (azure-iot-sdk-csharp
// Device.cs field names). ConnectionState is "Connected" or "Disconnected", Status "enabled"
// or "disabled"; never-set times marshal as "0001-01-01T00:00:00Z", as IoT Hub renders them.
// CloudToDeviceMessageCount is the number of pending C2D messages.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	Etag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status"`
	StatusReason               string         `json:"statusReason,omitempty"`
	ConnectionStateUpdatedTime time.Time      `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          time.Time      `json:"statusUpdatedTime"`
	LastActivityTime           time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
	DeviceScope                string         `json:"deviceScope,omitempty"`
	ParentScopes               []string       `json:"parentScopes,omitempty"`
}

// Authentication is an identity's authentication mechanism. The registry always renders both
// sub-objects, as IoT Hub does; only the one matching Type is meaningful.
type Authentication struct {
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
	Type           string          `json:"type"` // "sas" | "selfSigned" | "certificateAuthority" | "none"
}

// SymmetricKey is a pair of base64 symmetric keys.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint holds the SHA-1 (or SHA-256) hex thumbprints of a selfSigned identity's certificates.
type X509Thumbprint struct {
	PrimaryThumbprint   string `json:"primaryThumbprint"`
	SecondaryThumbprint string `json:"secondaryThumbprint"`
}

// Capabilities are a device's capabilities; IoTEdge marks an IoT Edge device.
type Capabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// Module is a module identity as the registry REST API shows it (Module.cs). Modules the
// edge runtime creates carry ManagedBy "IotEdge".
type Module struct {
	ModuleID                   string         `json:"moduleId"`
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	Etag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	ConnectionStateUpdatedTime time.Time      `json:"connectionStateUpdatedTime"`
	LastActivityTime           time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	ManagedBy                  string         `json:"managedBy,omitempty"`
}

// Twin is the service-facing twin (REST GET /twins/{d}, protocol notes 5.2). Etag derives
// from Version; DeviceEtag is the identity's etag. Device twins carry Status, Capabilities and
// the scopes; module twins carry ModuleID.
type Twin struct {
	DeviceID                  string         `json:"deviceId"`
	ModuleID                  string         `json:"moduleId,omitempty"`
	Etag                      string         `json:"etag"`
	DeviceEtag                string         `json:"deviceEtag,omitempty"`
	Status                    string         `json:"status,omitempty"`
	StatusReason              string         `json:"statusReason,omitempty"`
	StatusUpdateTime          time.Time      `json:"statusUpdateTime"`
	ConnectionState           string         `json:"connectionState"`
	LastActivityTime          time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount int            `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string         `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint `json:"x509Thumbprint"`
	ModelID                   string         `json:"modelId,omitempty"`
	Version                   int64          `json:"version"`
	Tags                      map[string]any `json:"tags,omitempty"`
	Properties                TwinProperties `json:"properties"`
	Capabilities              *Capabilities  `json:"capabilities,omitempty"`
	DeviceScope               string         `json:"deviceScope,omitempty"`
	ParentScopes              []string       `json:"parentScopes,omitempty"`
}

// TwinProperties holds the desired and reported sections, each with "$metadata" and
// "$version" as twin.Twin.Properties renders them.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// TwinPatch is the body of a service PATCH /twins/{d}: a JSON merge patch of the tags and of
// the desired properties (null deletes). A nil map leaves that section alone.
type TwinPatch struct {
	Tags       map[string]any `json:"tags,omitempty"`
	Properties struct {
		Desired map[string]any `json:"desired,omitempty"`
	} `json:"properties"`
}

// Event is a captured device-to-cloud message. Properties are the application properties;
// SystemProperties are IoT Hub's stamps and the client's system properties under their
// service names (doc.go, "MQTT device endpoint"). Body marshals as base64.
type Event struct {
	Seq              int64             `json:"seq"`
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId,omitempty"`
	Body             []byte            `json:"body"`
	Properties       map[string]string `json:"properties"`
	SystemProperties map[string]string `json:"systemProperties"`
	EnqueuedTime     time.Time         `json:"enqueuedTime"`
}

// C2DMessage is a cloud-to-device message for SendC2D. Empty fields are left out of the
// delivered property bag; MessageID defaults to a new UUID; Ack is "", "none", "positive",
// "negative" or "full"; a non-zero ExpiryTime drops the message if it is still pending then.
type C2DMessage struct {
	Body                                                        []byte
	Properties                                                  map[string]string
	MessageID, CorrelationID, ContentType, ContentEncoding, Ack string
	ExpiryTime                                                  time.Time
}

// MethodRequest is the body of POST /twins/{d}/methods (protocol notes 6.2). Zero timeouts
// mean the defaults (30 s response, 0 s connect).
type MethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// MethodResponse is a device's answer: the status it chose and its JSON payload (null when
// it sent none).
type MethodResponse struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// Connection is one physical MQTT connection and the identities it carries ("{d}" or
// "{d}/{m}"; one per connection in the plain IoT Hub dialect).
type Connection struct {
	ID          string    `json:"id"`
	RemoteAddr  string    `json:"remoteAddr"`
	ClientID    string    `json:"clientId"`
	Identities  []string  `json:"identities"`
	TLS         bool      `json:"tls"`
	ConnectedAt time.Time `json:"connectedAt"`
}
