package hub

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// Identities is where the hub finds the keys that verify a client's SAS token.
//
// The authentication hook calls Keys on every CONNECT, from the connecting client's
// goroutine, with the identity that signed the token: the client itself, or its device
// when a module presents a device token. Revalidate calls it again for every connected
// client. Implementations must be safe for concurrent use and should answer from memory:
// the client waits. Keys returns an error for an identity that is unknown, disabled or not
// a symmetric-key identity; any error refuses the client (CONNACK 0x05).
type Identities interface {
	Keys(ctx context.Context, id sas.Identity) (sas.Keys, error)
}

// Upstream sends a message to IoT Hub on behalf of identity (the client that sent it to
// the hub). The $upstream pump calls Send from its own goroutine, one message at a time, in
// queue order, and acknowledges the stored message only when Send returns nil. An error
// wrapping ErrRejected dead-letters the message; any other error leaves it stored and the
// pump retries it with back-off.
type Upstream interface {
	Send(ctx context.Context, identity sas.Identity, m iothub.Message) error
}

// Options configures a Server. Zero durations and sizes take the defaults named on each
// field.
type Options struct {
	// IoTHubHostName is the IoT Hub host name, e.g. "contoso.azure-devices.net". Required:
	// clients put it in their username and token audience.
	IoTHubHostName string
	// GatewayHostName is the edge device's host name, the name clients dial. A token issued
	// for it is accepted too (edgeHub accepts both).
	GatewayHostName string
	// EdgeDeviceID is the edge device's id; module inputs belong to its modules. Required.
	EdgeDeviceID string

	// TLSAddr is the MQTT-over-TLS listen address, e.g. ":8883" ("127.0.0.1:0" in tests);
	// TLS must be set with it. PlainAddr is an optional listener without TLS (local tools
	// and tests). At least one of the two is required.
	TLSAddr   string
	TLS       *tls.Config
	PlainAddr string

	// MaxUpstreamMessageSize caps messages routed to $upstream, measured as IoT Hub does
	// (iothub.Message.Size). Default iothub.MaxMessageSize (256 KB).
	MaxUpstreamMessageSize int
	// MaxLocalMessageSize caps every message, including module-to-module ones. Default
	// 1 MiB; never below MaxUpstreamMessageSize. The MQTT maximum packet size is set just
	// above it (see the package documentation).
	MaxLocalMessageSize int

	// StoreTimeout bounds how long a PUBLISH waits for the store to commit before it is
	// refused. Default 10 s.
	StoreTimeout time.Duration
	// IngestWindow is how many of one client's publishes may await their commit and
	// PUBACK at once (ingest.go); at the limit the hub stops reading from the client until
	// the oldest is acknowledged. Default DefaultIngestWindow.
	IngestWindow int
	// ConnectTimeout bounds the time between accepting a connection and its CONNECT
	// packet, TLS handshake included. Default 30 s.
	ConnectTimeout time.Duration
	// AuthTimeout bounds an Identities.Keys call. Default 5 s.
	AuthTimeout time.Duration
	// RevalidateInterval is how often every connected client's token is checked again
	// (expiry, keys, identity status). Default 1 min.
	RevalidateInterval time.Duration

	// AckTimeout is how long a module has to acknowledge an input message. Default 30 s.
	AckTimeout time.Duration
	// MaxDeliveryAttempts is how many unacknowledged deliveries of one message to a
	// connected module the pump makes before dead-lettering it. Default 10.
	MaxDeliveryAttempts int
	// InputWindow is how many deliveries to one module input may await their PUBACK at
	// once (counted from the oldest unacknowledged one; see runInput). Default
	// DefaultInputWindow; at most 4096.
	InputWindow int
	// RetryMin and RetryMax bound the pumps' exponential back-off. Defaults 1 s and 60 s
	// (edgeHub's store-and-forward retry).
	RetryMin, RetryMax time.Duration
	// UpstreamTimeout bounds one Upstream.Send call, and the wait for one message's
	// outcome with a PipelinedUpstream. Default 30 s.
	UpstreamTimeout time.Duration
	// UpstreamWindow is how many messages the $upstream pump keeps in flight when
	// Deps.Upstream is a PipelinedUpstream. Default DefaultUpstreamWindow.
	UpstreamWindow int

	// HTTPSAddr is the listen address of the direct method API that modules call
	// (POST /twins/{d}[/modules/{m}]/methods, method_http.go), served with TLS; "" serves
	// none (MethodHandler still returns the handler). edgeHub serves it on 443.
	HTTPSAddr string
	// ReportedSyncInterval is the shortest time between two reported-property updates sent
	// upstream for one identity (a client's queued patches are composed meanwhile), and for
	// the hub's own reported properties. Default 1 s (edgeHub: 5 s).
	ReportedSyncInterval time.Duration
	// TwinTimeout bounds one twin request to the cloud (GET, reported patch); a client's
	// GET is then answered from the cache. Default 10 s.
	TwinTimeout time.Duration
	// MethodTimeout bounds the wait for a local client's answer to a direct method invoked
	// from the cloud; the client's answer after it is 504. Default DefaultMethodTimeout.
	MethodTimeout time.Duration
	// C2DTTL is how long a C2D message without an expiry waits for its leaf device.
	// Default DefaultC2DTTL.
	C2DTTL time.Duration
	// Version is the hub's version, reported in its module twin's "version". Default "dev".
	Version string

	// Logger receives the hub's logs and mochi's; discarded when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil. It stamps enqueued times and checks token
	// expiry. (Stored-message TTLs follow the store's own clock.)
	Now func() time.Time
}

