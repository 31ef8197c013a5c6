package upstream

import (
	"crypto/tls"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultPort is MQTT over TLS, IoT Hub's only MQTT port.
	DefaultPort = 8883
	// DefaultKeepAlive is the MQTT keep-alive. A link that dies silently (no FIN: a NAT that
	// forgot us, a cable pulled upstream) is noticed within about 1.75 × KeepAlive (the ping
	// goes out after KeepAlive of silence, its answer is awaited KeepAlive/2, checks run every
	// KeepAlive/4), so about 17 s; a closed socket or a failed write is noticed at once. The
	// module SDK uses 60 s; the edge hub's link carries every client and must come back
	// within seconds (edge-runtime-behaviour.md F.3), and one 2-byte ping every 10 s is
	// nothing next to its traffic.
	DefaultKeepAlive = 10 * time.Second
	// DefaultTokenTTL is the lifetime of the SAS tokens the client signs; it reconnects with
	// a new one after RenewFraction of it.
	DefaultTokenTTL = time.Hour
	// DefaultReconnectMin and DefaultReconnectMax bound the reconnection back-off after IoT
	// Hub refused the connection.
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = 30 * time.Second
	// DefaultUnreachableMax caps the back-off while IoT Hub cannot be reached or the link
	// was lost: the link is back within about 3 s of the network (peers-and-targets.md:
	// under 5 s from the network's return to the first delivered message).
	DefaultUnreachableMax = 3 * time.Second
	// DefaultRequestTimeout bounds the wait for an answer or a PUBACK.
	DefaultRequestTimeout = 30 * time.Second
	// RenewFraction is the share of the token lifetime after which the client renews it.
	RenewFraction = 0.8
)

// Internal sizes and timeouts, with why they have their value.
const (
	// connectTimeout bounds the TCP, TLS and MQTT handshakes of one attempt.
	connectTimeout = 30 * time.Second
	// stableAfter is how long a connection must last for the back-off to start again from
	// ReconnectMin, so that a hub that accepts and then drops us at once is not hammered.
	stableAfter = 30 * time.Second
	// drainTimeout bounds how long a token renewal waits for operations in flight.
	drainTimeout = 5 * time.Second
	// disconnectQuiesce is how long paho may spend sending DISCONNECT (milliseconds).
	disconnectQuiesce = 250
	// rejectedTTL is how long Send remembers that an identity is unknown, out of scope or
	// disabled before asking IoT Hub again (a verdict that the identity may send holds for the
	// whole connection).
	rejectedTTL = time.Minute
	// Inbound queues: desired patches, method requests and C2D messages wait here for their
	// handler. IoT Hub keeps at most 50 C2D messages pending per device and hands all of an
	// attached leaf's at once, hence the larger C2D queue.
	desiredQueueSize = 256
	methodQueueSize  = 64
	methodWorkers    = 4
	c2dQueueSize     = 1024
	// attachParallel bounds the attach requests in flight while re-attaching after a
	// reconnection.
	attachParallel = 16
)

// Options configure a Client. ConnectionString is required; every other zero field takes its
// default.
type Options struct {
	// ConnectionString is the edge hub's own module connection string,
	// "HostName=...;DeviceId={edge};ModuleId=$edgeHub;SharedAccessKey=..." (no
	// GatewayHostName: the link goes to IoT Hub itself).
	ConnectionString sas.ConnectionString
	// CAFile is a PEM bundle of the roots to trust instead of the system roots.
	CAFile string
	// TLSConfig, when set, is used (cloned) instead of CAFile; ServerName defaults to the host.
	TLSConfig *tls.Config
	// Port is the TCP port to dial; default DefaultPort.
	Port int
	// KeepAlive is the MQTT keep-alive, in whole seconds (paho's unit); default
	// DefaultKeepAlive. The ping answer is awaited KeepAlive/2.
	KeepAlive time.Duration
	// TokenTTL is the lifetime of each SAS token; default DefaultTokenTTL.
	TokenTTL time.Duration
	// ReconnectMin and ReconnectMax bound the capped exponential back-off with jitter between
	// connection attempts; defaults DefaultReconnectMin and DefaultReconnectMax. ReconnectMax
	// is the cap after IoT Hub refused the connection (a CONNACK other than accepted: bad
	// credentials, throttling; a refused subscription): it answered, and asks to be left
	// alone for a while.
	ReconnectMin, ReconnectMax time.Duration
	// UnreachableMax caps the back-off while IoT Hub cannot be reached at all (the TCP, TLS
	// or MQTT handshake fails or times out) and after the link was lost: an attempt then
	// costs a few packets, and a short cap brings the link back within seconds of the
	// network's return instead of up to ReconnectMax later. Default DefaultUnreachableMax;
	// never above ReconnectMax.
	UnreachableMax time.Duration
	// RequestTimeout bounds every wait for an answer or a PUBACK; default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives diagnostics; default discards.
	Logger *slog.Logger
	// Now is the clock that signs tokens and ages cached verdicts; default time.Now.
	Now func() time.Time
	// Rand draws the back-off jitter; only Run uses it. Default: seeded at random.
	Rand *rand.Rand
	// Plain speaks MQTT without TLS, for tests against a local hub only: a SAS token in clear
	// text is a credential handed to anyone on the path.
	Plain bool
}

func (o Options) withDefaults() Options {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	o.KeepAlive = max(o.KeepAlive.Truncate(time.Second), time.Second)
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = DefaultReconnectMin
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = DefaultReconnectMax
	}
	o.ReconnectMax = max(o.ReconnectMax, o.ReconnectMin)
	if o.UnreachableMax <= 0 {
		o.UnreachableMax = DefaultUnreachableMax
	}
	o.UnreachableMax = min(max(o.UnreachableMax, o.ReconnectMin), o.ReconnectMax)
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return o
}
