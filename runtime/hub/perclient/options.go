package perclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Defaults of Options.
const (
	// DefaultPort is IoT Hub's MQTT over TLS port.
	DefaultPort = 8883
	// DefaultIdleTimeout is edgeHub's CloudConnectionIdleTimeoutSecs (3600).
	DefaultIdleTimeout = time.Hour
	// DefaultKeepAlive is the MQTT keep-alive of each connection: a dead route is noticed
	// within about 1.5 times it.
	DefaultKeepAlive = 30 * time.Second
	// DefaultReconnectMin and DefaultReconnectMax bound each connection's reconnect
	// back-off.
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = 30 * time.Second
	// DefaultHubTokenTTL is the lifetime of the tokens the edge hub signs for its own
	// connection; it reconnects with a new one after RenewFraction of it.
	DefaultHubTokenTTL = time.Hour
	// DefaultRequestTimeout bounds a twin request or a method answer's PUBACK when the
	// caller's context has no deadline.
	DefaultRequestTimeout = 30 * time.Second
	// RenewFraction is the share of a token's remaining lifetime after which a session asks
	// its client for a fresh one (Keys starts failing, the hub closes the client's local
	// connection, the client reconnects with a new token), and after which the edge hub
	// renews its own token.
	RenewFraction = 0.8
)

// Internal sizes and timings. Constants rather than options because nobody needed to tune
// them; each says why it has its value.
const (
	// connectTimeout bounds the TCP, TLS and MQTT handshakes of one attempt.
	connectTimeout = 30 * time.Second
	// subscribeTimeout bounds the wait for a SUBACK.
	subscribeTimeout = 30 * time.Second
	// resolveMargin is kept free of the hub's authentication deadline: Resolve stops
	// waiting for the first connection that long before it, so that the hub still has time
	// to verify the token.
	resolveMargin = time.Second
	// inboundQueueSize bounds the desired patches, method requests and C2D messages of one
	// identity waiting for the hub's handlers.
	inboundQueueSize = 128
	// sweepInterval is how often Run looks for idle connections and sessions due for
	// renewal.
	sweepInterval = time.Second
	// resyncDelay coalesces identities coming back into one resynchronisation signal.
	resyncDelay = 200 * time.Millisecond
	// stableAfter is how long a connection must last for its back-off to start again from
	// ReconnectMin.
	stableAfter = 30 * time.Second
	// disconnectQuiesce is how long paho may spend sending DISCONNECT, in milliseconds.
	disconnectQuiesce = 250
)

// Options configure a Link.
type Options struct {
	// Hub is the edge hub's own module connection string ({edge}/$edgeHub with a
	// SharedAccessKey, as for the extension link). Required: its connection carries the
	// hub's own twin (its configuration) and names IoT Hub's host.
	Hub sas.ConnectionString
	// Keys is the identity cache (package identities) that verifies the clients' tokens.
	// Required with the current hub: see the package documentation, "Authentication".
	Keys hub.Identities
	// KeyChanges is the identity cache's Changes channel; Link.Changes passes its signals
	// on, so that the hub can be given one channel.
	KeyChanges <-chan struct{}

	// CAFile is a PEM bundle of the roots IoT Hub's certificate must chain to (default: the
	// system roots); TLSConfig, when set, is used instead (cloned).
	CAFile    string
	TLSConfig *tls.Config
	// Port is IoT Hub's MQTT over TLS port; default DefaultPort.
	Port int
	// KeepAlive, ReconnectMin and ReconnectMax: see the defaults.
	KeepAlive                  time.Duration
	ReconnectMin, ReconnectMax time.Duration
	// HubTokenTTL is the lifetime of the edge hub's own tokens; default DefaultHubTokenTTL.
	HubTokenTTL time.Duration
	// IdleTimeout closes the connection of an identity whose client is not connected to the
	// hub and that sent nothing for that long; default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RequestTimeout bounds twin requests and method answers whose context has no
	// deadline; default DefaultRequestTimeout.
	RequestTimeout time.Duration

	// OnLinkChange, when set, is called with the state of the edge hub's own connection at
	// each change, and with false then true after another identity's connection came back
	// (coalesced), so that the hub resynchronises twins and flushes reported properties:
	// give it hub.Server.CloudStateChanged. Calls come from Run's goroutine.
	OnLinkChange func(up bool)
	// Logger receives the link's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock for token expiry and idle decisions; time.Now when nil.
	Now func() time.Time
}

// withDefaults validates o and fills in the defaults; it also builds the TLS configuration.
func (o Options) withDefaults() (Options, *tls.Config, error) {
	cs := o.Hub
	switch {
	case cs.HostName == "":
		return o, nil, fmt.Errorf("%w: Options.Hub has no HostName", ErrConfig)
	case cs.ModuleID != "$edgeHub":
		return o, nil, fmt.Errorf("%w: Options.Hub is for %q, not the edge hub's module identity {edge}/$edgeHub",
			ErrConfig, sas.Identity{DeviceID: cs.DeviceID, ModuleID: cs.ModuleID})
	case cs.SharedAccessKey == "":
		return o, nil, fmt.Errorf("%w: Options.Hub has no SharedAccessKey", ErrConfig)
	case o.Keys == nil:
		return o, nil, fmt.Errorf("%w: Options.Keys (the identity cache) is required", ErrConfig)
	}
	if err := iothub.ValidateDeviceID(cs.DeviceID); err != nil {
		return o, nil, fmt.Errorf("%w: Options.Hub: %w", ErrConfig, err)
	}
	if _, err := cs.Token(time.Now(), time.Hour); err != nil {
		return o, nil, fmt.Errorf("%w: Options.Hub: %w", ErrConfig, err)
	}
	setDefault(&o.Port, DefaultPort)
	setDefault(&o.KeepAlive, DefaultKeepAlive)
	setDefault(&o.ReconnectMin, DefaultReconnectMin)
	setDefault(&o.ReconnectMax, DefaultReconnectMax)
	o.ReconnectMax = max(o.ReconnectMax, o.ReconnectMin)
	setDefault(&o.HubTokenTTL, DefaultHubTokenTTL)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.RequestTimeout, DefaultRequestTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg, err := o.tlsConfig()
	return o, cfg, err
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// tlsConfig returns Options.TLSConfig cloned, or one trusting Options.CAFile (the system
// roots when empty); the server name is IoT Hub's host.
func (o Options) tlsConfig() (*tls.Config, error) {
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%w: CA file: %w", ErrConfig, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: CA file %q holds no PEM certificate", ErrConfig, o.CAFile)
			}
			cfg.RootCAs = pool
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = o.Hub.HostName
	}
	return cfg, nil
}
