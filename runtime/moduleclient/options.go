package moduleclient

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultTokenTTL is the lifetime of the SAS tokens the client signs. The client
	// reconnects with a fresh token after RenewFraction of it.
	DefaultTokenTTL = time.Hour
	// DefaultKeepAlive is the MQTT keep-alive. The SDKs use 60 s (Python), 180 s (Node),
	// 230 s (Java), 240 s (C) and 300 s (C#, pinging every 75 s), see protocol notes 10. We
	// take Python's 60 s: a dead link (a NAT that forgot us, a hub that vanished without a FIN)
	// is noticed within about a minute instead of five, at the price of one 2-byte PINGREQ a
	// minute when idle, and it stays far below the 29-minute maximum IoT Hub accepts.
	DefaultKeepAlive = 60 * time.Second
	// DefaultPort is MQTT over TLS, the only MQTT port IoT Hub and edgeHub offer.
	DefaultPort = 8883
	// DefaultReconnectMin and DefaultReconnectMax bound the reconnect back-off.
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = 60 * time.Second
	// RenewFraction is the share of the token lifetime after which the client renews it.
	RenewFraction = 0.8
)

// Internal sizes and timeouts. They are constants rather than options because nobody has
// needed to tune them; each says why it has its value.
const (
	// connectTimeout bounds the TCP, TLS and MQTT handshakes of one attempt.
	connectTimeout = 30 * time.Second
	// subscribeTimeout bounds the wait for a SUBACK.
	subscribeTimeout = 30 * time.Second
	// drainTimeout bounds how long a token renewal waits for in-flight publishes to be
	// acknowledged before it closes the old connection; anything still unacknowledged is
	// sent again on the new connection (at-least-once).
	drainTimeout = 5 * time.Second
	// disconnectQuiesce is how long paho may spend sending DISCONNECT.
	disconnectQuiesce = 250 // milliseconds
	// methodResponseTimeout bounds the PUBACK wait of a method response; the caller of the
	// method gives up after at most 300 s anyway.
	methodResponseTimeout = 30 * time.Second
	// messageQueueSize bounds the C2D, input and desired-patch queues. The hub never has more
	// than a few dozen messages in flight per client (IoT Hub: 50 pending C2D per device).
	messageQueueSize = 128
	// methodQueueSize and methodWorkers bound direct method calls waiting and running.
	methodQueueSize = 64
	methodWorkers   = 4
	// eventQueueSize bounds pending OnConnectionChange notifications.
	eventQueueSize = 16
)

// Options configure a Client. The zero value is usable: TLS against the system roots, port
// 8883, 1 h tokens, 60 s keep-alive, 1 s..60 s reconnect back-off, no logging.
type Options struct {
	// CAFile is a PEM bundle of the roots to trust instead of the system roots, e.g. the edge
	// CA that signed edgeHub's certificate (EdgeModuleCACertificateFile). It is read by New.
	CAFile string
	// TLSConfig, when set, is used as is (cloned) instead of CAFile; ServerName defaults to
	// the host dialled. It is the way to present an X.509 client certificate.
	TLSConfig *tls.Config
	// TokenTTL is the lifetime of each SAS token; default DefaultTokenTTL. The client
	// reconnects with a new token after RenewFraction of it.
	TokenTTL time.Duration
	// KeepAlive is the MQTT keep-alive; default DefaultKeepAlive.
	KeepAlive time.Duration
	// Port is the TCP port to dial; default DefaultPort.
	Port int
	// Logger receives diagnostics; default discards.
	Logger *slog.Logger
	// Now is the clock used to sign tokens; default time.Now.
	Now func() time.Time
	// ReconnectMin and ReconnectMax bound the capped exponential back-off (with jitter)
	// between reconnection attempts; defaults DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// ModelID is an optional IoT Plug and Play model id (DTMI), sent as model-id in the
	// CONNECT username.
	ModelID string
	// Plain makes the client speak MQTT without TLS. It exists for tests against a local
	// broker only: IoT Hub and edgeHub accept TLS only, and a SAS token sent in clear text is
	// a credential handed to anyone on the path.
	Plain bool
}

// withDefaults returns o with zero fields replaced by their defaults.
func (o Options) withDefaults() Options {
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = DefaultReconnectMin
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = DefaultReconnectMax
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	return o
}
