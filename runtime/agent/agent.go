package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// Twin is what the agent needs from its connection to the hub as
// {edge}/$edgeAgent: *moduleclient.Client provides it, tests use a fake.
type Twin interface {
	// Connect opens the first connection; the client then stays connected
	// (reconnecting) by itself. The agent calls it from Run, again after
	// each failure, until it succeeds.
	Connect(ctx context.Context) error
	// GetTwin returns the twin's desired and reported sections, each with
	// its "$version". The agent reads the desired section once connected
	// and after each notification, and the reported section as the base
	// its reported patches are computed against.
	GetTwin(ctx context.Context) (desired, reported map[string]any, err error)
	// UpdateReported sends a reported-properties merge patch.
	UpdateReported(ctx context.Context, patch map[string]any) (version int64, err error)
	// OnDesired registers the handler of desired-properties notifications.
	// The agent takes them as a signal only and reads the document with
	// GetTwin, so the patch's content does not matter, only its version.
	OnDesired(h func(patch map[string]any, version int64))
	// HandleMethod registers the handler of a direct method.
	HandleMethod(name string, h moduleclient.MethodHandler)
}

var _ Twin = (*moduleclient.Client)(nil)

// Deps are the agent's collaborators, built by the caller (cmd/edgeagent
// wires the real ones by hand).
type Deps struct {
	// Runtime runs the modules. Required.
	Runtime Runtime
	// Twin is the connection to the hub as {edge}/$edgeAgent. Required.
	Twin Twin
	// Identities computes module keys and creates module identities in the
	// hub. Required.
	Identities Identities
	// State keeps the last good deployment, module records and identity
	// generation ids. Required; the caller opens and closes it.
	State *StateDB
	// Logger receives the agent's logs; discarded when nil. Secrets (module
	// keys, connection strings, registry passwords) are never logged.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Defaults of Options.
const (
	// DefaultPeriod is the reconcile period, Azure's 5 s.
	DefaultPeriod = 5 * time.Second
	// DefaultReconcileTimeout bounds one reconcile, as Azure's 10 minutes.
	DefaultReconcileTimeout = 10 * time.Minute
	// DefaultAuthScheme is IOTEDGE_AUTHSCHEME.
	DefaultAuthScheme = "sasToken"
)

// Options configure an Agent.
type Options struct {
	// DeviceID is the edge device's id. Required.
	DeviceID string
	// IoTHubHostName is the hub's host name (HostName= of connection
	// strings, IOTEDGE_IOTHUBHOSTNAME). Required.
	IoTHubHostName string
	// GatewayHostName is the edge device's host name, where modules find
	// edgeHub: GatewayHostName= of their connection strings,
	// IOTEDGE_GATEWAYHOSTNAME, edgeHub's EdgeDeviceHostName. Required.
	GatewayHostName string
	// ParentHostName is the parent edge device of a nested edge device:
	// edgeHub's IOTEDGE_GATEWAYHOSTNAME and GatewayHostName, modules'
	// IOTEDGE_PARENTHOSTNAME and Desired.Upstream. Empty otherwise.
	ParentHostName string
	// ModuleCAFile is the PEM file of the CA that signed edgeHub's server
	// certificate, given to user modules as EdgeModuleCACertificateFile.
	// Not set when empty.
	ModuleCAFile string
	// UpstreamCAFile is the CA edgeHub must trust for its own upstream
	// connection, given to edgeHub as EdgeModuleCACertificateFile. Not set
	// when empty (system roots).
	UpstreamCAFile string
	// UpstreamPort is the MQTT/TLS port of the hub the agent connects to
	// (IoT Hub, or the parent edge device), where edgeHub connects too:
	// given to edgeHub as OUTPOST_MQTT_PORT when it is not the default,
	// 8883 (so that the environment, part of edgeHub's spec hash, stays the
	// same on devices that use the default). Not set when 0.
	UpstreamPort int
	// EdgeHubCertsDir is the directory of the edge CA and of edgeHub's
	// server certificate (edgectl setup's certs/, which the agent renews:
	// package certs' file names), given to edgeHub as
	// EdgeModuleHubServerCertificateFile (<dir>/server.pem) and
	// EdgeModuleHubServerCAChainCertificateFile (<dir>/edge-ca.pem), as
	// Azure's agent did before the workload API. Neither is set when empty,
	// nor when edgeHub's env or createOptions.Env names either (the
	// deployment's own certificate wins). The paths are the agent's own,
	// as those of ModuleCAFile and UpstreamCAFile: with the Docker runtime
	// the deployment's createOptions bind-mounts the directory into
	// edgeHub's container at the same path (edgectl start mounts the
	// agent's data directory at its host path, so the agent's paths are the
	// host's); the agent mounts nothing itself.
	EdgeHubCertsDir string
	// RuntimeLogLevel is injected as RuntimeLogLevel into modules whose env
	// does not set it; "info" when empty.
	RuntimeLogLevel string
	// UpstreamProtocol, when set, is injected as UpstreamProtocol into
	// modules whose env does not set it.
	UpstreamProtocol string
	// Period is the reconcile period: the agent reconciles this long after
	// the end of the last reconcile even when nothing woke it.
	// DefaultPeriod when 0.
	Period time.Duration
	// ReconcileTimeout bounds one reconcile; DefaultReconcileTimeout when 0.
	ReconcileTimeout time.Duration
	// Backoff holds the restart back-off settings for every module
	// (Desired.Backoff); restart's defaults when zero.
	Backoff restart.Policy
	// StopTimeout is the grace period given to modules stopped by a plan;
	// DefaultStopTimeout when 0.
	StopTimeout time.Duration
	// BootTime is when the host last started (Desired.BootTime); zero
	// disables the "stopped by a shutdown" rule.
	BootTime time.Time
	// RegistryLogins, when not nil, returns the registry logins stored on
	// the device (Desired.Logins); it is called at every reconcile, so a
	// new login is used without restarting the agent.
	RegistryLogins func() []RegistryLogin
	// Info describes the agent in reported properties.
	Info AgentInfo
}

// Agent is the edge agent's long-running part: it reads its deployment from
// the $edgeAgent twin (or, offline, from its state database), reconciles
// the modules with Plan and Apply on every desired change, on every Wait
// that comes due and every Options.Period, creates module identities, and
// reports to the twin. See the package documentation, "Agent".
type Agent struct {
	opts Options
	deps Deps
	log  *slog.Logger
	now  func() time.Time

	running atomic.Bool   // Run has been called
	wakeCh  chan struct{} // coalesced wake-ups of the loop

	// desired is the twin's desired document, read by runDesired.
	desiredMu sync.Mutex
	desired   desiredDoc
	fetchCh   chan struct{} // asks runDesired to read the twin

	// reported is the latest full report waiting for the reporter.
	reportMu   sync.Mutex
	report     map[string]any
	reportSeq  uint64
	reportCh   chan struct{}
	sentSeq    atomic.Uint64            // reportSeq of the last report the hub has
	sentCh     chan struct{}            // signalled after each report sent
	secrets    atomic.Pointer[[]string] // values to redact from reports and logs
	connected  chan struct{}            // closed once Twin.Connect succeeded
	connectOne sync.Once

	// Loop state: touched only by the loop goroutine.
	cfg         *deployment.AgentConfig // last valid deployment
	parsed      int64                   // desired version last parsed; -1: none
	parseErr    error                   // error of the latest desired document, nil when it is cfg
	records     map[string]Record
	saved       map[string]Record // records as last written to the state DB
	identities  map[string]IdentityInfo
	ensured     map[string]bool      // identities ensured during this run
	ensureRetry map[string]ensureTry // back-off of failing EnsureModule calls
	status      LastStatus
}

// desiredDoc is the $edgeAgent desired document as last read.
type desiredDoc struct {
	doc      map[string]any
	version  int64
	seen     bool  // a document has been read from the twin
	notified int64 // highest version a notification announced
}

// ensureTry is the back-off of a failing EnsureModule.
type ensureTry struct {
	failures int
	at       time.Time
	err      error
}

// New checks opts and deps and returns an Agent ready to Run.
func New(opts Options, deps Deps) (*Agent, error) {
	var missing []string
	for _, c := range []struct {
		ok   bool
		name string
	}{
		{deps.Runtime != nil, "Deps.Runtime"}, {deps.Twin != nil, "Deps.Twin"},
		{deps.Identities != nil, "Deps.Identities"}, {deps.State != nil, "Deps.State"},
		{opts.DeviceID != "", "Options.DeviceID"}, {opts.IoTHubHostName != "", "Options.IoTHubHostName"},
		{opts.GatewayHostName != "", "Options.GatewayHostName"},
	} {
		if !c.ok {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("agent: missing %v", missing)
	}
	if opts.Period <= 0 {
		opts.Period = DefaultPeriod
	}
	if opts.ReconcileTimeout <= 0 {
		opts.ReconcileTimeout = DefaultReconcileTimeout
	}
	if opts.RuntimeLogLevel == "" {
		opts.RuntimeLogLevel = "info"
	}
	a := &Agent{
		opts:        opts,
		deps:        deps,
		log:         deps.Logger,
		now:         deps.Now,
		wakeCh:      make(chan struct{}, 1),
		reportCh:    make(chan struct{}, 1),
		sentCh:      make(chan struct{}, 1),
		fetchCh:     make(chan struct{}, 1),
		connected:   make(chan struct{}),
		parsed:      -1,
		records:     map[string]Record{},
		saved:       map[string]Record{},
		identities:  map[string]IdentityInfo{},
		ensured:     map[string]bool{},
		ensureRetry: map[string]ensureTry{},
		status:      LastStatus{Code: deployment.CodeNotRunning, Description: deployment.ErrNotRunning.Error()},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.secrets.Store(&[]string{})
	return a, nil
}

// wake asks the loop for a reconcile; wake-ups coalesce.
func (a *Agent) wake() {
	select {
	case a.wakeCh <- struct{}{}:
	default:
	}
}

// isConnected reports whether Twin.Connect has succeeded.
func (a *Agent) isConnected() bool {
	select {
	case <-a.connected:
		return true
	default:
		return false
	}
}

// errorText is err's text with secrets redacted, for logs and reports.
func (a *Agent) errorText(err error) string {
	if err == nil {
		return ""
	}
	return a.redact(err.Error())
}

// redactErr wraps err so that its text, when logged, is redacted.
func (a *Agent) redactErr(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{text: a.redact(err.Error()), err: err}
}

type redactedError struct {
	text string
	err  error
}

func (e redactedError) Error() string { return e.text }
func (e redactedError) Unwrap() error { return e.err }
