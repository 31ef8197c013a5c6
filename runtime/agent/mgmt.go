package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// ManagementServer serves the agent's local management API, what edgectl
// talks to: HTTP/1.1 over the unix socket Path (ManagementSocket in the
// data directory), mode Mode, so that only the agent's user (and, with
// 0660, its group) may use it. There is no other authentication: whoever
// can open the socket may restart modules and read their logs.
//
//	GET  /modules                     []ModuleInfo, sorted by name
//	GET  /modules/{name}/logs         the module's output as text/plain,
//	     ?tail=N|all&since=T&until=T&follow=true&timestamps=true
//	     (T: a duration before now "10m" "1d", RFC 3339, or Unix seconds);
//	     streamed, and kept open with follow until the client leaves
//	POST /modules/{name}/restart      stop and start a running module, as the
//	                                  RestartModule direct method: 204; 404
//	                                  unknown module, 409 not running
//	GET  /status                      AgentStatus
//	GET  /config                      Config as JSON (the caller redacts it)
//
// Errors answer {"message": "..."} (ManagementError) with 400, 404, 405,
// 409 or 500. Module statuses are computed live from the runtime, the
// saved deployment and records, and the running pulls, with the same rules
// as the reported properties, so a crash shows at once rather than at the
// next report.
//
// Set the fields, then call Run. Runtime is required; the others are
// optional: without Agent the API knows only what the runtime says.
type ManagementServer struct {
	// Path is the socket's path. Required.
	Path string
	// Mode is the socket's file mode; 0600 when zero.
	Mode os.FileMode
	// Runtime runs the modules. Required. Give the same PullTracker as the
	// agent's, to show download progress.
	Runtime Runtime
	// Agent, when set, supplies the deployment, the module records, the
	// reported deployment status and the hub connection, and is woken after
	// a restart. Its secrets are redacted from logs and errors.
	Agent *Agent
	// Pulls, when set, tells which images are being pulled.
	Pulls interface{ Pulls() map[string]PullStatus }
	// Info fills GET /status: Version, Runtime, DeviceID, IoTHubHostName,
	// DataDir (the rest is computed).
	Info AgentStatus
	// Config is what GET /config answers, encoded as JSON. Secrets must
	// already be removed.
	Config any
	// Logger receives the server's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu      sync.Mutex
	started time.Time
	hub     HubStatus
	hubSeen bool // OnHubConnection has been called
}

// maxSocketPath is the longest unix socket path every platform accepts
// (sun_path is 108 bytes on Linux, 104 on macOS and BSDs).
const maxSocketPath = 103

// Timeouts of the management server.
const (
	mgmtReadHeaderTimeout = 10 * time.Second
	mgmtShutdownTimeout   = 5 * time.Second
)

// OnHubConnection records a change of the agent's connection to the hub,
// for GET /status. Its signature is moduleclient.Client's
// OnConnectionChange handler's, so cmd/edgeagent registers it there.
func (s *ManagementServer) OnHubConnection(connected bool, err error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	state := HubDisconnected
	if connected {
		state = HubConnected
	}
	if !s.hubSeen || s.hub.State != state {
		s.hub.Since = now
	}
	s.hub.State, s.hubSeen = state, true
	if err != nil {
		msg := err.Error()
		if s.Agent != nil {
			msg = s.Agent.redact(msg)
		}
		s.hub.LastError = msg
	}
}

