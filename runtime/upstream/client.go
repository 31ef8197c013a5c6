package upstream

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// clientType is the DeviceClientType sent in the CONNECT username.
var clientType = "outpost-upstream/0.1 (" + runtime.Version() + "; " + runtime.GOOS + "; " + runtime.GOARCH + ")"

// edgeHubModule is the module identity the edge hub connects upstream as.
const edgeHubModule = "$edgeHub"

// Identity is the registry's record of a device or module, as IoT Hub returns it to
// Authenticate and GetIdentity (iothub.OBOIdentity: ids, generation id, status, keys or
// thumbprints, scopes, etag). The keys are what lets the edge hub verify the identity's
// later tokens itself, also while offline.
type Identity struct {
	iothub.OBOIdentity
}

// ID returns the identity's name.
func (i Identity) ID() sas.Identity {
	return sas.Identity{DeviceID: i.DeviceID, ModuleID: i.ModuleID}
}

// Keys returns the identity's symmetric keys (empty for an X.509 identity).
func (i Identity) Keys() sas.Keys {
	if k := i.Authentication.SymmetricKey; k != nil {
		return sas.Keys{Primary: k.PrimaryKey, Secondary: k.SecondaryKey}
	}
	return sas.Keys{}
}

// Subscriptions say what IoT Hub forwards for an attached identity.
type Subscriptions struct {
	// Desired asks for desired-property patches (OnDesired).
	Desired bool
	// Methods asks for direct method requests (OnMethod).
	Methods bool
	// C2D asks for cloud-to-device messages (OnC2D); leaf devices only.
	C2D bool
}

func (s Subscriptions) names() []string {
	names := []string{}
	if s.Desired {
		names = append(names, iothub.OBOSubDesired)
	}
	if s.Methods {
		names = append(names, iothub.OBOSubMethods)
	}
	if s.C2D {
		names = append(names, iothub.OBOSubC2D)
	}
	return names
}

// Client is the edge hub's link to IoT Hub: one MQTT connection, as {edge}/$edgeHub, that
// carries every identity in the edge device's scope (doc.go). Create it with New, register
// handlers, and call Run; every other method is safe for concurrent use and fails with
// ErrOffline while the link is down.
//
// Lock order: an identity lock (idLock) before Client.mu before conn.mu; stateMu and
// conn.outMu are leaves.
type Client struct {
	opts       Options
	cs         sas.ConnectionString
	log        *slog.Logger
	tls        *tls.Config // nil with Options.Plain
	broker     string      // paho server URL
	clientID   string
	username   string
	renewAfter time.Duration
	rids       ridSource
	running    atomic.Bool

	desiredQ *queue[desiredUpdate]
	methodQ  *queue[methodCall]
	c2dQ     *queue[c2dMessage]

	connected atomic.Bool
	stateMu   sync.Mutex
	states    chan bool

	mu        sync.Mutex
	conn      *conn                        // the usable connection; nil while offline
	renewing  chan struct{}                // non-nil during a token renewal; closed when it ends
	attached  map[sas.Identity]*attachment // identities to keep attached across connections
	kick      chan struct{}                // wakes the re-attach loop (size 1)
	idLocks   [64]sync.Mutex               // order attach/detach requests per identity (attach.go)
	onDesired func(sas.Identity, []byte, int64)
	onMethod  func(id sas.Identity, name, rid string, payload []byte)
	onC2D     func(sas.Identity, iothub.Message) error
}