// Store is the part of *store.Store that the hub uses (see package store for the
// semantics). Append is called from publishing clients' goroutines, concurrently; each
// pump calls Read, Ack, Rewind, Wait and DeadLetter for its own queues, from one
// goroutine; the $upstream pump, which serves one queue per sender, watches them with
// Watch. When the Store also has SetMaxBytes(int64) error, as *store.Store does, the
// $edgeHub twin's storeLimits.maxSizeBytes applies without a restart. When it is also an
// AsyncAppender, as *store.Store is, a client's publishes share commits (ingest.go).
type Store interface {
	Append(ctx context.Context, body []byte, targets []store.Target) error
	Read(queue string, max int) ([]store.Item, error)
	Ack(queue string, priority int, seq uint64) error
	Rewind(queue string)
	Wait(queue string) <-chan struct{}
	Watch(prefix string) *store.Watcher
	DeadLetter(queue string, priority int, seq uint64, reason string) error
	Queues() []string
}

// Deps are the hub's collaborators, built by the caller (cmd/edgehub) and owned by it: the
// hub never closes them.
type Deps struct {
	Store      Store
	Identities Identities
	// Upstream sends $upstream messages; when nil they stay stored until a hub with an
	// Upstream runs. A PipelinedUpstream gets a window of messages in flight.
	Upstream Upstream
	// Resolver, when not nil, is asked about clients the Identities cannot verify (first
	// connection, rolled keys); see IdentityResolver. Without it the cache alone decides.
	Resolver IdentityResolver
	// Presence, when not nil, is told which clients are connected and what they subscribed
	// to; see Presence.
	Presence Presence
	// IdentityChanges, when not nil, signals that identities changed (see
	// identities.Cache.Changes); the hub then revalidates every connected client at once.
	IdentityChanges <-chan struct{}
	// Twins is the twin cache (package twincache). With it the hub answers its clients'
	// twin requests (from the cache alone when Cloud is nil); without it they are
	// acknowledged and ignored.
	Twins *twincache.Cache
	// Cloud, when not nil, relays twins, direct methods and C2D messages between IoT Hub and
	// the local clients, and carries the hub's own configuration (its module twin); see
	// Cloud. It needs Twins. The real one is the *upstream.Client.
	Cloud Cloud
}