func (s *ManagementServer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *ManagementServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run listens on Path and serves the API until ctx ends, then removes the
// socket and returns nil. A stale socket file left by a crashed agent is
// replaced; a socket another process answers on is ErrSocketInUse. Open
// log streams end with ctx.
func (s *ManagementServer) Run(ctx context.Context) error {
	switch {
	case s.Path == "":
		return errors.New("management server: Path is empty")
	case s.Runtime == nil:
		return errors.New("management server: Runtime is nil")
	}
	mode := s.Mode
	if mode == 0 {
		mode = 0o600
	}
	l, err := listenUnix(s.Path, mode)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.started = s.now()
	s.mu.Unlock()
	log := s.logger()
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: mgmtReadHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("management API listening", "socket", s.Path)
	select {
	case err := <-errc:
		return fmt.Errorf("management server %q: %w", s.Path, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mgmtShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// listenUnix listens on the unix socket path with the given mode,
// replacing a stale socket file.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("management socket %q: the path is %d bytes, over the %d a unix socket allows; use a shorter data directory", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("management socket %q: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("management socket %q: %w (is another agent running with this data directory?)", path, ErrSocketInUse)
		}
		// Left by an agent that did not stop cleanly.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("management socket %q: remove the stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("management socket %q: %w", path, err)
	}
	// The data directory is 0700, so the socket is never reachable by
	// others before this.
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("management socket %q: %w", path, err)
	}
	return l, nil
}

func (s *ManagementServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /modules", s.handleModules)
	mux.HandleFunc("GET /modules/{name}/logs", s.handleLogs)
	mux.HandleFunc("POST /modules/{name}/restart", s.handleRestart)
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("GET /config", s.handleConfig)
	return mux
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // a write error means the client left
}

// writeError answers err with the status its category calls for, and logs
// server-side failures.
func (s *ManagementServer) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrModuleNotRunning):
		status = http.StatusConflict
	}
	msg := err.Error()
	if s.Agent != nil {
		msg = s.Agent.redact(msg)
	}
	if status == http.StatusInternalServerError {
		s.logger().Warn("management request failed", "method", r.Method, "path", r.URL.Path, "err", msg)
	}
	writeJSON(w, status, ManagementError{Message: msg})
}

// view is what the API knows beyond the runtime.
type view struct {
	desired Desired
	records map[string]Record
}

// view reads the saved deployment and records from the agent's state
// database (safe from any goroutine, unlike the agent's loop state).
func (s *ManagementServer) view() (view, error) {
	var v view
	a := s.Agent
	if a == nil {
		return v, nil
	}
	v.desired = Desired{Backoff: a.opts.Backoff, BootTime: a.opts.BootTime, Upstream: a.opts.ParentHostName}
	raw, err := a.deps.State.Deployment()
	if err != nil {
		return v, err
	}
	if raw != nil {
		if cfg, err := deployment.ParseAgent(raw); err == nil {
			v.desired.Config = cfg
		}
	}
	// A record that cannot be decoded is left out, as the agent does.
	v.records, _ = a.deps.State.Records()
	return v, nil
}

func (s *ManagementServer) handleModules(w http.ResponseWriter, r *http.Request) {
	listed, err := s.Runtime.List(r.Context())
	if err != nil {
		s.writeError(w, r, fmt.Errorf("list modules: %w", err))
		return
	}
	v, err := s.view()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var pulls map[string]PullStatus
	if s.Pulls != nil {
		pulls = s.Pulls.Pulls()
	}
	now := s.now()
	mods := Modules(v.desired, listed, v.records, pulls, now)
	if s.Agent != nil && !listedName(listed, deployment.EdgeAgentName) {
		mods = append(mods, s.agentRow(v.desired, now))
		sortModules(mods)
	}
	writeJSON(w, http.StatusOK, mods)
}

// agentRow describes the agent itself when the runtime does not run it (the
// process runtime): it runs, since it answers, since the server started.
func (s *ManagementServer) agentRow(d Desired, now time.Time) ModuleInfo {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	m := ModuleInfo{Name: deployment.EdgeAgentName, RuntimeStatus: StatusRunning, StartedAt: started, Desired: d.Config != nil}
	if d.Config != nil {
		m.Image = d.Config.SystemModules.EdgeAgent.Image
	}
	m.Description = Describe(m, now)
	return m
}

func listedName(listed []ModuleState, name string) bool {
	for _, m := range listed {
		if m.Name == name {
			return true
		}
	}
	return false
}

