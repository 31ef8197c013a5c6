package moduleclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

// clientType is the DeviceClientType sent in the CONNECT username, shaped like the C SDK's
// "iothubclient/1.9.0 (native; Linux; aarch64)".
var clientType = "outpost-moduleclient/0.1 (" + runtime.Version() + "; " + runtime.GOOS + "; " + runtime.GOARCH + ")"

// state is where a Client is in its life (see the diagram in doc.go).
type state int

const (
	stateIdle       state = iota // created, Connect not called or failed
	stateConnecting              // first Connect in progress
	stateRunning                 // connected once; the supervisor keeps it connected
	stateClosed                  // Close called
)

// Client is a device or module client. Create it with New, NewFromConnectionString or
// NewFromEnvironment, register handlers, then Connect. All methods are safe for concurrent use.
//
// Lock order: conn.subMu before Client.mu.
type Client struct {
	cs         sas.ConnectionString
	opts       Options
	log        *slog.Logger
	tls        *tls.Config // nil with Options.Plain
	broker     string      // paho server URL, "ssl://host:port" or "tcp://host:port"
	clientID   string
	username   string
	renewable  bool // tokens are signed locally, so they can (and must) be renewed
	rids       *ridSource
	renewAfter time.Duration

	// ctx lives until Close; callbacks that take a context get it (methods) and every
	// background goroutine stops when it is done.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor returns; only once stateRunning

	startWorkers sync.Once
	c2dQ         *queue[inbound]
	inputQ       *queue[inbound]
	desiredQ     *queue[desiredUpdate]
	methodQ      *queue[methodCall]
	eventQ       *queue[connEvent]

	// desired is owned by the desired-patch worker goroutine.
	desired desiredState
	// desiredStale is set when a desired patch could not be queued; the worker then
	// resynchronises from a twin GET.
	desiredStale atomic.Bool

	mu        sync.Mutex
	state     state
	conn      *conn         // the usable connection, nil while (re)connecting
	ready     chan struct{} // closed when conn becomes non-nil, replaced when it drops
	onC2D     func(iothub.Message)
	onInput   func(input string, m iothub.Message)
	onDesired func(patch map[string]any, version int64)
	methods   map[string]MethodHandler
	onConn    func(connected bool, err error)
	pending   map[string]chan twinResponse // twin requests by $rid
}