// New checks the options (a module connection string for {edge}/$edgeHub with a key, a
// readable CA file) and returns a client that is not connected yet.
func New(opts Options) (*Client, error) {
	opts = opts.withDefaults()
	cs := opts.ConnectionString
	switch {
	case cs.HostName == "":
		return nil, fmt.Errorf("%w: connection string has no HostName", ErrInvalidConfig)
	case cs.DeviceID == "" || cs.ModuleID != edgeHubModule:
		return nil, fmt.Errorf("%w: connection string is for %q, want the edge hub's module identity {edge}/%s",
			ErrInvalidConfig, iothub.ClientID(cs.DeviceID, cs.ModuleID), edgeHubModule)
	case cs.GatewayHostName != "":
		return nil, fmt.Errorf("%w: connection string names a gateway (%q); the upstream link goes to IoT Hub itself", ErrInvalidConfig, cs.GatewayHostName)
	}
	if err := iothub.ValidateDeviceID(cs.DeviceID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, err := cs.Token(opts.Now(), opts.TokenTTL); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c := &Client{
		opts:       opts,
		cs:         cs,
		log:        opts.Logger.With("component", "upstream", "device_id", cs.DeviceID),
		clientID:   iothub.ClientID(cs.DeviceID, cs.ModuleID),
		renewAfter: time.Duration(float64(opts.TokenTTL) * RenewFraction),
		rids:       newRIDSource(),
		desiredQ:   newQueue[desiredUpdate](desiredQueueSize),
		methodQ:    newQueue[methodCall](methodQueueSize),
		c2dQ:       newQueue[c2dMessage](c2dQueueSize),
		states:     make(chan bool, 1),
		attached:   map[sas.Identity]*attachment{},
		kick:       make(chan struct{}, 1),
	}
	c.username = iothub.FormatUsername(cs.HostName, cs.DeviceID, cs.ModuleID, map[string]string{
		iothub.ParamDeviceClientType: clientType,
		iothub.ParamOutpostExtension: "1",
	})
	host := net.JoinHostPort(cs.ConnectHost(), strconv.Itoa(opts.Port))
	if opts.Plain {
		c.broker = "tcp://" + host
		return c, nil
	}
	cfg, err := tlsConfig(cs.ConnectHost(), opts)
	if err != nil {
		return nil, err
	}
	c.tls, c.broker = cfg, "ssl://"+host
	return c, nil
}

// tlsConfig builds the client TLS configuration: Options.TLSConfig cloned, or one trusting
// Options.CAFile (the system roots when empty).
func tlsConfig(host string, opts Options) (*tls.Config, error) {
	var cfg *tls.Config
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("CA file %q: %w: %w", opts.CAFile, ErrInvalidConfig, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %q: %w: no PEM certificate found", opts.CAFile, ErrInvalidConfig)
			}
			cfg.RootCAs = pool
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg, nil
}

// Connected reports whether the link is up. It stays true across a planned token renewal.
func (c *Client) Connected() bool { return c.connected.Load() }

// States returns a channel that receives the link state after each change (true: up). It is
// coalesced: it holds at most one value, the latest, so a slow reader sees the current state
// rather than a backlog. The channel is the same on every call and is meant for one reader
// (the hub's pump waking up when the link returns).
func (c *Client) States() <-chan bool { return c.states }

// setConnected records the link state and publishes a change on States.
func (c *Client) setConnected(up bool) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.connected.Swap(up) == up {
		return
	}
	select {
	case <-c.states:
	default:
	}
	c.states <- up
}

// OnDesired registers h for desired-property patches of identities attached with
// Subscriptions.Desired: patch is the notification body (with "$version"), version the
// topic's $version. Calls are sequential, in arrival order, on a goroutine of the client's;
// patches that arrive while h is more than 256 behind are dropped (and logged): the hub
// notices the version gap and re-reads the twin (edge-runtime-behaviour.md F.6).
func (c *Client) OnDesired(h func(id sas.Identity, patch []byte, version int64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onDesired = h
}

// OnMethod registers h for direct method requests to identities attached with
// Subscriptions.Methods. h must hand the call on and return (a few workers run it); the
// answer goes back with RespondMethod(id, rid, ...). A request arriving while every worker
// is busy and 64 are waiting is dropped and the caller times out.
func (c *Client) OnMethod(h func(id sas.Identity, name, rid string, payload []byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onMethod = h
}

// OnC2D registers h for cloud-to-device messages of leaf devices attached with
// Subscriptions.C2D. Calls are sequential, in arrival order. The message is acknowledged to
// IoT Hub (PUBACK, which completes it) only when h returns nil: h must first make it durable
// or deliver it. A message h refuses, or that arrives without a handler, stays with IoT Hub
// and is delivered again on the next connection.
func (c *Client) OnC2D(h func(id sas.Identity, m iothub.Message) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onC2D = h
}

// checkID rejects identities that cannot be written into a topic.
func checkID(id sas.Identity) error {
	if err := iothub.ValidateDeviceID(id.DeviceID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if id.ModuleID != "" {
		if err := iothub.ValidateModuleID(id.ModuleID); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
	}
	// IoT Hub allows '#' and '+' in ids, but MQTT topic names cannot carry them.
	if strings.ContainsAny(id.DeviceID+id.ModuleID, "#+") {
		return fmt.Errorf("%w: identity %q contains '#' or '+', which MQTT topic names cannot carry", ErrInvalidArgument, id)
	}
	return nil
}

// ridSource hands out request ids: a random per-client prefix plus a counter, e.g.
// "3f9a1c0de2b4-17", made only of [0-9a-f-] so that it passes iothub.ValidateRequestID.
type ridSource struct {
	prefix string
	n      *atomic.Uint64
}

func newRIDSource() ridSource {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return ridSource{prefix: hex.EncodeToString(b[:]), n: new(atomic.Uint64)}
}

func (s ridSource) next() string { return s.prefix + "-" + strconv.FormatUint(s.n.Add(1), 10) }