func sortModules(mods []ModuleInfo) {
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
}

func (s *ManagementServer) handleRestart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.restart(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.logger().Info("module restarted through the management API", "module", name)
	w.WriteHeader(http.StatusNoContent)
}

// restart stops and starts a running module, as the RestartModule direct
// method does: not counted as a restart by the restart policy.
func (s *ManagementServer) restart(ctx context.Context, name string) error {
	listed, err := s.Runtime.List(ctx)
	if err != nil {
		return fmt.Errorf("list modules: %w", err)
	}
	var st *ModuleState
	for i := range listed {
		if listed[i].Name == name {
			st = &listed[i]
		}
	}
	switch {
	case st == nil && name == deployment.EdgeAgentName:
		return fmt.Errorf("module %q: %w: the agent does not run as a module here; restart the edgeagent service instead", name, ErrNotFound)
	case st == nil:
		return fmt.Errorf("module %q: %w", name, ErrNotFound)
	case st.State != StateRunning:
		return fmt.Errorf("module %q cannot be restarted: %w (%s)", name, ErrModuleNotRunning, st.State)
	}
	if s.Agent != nil {
		err := s.Agent.restartModule(ctx, name)
		s.Agent.wake()
		return err
	}
	if err := s.Runtime.Stop(ctx, name, DefaultStopTimeout); err != nil {
		return fmt.Errorf("module %q: stop: %w", name, err)
	}
	if err := s.Runtime.Start(ctx, name); err != nil {
		return fmt.Errorf("module %q: start: %w", name, err)
	}
	return nil
}

func (s *ManagementServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

// status assembles GET /status.
func (s *ManagementServer) status() AgentStatus {
	st := s.Info
	st.PID = os.Getpid()
	s.mu.Lock()
	st.StartedAt = s.started
	hub, seen := s.hub, s.hubSeen
	s.mu.Unlock()
	a := s.Agent
	if a == nil {
		st.Hub = HubStatus{State: HubUnknown}
		return st
	}
	if st.Version == "" {
		st.Version = a.opts.Info.Version
	}
	if st.Runtime == "" {
		st.Runtime = a.opts.Info.Platform.Version
	}
	if st.DeviceID == "" {
		st.DeviceID = a.opts.DeviceID
	}
	if st.IoTHubHostName == "" {
		st.IoTHubHostName = a.opts.IoTHubHostName
	}
	switch {
	case seen:
		st.Hub = hub
	case a.isConnected():
		st.Hub = HubStatus{State: HubConnected}
	default:
		st.Hub = HubStatus{State: HubConnecting}
	}
	st.Deployment = a.deploymentStatus()
	return st
}

// deploymentStatus reads what the agent last reported about its deployment,
// the desired version it last read, and the saved deployment's version.
func (a *Agent) deploymentStatus() DeploymentStatus {
	var d DeploymentStatus
	a.desiredMu.Lock()
	if a.desired.seen {
		d.DesiredVersion = a.desired.version
	}
	a.desiredMu.Unlock()
	if raw, err := a.deps.State.Deployment(); err == nil && raw != nil {
		var doc struct {
			Version int64 `json:"$version"`
		}
		if json.Unmarshal(raw, &doc) == nil {
			d.SavedVersion = doc.Version
		}
	}
	rep, _ := a.latestReport()
	if rep == nil {
		return d
	}
	d.LastDesiredVersion, _ = intOf(rep["lastDesiredVersion"])
	if last, ok := rep["lastDesiredStatus"].(map[string]any); ok {
		code, _ := intOf(last["code"])
		d.Code = int(code)
		d.Description, _ = last["description"].(string)
	}
	return d
}

// intOf reads a JSON number as the reports hold them.
func intOf(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

func (s *ManagementServer) handleConfig(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config
	if cfg == nil {
		cfg = map[string]any{}
	}
	writeJSON(w, http.StatusOK, cfg)
}