// Defaults.
const (
	DefaultMaxLocalMessageSize = 1 << 20
	DefaultStoreTimeout        = 10 * time.Second
	DefaultIngestWindow        = 256 // Options.IngestWindow
	DefaultConnectTimeout      = 30 * time.Second
	DefaultAuthTimeout         = 5 * time.Second
	DefaultRevalidateInterval  = time.Minute
	DefaultAckTimeout          = 30 * time.Second
	DefaultMaxDeliveryAttempts = 10
	DefaultRetryMin            = time.Second
	DefaultRetryMax            = 60 * time.Second
	DefaultUpstreamTimeout     = 30 * time.Second
	// DefaultReportedSyncInterval and DefaultTwinTimeout: see Options.
	DefaultReportedSyncInterval = time.Second
	DefaultTwinTimeout          = 10 * time.Second
)

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.IoTHubHostName == "":
		return o, fmt.Errorf("%w: IoTHubHostName is required", ErrConfig)
	case o.EdgeDeviceID == "":
		return o, fmt.Errorf("%w: EdgeDeviceID is required", ErrConfig)
	case o.TLSAddr == "" && o.PlainAddr == "":
		return o, fmt.Errorf("%w: no listener: set TLSAddr or PlainAddr", ErrConfig)
	case o.TLSAddr != "" && o.TLS == nil:
		return o, fmt.Errorf("%w: TLSAddr %q without a TLS configuration", ErrConfig, o.TLSAddr)
	}
	if err := iothub.ValidateDeviceID(o.EdgeDeviceID); err != nil {
		return o, fmt.Errorf("%w: EdgeDeviceID: %w", ErrConfig, err)
	}
	setDefault(&o.MaxUpstreamMessageSize, iothub.MaxMessageSize)
	setDefault(&o.MaxLocalMessageSize, DefaultMaxLocalMessageSize)
	o.MaxLocalMessageSize = max(o.MaxLocalMessageSize, o.MaxUpstreamMessageSize)
	setDefault(&o.StoreTimeout, DefaultStoreTimeout)
	setDefault(&o.IngestWindow, DefaultIngestWindow)
	setDefault(&o.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&o.AuthTimeout, DefaultAuthTimeout)
	setDefault(&o.RevalidateInterval, DefaultRevalidateInterval)
	setDefault(&o.AckTimeout, DefaultAckTimeout)
	setDefault(&o.MaxDeliveryAttempts, DefaultMaxDeliveryAttempts)
	setDefault(&o.InputWindow, DefaultInputWindow)
	if o.InputWindow > maxInputWindow {
		return o, fmt.Errorf("%w: InputWindow %d is more than %d", ErrConfig, o.InputWindow, maxInputWindow)
	}
	setDefault(&o.RetryMin, DefaultRetryMin)
	setDefault(&o.RetryMax, DefaultRetryMax)
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	setDefault(&o.UpstreamTimeout, DefaultUpstreamTimeout)
	setDefault(&o.UpstreamWindow, DefaultUpstreamWindow)
	if o.HTTPSAddr != "" && o.TLS == nil {
		return o, fmt.Errorf("%w: HTTPSAddr %q without a TLS configuration", ErrConfig, o.HTTPSAddr)
	}
	setDefault(&o.ReportedSyncInterval, DefaultReportedSyncInterval)
	setDefault(&o.TwinTimeout, DefaultTwinTimeout)
	setDefault(&o.MethodTimeout, DefaultMethodTimeout)
	setDefault(&o.C2DTTL, DefaultC2DTTL)
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func (d Deps) validate() error {
	switch {
	case d.Store == nil:
		return fmt.Errorf("%w: Deps.Store is required", ErrConfig)
	case d.Identities == nil:
		return fmt.Errorf("%w: Deps.Identities is required", ErrConfig)
	case d.Cloud != nil && d.Twins == nil:
		return fmt.Errorf("%w: Deps.Cloud needs Deps.Twins (the twin cache)", ErrConfig)
	}
	return nil
}