// New creates a client for the device or module of cs. It checks the configuration (identity,
// credentials, CA file) but does not connect.
func New(cs sas.ConnectionString, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	if err := checkIdentity(cs); err != nil {
		return nil, err
	}
	c := &Client{
		cs:         cs,
		opts:       opts,
		clientID:   iothub.ClientID(cs.DeviceID, cs.ModuleID),
		renewable:  cs.SharedAccessKey != "" && cs.SharedAccessSignature == "" && !cs.X509,
		rids:       newRIDSource(),
		renewAfter: time.Duration(float64(opts.TokenTTL) * RenewFraction),
		c2dQ:       newQueue[inbound](messageQueueSize),
		inputQ:     newQueue[inbound](messageQueueSize),
		desiredQ:   newQueue[desiredUpdate](messageQueueSize),
		methodQ:    newQueue[methodCall](methodQueueSize),
		eventQ:     newQueue[connEvent](eventQueueSize),
		done:       make(chan struct{}),
		ready:      make(chan struct{}),
		methods:    map[string]MethodHandler{},
		pending:    map[string]chan twinResponse{},
	}
	c.log = opts.Logger.With("device_id", cs.DeviceID)
	if cs.ModuleID != "" {
		c.log = c.log.With("module", cs.ModuleID)
	}
	params := map[string]string{iothub.ParamDeviceClientType: clientType}
	if opts.ModelID != "" {
		params[iothub.ParamModelID] = opts.ModelID
	}
	// The username always names the IoT Hub, never the gateway (protocol notes 1.3).
	c.username = iothub.FormatUsername(cs.HostName, cs.DeviceID, cs.ModuleID, params)
	host := net.JoinHostPort(cs.ConnectHost(), strconv.Itoa(opts.Port))
	if opts.Plain {
		c.broker = "tcp://" + host
	} else {
		cfg, err := tlsConfig(cs, opts)
		if err != nil {
			return nil, err
		}
		c.tls, c.broker = cfg, "ssl://"+host
	}
	if cs.X509 && !hasClientCertificate(c.tls) {
		return nil, fmt.Errorf("identity %q: %w: an x509 connection string needs Options.TLSConfig with a client certificate",
			c.clientID, ErrInvalidConfig)
	}
	if !cs.X509 {
		// Sign once now so that a bad key fails here rather than on every reconnect.
		if _, err := cs.Token(opts.Now(), opts.TokenTTL); err != nil {
			return nil, fmt.Errorf("identity %q: %w: %w", c.clientID, ErrInvalidConfig, err)
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// NewFromConnectionString parses a device or module connection string
// ("HostName=...;DeviceId=...[;ModuleId=...];SharedAccessKey=...[;GatewayHostName=...]") and
// calls New.
func NewFromConnectionString(s string, opts Options) (*Client, error) {
	cs, err := sas.ParseConnectionString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return New(cs, opts)
}

// checkIdentity rejects connection strings that cannot name a device or module, and ids that
// would corrupt the topics they are written into.
func checkIdentity(cs sas.ConnectionString) error {
	if cs.HostName == "" {
		return fmt.Errorf("%w: connection string has no HostName", ErrInvalidConfig)
	}
	if cs.IsService() {
		return fmt.Errorf("%w: connection string for %q is a service string (no DeviceId)", ErrInvalidConfig, cs.HostName)
	}
	if err := iothub.ValidateDeviceID(cs.DeviceID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cs.ModuleID != "" {
		if err := iothub.ValidateModuleID(cs.ModuleID); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	// IoT Hub allows '#' and '+' in ids, but MQTT forbids them in topic names, so such an
	// identity cannot use MQTT at all.
	if strings.ContainsAny(cs.DeviceID+cs.ModuleID, "#+") {
		return fmt.Errorf("%w: identity %q contains '#' or '+', which MQTT topic names cannot carry",
			ErrInvalidConfig, iothub.ClientID(cs.DeviceID, cs.ModuleID))
	}
	if cs.SharedAccessKey == "" && cs.SharedAccessSignature == "" && !cs.X509 {
		return fmt.Errorf("%w: connection string for %q has no SharedAccessKey, SharedAccessSignature or x509=true",
			ErrInvalidConfig, iothub.ClientID(cs.DeviceID, cs.ModuleID))
	}
	return nil
}

// tlsConfig builds the client TLS configuration: Options.TLSConfig cloned, or one trusting
// Options.CAFile (system roots when empty). ServerName defaults to the host dialled, which is
// GatewayHostName when present: that is the name on the edge hub's certificate.
func tlsConfig(cs sas.ConnectionString, opts Options) (*tls.Config, error) {
	var cfg *tls.Config
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pool, err := readCAFile(opts.CAFile)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = pool
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = cs.ConnectHost()
	}
	return cfg, nil
}

// readCAFile reads the certificates of a PEM file into a pool.
func readCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file %q: %w: %w", path, ErrInvalidConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %q: %w: no PEM certificate found", path, ErrInvalidConfig)
	}
	return pool, nil
}

// dialTLS is the TLS configuration of the next connection. Options.CAFile is read again
// on every dial: the edge runtime renews its CA before it expires and rewrites the file
// (EdgeModuleCACertificateFile), and a client that kept the first CA would be locked out
// once that one expired. When the file cannot be read at that moment (being replaced),
// the last good CA pool is used. dial runs on one goroutine at a time (Connect, then the
// supervisor), the only writer of c.tls after New.
func (c *Client) dialTLS() *tls.Config {
	if c.opts.CAFile == "" || c.opts.TLSConfig != nil {
		return c.tls
	}
	pool, err := readCAFile(c.opts.CAFile)
	if err != nil {
		c.log.Warn("keeping the last CA certificates", "err", err)
		return c.tls
	}
	cfg := c.tls.Clone()
	cfg.RootCAs = pool
	c.tls = cfg
	return cfg
}

func hasClientCertificate(cfg *tls.Config) bool {
	return cfg != nil && (len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil)
}

// Identity returns the device id and the module id ("" for a device).
func (c *Client) Identity() (deviceID, moduleID string) {
	return c.cs.DeviceID, c.cs.ModuleID
}

// Connect opens the first connection: it dials GatewayHostName (or HostName) on Options.Port
// with TLS, sends CONNECT (client id "{d}" or "{d}/{m}", the IoT Hub username, a fresh SAS
// token as password, CleanSession=false, protocol level 4) and subscribes to the twin
// responses and to whatever the registered handlers need. It returns once the subscriptions
// are acknowledged. A refused CONNACK is an error wrapping ErrNotAuthorized (0x05),
// ErrBadCredentials (0x04), ErrServerUnavailable (0x03), ... A failed Connect may be retried.
//
// From then on the client stays connected by itself until Close: it reconnects with capped
// exponential back-off after a loss and renews its token by reconnecting (see doc.go).
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch c.state {
	case stateClosed:
		c.mu.Unlock()
		return ErrClosed
	case stateConnecting, stateRunning:
		c.mu.Unlock()
		return fmt.Errorf("identity %q: Connect called twice", c.clientID)
	}
	c.state = stateConnecting
	c.mu.Unlock()

	// Close must be able to interrupt the first connection too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	cn, err := c.dial(ctx)
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		if cn != nil {
			cn.close(ErrClosed)
		}
		return ErrClosed
	}
	if err != nil {
		c.state = stateIdle
		// Wake operations that waited for this first connection: they now fail with
		// ErrNotConnected instead of waiting for a Connect that may never come.
		close(c.ready)
		c.ready = make(chan struct{})
		c.mu.Unlock()
		return err
	}
	c.state = stateRunning
	c.mu.Unlock()

	c.startWorkers.Do(c.runWorkers)
	c.activate(cn)
	c.emit(true, nil)
	go c.supervise(cn)
	return nil
}

// Close disconnects and stops the client. Operations waiting for a connection or a response
// return ErrClosed; later calls fail with ErrClosed. Close does not wait for callbacks that are
// running (so a callback may call Close); they finish on their own and no new callback starts.
// Messages whose callback has not returned are not acknowledged and will be redelivered to the
// next client of this identity. Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return nil
	}
	running := c.state == stateRunning
	c.state = stateClosed
	c.mu.Unlock()
	c.cancel()
	if running {
		<-c.done // the supervisor disconnects the current connection
	}
	return nil
}

// OnConnectionChange registers h, called with (true, nil) once Connect succeeded, with
// (false, err) when the connection is lost and after every failed reconnection attempt (err
// wraps ErrConnectionLost, ErrNotAuthorized, ...), and with (true, nil) again once reconnected.
// A planned reconnection to renew the SAS token is not reported unless it fails. Calls are sequential, from a goroutine of their
// own; if h falls more than a few events behind, events are dropped.
func (c *Client) OnConnectionChange(h func(connected bool, err error)) {
	c.mu.Lock()
	c.onConn = h
	c.mu.Unlock()
}

// connEvent is one OnConnectionChange notification.
type connEvent struct {
	connected bool
	err       error
}

// emit queues a connection notification for the registered handler, if any.
func (c *Client) emit(connected bool, err error) {
	c.mu.Lock()
	h := c.onConn
	c.mu.Unlock()
	if h == nil {
		return
	}
	if !c.eventQ.offer(connEvent{connected, err}) {
		c.log.Warn("connection change handler is too slow; notification dropped", "connected", connected)
	}
}

// runWorkers starts the goroutines that run user callbacks, one per kind (several for
// methods). They stop when the client is closed.
func (c *Client) runWorkers() {
	stop := c.ctx.Done()
	go c.c2dQ.run(stop, func(in inbound) {
		c.mu.Lock()
		h := c.onC2D
		c.mu.Unlock()
		c.deliver(in, func(m iothub.Message) { h(m) }, h != nil)
	})
	go c.inputQ.run(stop, func(in inbound) {
		c.mu.Lock()
		h := c.onInput
		c.mu.Unlock()
		c.deliver(in, func(m iothub.Message) { h(in.input, m) }, h != nil)
	})
	go c.desiredQ.run(stop, c.applyDesired)
	for range methodWorkers {
		go c.methodQ.run(stop, c.callMethod)
	}
	go c.eventQ.run(stop, func(ev connEvent) {
		c.mu.Lock()
		h := c.onConn
		c.mu.Unlock()
		if h != nil {
			c.safely("connection change handler", func() { h(ev.connected, ev.err) })
		}
	})
}

// safely runs a user callback, turning a panic into a logged error so that one bad message
// does not take the client down. It reports whether fn returned normally.
func (c *Client) safely(what string, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("callback panicked", "callback", what, "panic", r)
			ok = false
		}
	}()
	fn()
	return true
}

// newRand returns the source of back-off jitter, seeded from crypto/rand via the runtime.
func newRand() *rand.Rand {
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}
