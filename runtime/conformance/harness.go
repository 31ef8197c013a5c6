package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Options configure Run.
type Options struct {
	// Spec is the module's spec (Parse, ReadSpec); its zero value declares nothing and
	// takes every default.
	Spec Spec
	// ModuleName names the module when Spec.Module is empty.
	ModuleName string
	// Runner starts the module. Required.
	Runner Runner
	// Env is added to the module's environment over Spec.Env.
	Env map[string]string
	// WorkDir holds the fake IoT Hub's and the edge hub's data; "" is a temporary
	// directory removed at the end of the run.
	WorkDir string
	// Logger receives the harness's logs and those of its fake IoT Hub and edge hub;
	// discarded when nil.
	Logger *slog.Logger
	// Now is the clock of the report's times and the measured durations; time.Now when
	// nil. (Timeouts use real time.)
	Now func() time.Time
}

// Harness identities and names.
const (
	// EdgeDeviceID is the harness's edge device.
	EdgeDeviceID = "conformance-edge"
	// GatewayHostName is the name the module dials (the edge hub's certificate carries it,
	// and it resolves to the loopback address).
	GatewayHostName = "localhost"
)

// Harness timings that the spec does not set.
const (
	setupTimeout   = 30 * time.Second
	pollInterval   = 50 * time.Millisecond
	reconnectBatch = 3 // messages sent before and after the restart
	methodRetryGap = 200 * time.Millisecond
)

// harness is one run.
type harness struct {
	spec   Spec
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	dir    string
	tmpDir bool

	fake   *fakehub.Server
	events *eventLog
	edge   *edgeHub
	probe  *probe

	moduleCS     sas.ConnectionString
	generationID string
	moduleID     string // the module's client id, {edge}/{module}
	probeID      string

	inst           Instance
	resourceSource string          // what measures the module's resources; "" for /proc
	alive          context.Context // ends when the module exits (or the run's ctx ends)
	started        time.Time       // the module's start
	conn           event           // the module's first connection
}

// Run runs the module against a fake IoT Hub and a real edge hub, checks it and returns
// the report. An error means the run could not be made (ErrSpec, ErrTarget, ErrHarness);
// a module that fails checks is a report with Failed > 0 and no error. Run takes as long
// as the checks take: seconds for a conforming module, up to the spec's timeouts for one
// that does not answer.
func Run(ctx context.Context, opts Options) (*Report, error) {
	spec := opts.Spec
	if spec.Module == "" {
		spec.Module = opts.ModuleName
	}
	spec, err := spec.WithDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Runner == nil {
		return nil, fmt.Errorf("%w: no runner", ErrTarget)
	}
	for k := range opts.Env {
		if injected[k] {
			return nil, fmt.Errorf("%w: env: %s is injected by the harness and cannot be set", ErrSpec, k)
		}
	}
	h := &harness{spec: spec, opts: opts, log: opts.Logger, now: opts.Now, events: newEventLog()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	defer h.teardown()
	if err := h.setup(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHarness, err)
	}
	return h.run(ctx)
}

// setup starts the fake IoT Hub, registers the identities, starts the edge hub and
// connects the probe.
func (h *harness) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	h.dir = h.opts.WorkDir
	if h.dir == "" {
		d, err := os.MkdirTemp("", "outpost-conformance-")
		if err != nil {
			return err
		}
		h.dir, h.tmpDir = d, true
	}
	h.fake = &fakehub.Server{DataDir: filepath.Join(h.dir, "fakehub"), Logger: h.log.With("component", "fakehub")}
	if err := h.fake.Start(ctx); err != nil {
		h.fake = nil
		return fmt.Errorf("fake IoT Hub: %w", err)
	}
	edge := fakehub.Device{DeviceID: EdgeDeviceID}
	edge.Capabilities.IoTEdge = true
	if _, err := h.fake.PutDevice(edge, ""); err != nil {
		return fmt.Errorf("register the edge device: %w", err)
	}
	var seed []identities.Record
	for _, id := range []string{h.spec.Module, ProbeModule} {
		m, err := h.fake.PutModule(fakehub.Module{DeviceID: EdgeDeviceID, ModuleID: id}, "")
		if err != nil {
			return fmt.Errorf("register module %q: %w", id, err)
		}
		keys, err := h.fake.IdentityKeys(sas.Identity{DeviceID: EdgeDeviceID, ModuleID: id})
		if err != nil {
			return fmt.Errorf("keys of module %q: %w", id, err)
		}
		seed = append(seed, identities.Record{DeviceID: EdgeDeviceID, ModuleID: id, Keys: keys, GenerationID: m.GenerationID})
		if id == h.spec.Module {
			h.generationID = m.GenerationID
		}
	}
	modCS, err := h.connectionString(h.spec.Module)
	if err != nil {
		return err
	}
	probeCS, err := h.connectionString(ProbeModule)
	if err != nil {
		return err
	}
	hubCS, err := h.connectionString(hub.HubModuleID)
	if err != nil {
		return err
	}
	hubCS.GatewayHostName = "" // the link goes to IoT Hub itself
	h.moduleCS = modCS
	h.moduleID = EdgeDeviceID + "/" + h.spec.Module
	h.probeID = EdgeDeviceID + "/" + ProbeModule

	// The routes go in the $edgeHub twin, as a deployment puts them, and are applied
	// before the hub serves, so that they are in force from the first message.
	desired := h.hubConfig()
	raw, _ := json.Marshal(desired) // maps of strings always marshal
	routes, err := deployment.ParseHub(raw)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	var patch fakehub.TwinPatch
	patch.Properties.Desired = desired
	if _, err := h.fake.PatchTwin(EdgeDeviceID, hub.HubModuleID, patch, ""); err != nil {
		return fmt.Errorf("$edgeHub twin: %w", err)
	}
	_, fakePort, err := splitPort(h.fake.MQTTAddress())
	if err != nil {
		return err
	}
	methodTimeout := DefaultMethodTimeout
	for _, m := range h.spec.Methods {
		methodTimeout = max(methodTimeout, duration(m.TimeoutSeconds))
	}
	h.edge, err = newEdgeHub(filepath.Join(h.dir, "edgehub"), hub.Options{
		IoTHubHostName: modCS.HostName, GatewayHostName: GatewayHostName, EdgeDeviceID: EdgeDeviceID,
		TLSAddr: "127.0.0.1:0", RetryMin: hubRetryMin, RetryMax: hubRetryMax, AckTimeout: hubAckTimeout,
		ReportedSyncInterval: hubReportedSync, MethodTimeout: methodTimeout + 5*time.Second,
	}, hubCS, h.fake.CAFile(), fakePort, routes, seed, h.events, h.log)
	if err != nil {
		return err
	}
	if err := h.edge.start(ctx); err != nil {
		return err
	}
	_, hubPort, err := splitPort(h.edge.opts.TLSAddr)
	if err != nil {
		return err
	}
	h.probe, err = newProbe(ctx, probeCS, h.edge.caFile, hubPort, h.now, h.log.With("component", "probe"))
	if err != nil {
		return fmt.Errorf("probe client: %w", err)
	}
	return nil
}

// connectionString is the module id's connection string through the edge hub.
func (h *harness) connectionString(moduleID string) (sas.ConnectionString, error) {
	s, err := h.fake.ModuleConnectionString(EdgeDeviceID, moduleID)
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("connection string of %q: %w", moduleID, err)
	}
	cs, err := sas.ParseConnectionString(s)
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("connection string of %q: %w", moduleID, err)
	}
	cs.GatewayHostName = GatewayHostName
	return cs, nil
}

// hubConfig is the $edgeHub desired properties: a route from each probe output to the
// module input it feeds, and from each module output to the probe.
func (h *harness) hubConfig() map[string]any {
	routes := map[string]any{}
	for i, in := range h.spec.Inputs {
		routes[fmt.Sprintf("conformanceInput%d", i)] = fmt.Sprintf(`FROM /messages/modules/%s/outputs/%s INTO BrokeredEndpoint("/modules/%s/inputs/%s")`,
			ProbeModule, probeOutput(in.Name), h.spec.Module, in.Name)
	}
	for i, out := range h.spec.Outputs {
		routes[fmt.Sprintf("conformanceOutput%d", i)] = fmt.Sprintf(`FROM /messages/modules/%s/outputs/%s INTO BrokeredEndpoint("/modules/%s/inputs/%s")`,
			h.spec.Module, out.Name, ProbeModule, probeInput(out.Name))
	}
	return map[string]any{
		"schemaVersion":                "1.1",
		"routes":                       routes,
		"storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 3600},
	}
}

// teardown stops whatever setup and run started, the module first.
func (h *harness) teardown() {
	if h.inst != nil {
		select {
		case <-h.inst.Done():
		default:
			_ = h.inst.Kill()
			select {
			case <-h.inst.Done():
			case <-time.After(5 * time.Second):
				h.log.Warn("the module did not exit after SIGKILL", "pid", h.inst.PID())
			}
		}
		if err := h.inst.Close(); err != nil {
			// An error: a container may be left behind.
			h.log.Error("releasing the module", "target", h.opts.Runner.Describe(), "err", err)
		}
	}
	if h.probe != nil {
		h.probe.close()
	}
	if h.edge != nil {
		if err := h.edge.stop(); err != nil {
			h.log.Warn("stopping the edge hub", "err", err)
		}
	}
	if h.fake != nil {
		if err := h.fake.Close(); err != nil {
			h.log.Warn("stopping the fake IoT Hub", "err", err)
		}
	}
	if h.tmpDir {
		if err := os.RemoveAll(h.dir); err != nil {
			h.log.Warn("removing the work directory", "dir", h.dir, "err", err)
		}
	}
}

// run starts the module and runs the checks in order.
func (h *harness) run(ctx context.Context) (*Report, error) {
	rep := &Report{Module: h.spec.Module, Target: h.opts.Runner.Describe(), Started: h.now()}
	_, port, _ := splitPort(h.edge.opts.TLSAddr) // checked by setup
	env := moduleEnv(h.moduleCS, h.generationID, h.edge.caFile, port, mergeEnv(h.spec.Env, h.opts.Env))
	inst, err := h.opts.Runner.Start(ctx, env)
	if err != nil {
		return nil, err
	}
	h.inst, h.started = inst, h.now()
	alive, stopAlive := context.WithCancel(ctx)
	defer stopAlive()
	go func() {
		select {
		case <-inst.Done():
			stopAlive()
		case <-alive.Done():
		}
	}()
	h.alive = alive

	var smp *sampler
	sampled := make(chan struct{})
	if rs, ok := inst.(ResourceSampler); ok {
		smp = &sampler{read: rs.SampleResources, interval: rs.SampleInterval(), now: h.now}
		h.resourceSource = rs.ResourceSource()
	} else if pid := inst.PID(); pid > 0 {
		smp = procSampler("/proc", pid, h.now)
	}
	if smp != nil {
		sctx, stop := context.WithCancel(ctx)
		go func() {
			defer close(sampled)
			smp.run(sctx)
		}()
		go func() {
			<-inst.Done()
			stop()
		}()
	} else {
		close(sampled)
	}

	var results []Result
	record := func(rs ...Result) {
		for _, r := range rs {
			h.log.Info("check done", "check", r.Name, "verdict", string(r.Verdict), "evidence", r.Evidence)
		}
		results = append(results, rs...)
	}
	h.log.Info("module started", "module", h.spec.Module, "target", h.opts.Runner.Describe(), "pid", inst.PID())
	connect := h.checkConnect()
	record(connect)
	if connect.Verdict == Pass {
		record(h.checkIO()...)
		record(h.checkTwin())
		record(h.checkMethods()...)
		record(h.checkReconnect())
	} else {
		why := "the module never connected"
		for _, name := range h.dependentChecks() {
			record(Result{Name: name, Verdict: Skip, Evidence: why})
		}
	}
	record(h.checkSigterm(ctx))
	<-sampled
	record(h.checkIdentity())
	var u usage
	if smp != nil {
		u = smp.usage()
	}
	record(h.checkMemory(smp != nil, u), h.checkCPU(smp != nil, u))

	for _, name := range reportOrder(results) {
		for _, r := range results {
			if r.Name == name {
				rep.add(r)
			}
		}
	}
	rep.ModuleOutput = inst.Output()
	rep.Duration = h.now().Sub(rep.Started)
	rep.DurationSeconds = rep.Duration.Seconds()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("conformance run interrupted: %w", err)
	}
	return rep, nil
}

// dependentChecks are the checks that need a connected module, by name.
func (h *harness) dependentChecks() []string {
	var out []string
	for _, in := range h.spec.Inputs {
		out = append(out, CheckInput+"/"+in.Name)
	}
	if len(h.spec.Inputs) == 0 {
		out = append(out, CheckInput)
	}
	for _, o := range h.spec.Outputs {
		out = append(out, CheckOutput+"/"+o.Name)
	}
	if len(h.spec.Outputs) == 0 {
		out = append(out, CheckOutput)
	}
	out = append(out, CheckTwin)
	for _, m := range h.spec.Methods {
		out = append(out, CheckMethod+"/"+m.Name)
	}
	if len(h.spec.Methods) == 0 {
		out = append(out, CheckMethod)
	}
	return append(out, CheckReconnect)
}

// reportOrder sorts result names by the order of the Check constants, keeping the spec's
// order within a kind.
func reportOrder(results []Result) []string {
	order := []string{CheckConnect, CheckIdentity, CheckInput, CheckOutput, CheckTwin, CheckMethod,
		CheckReconnect, CheckSigterm, CheckMemory, CheckCPU}
	var out []string
	for _, kind := range order {
		for _, r := range results {
			if r.Name == kind || len(r.Name) > len(kind) && r.Name[:len(kind)+1] == kind+"/" {
				out = append(out, r.Name)
			}
		}
	}
	return out
}

// mergeEnv returns a's variables overridden by b's.
func mergeEnv(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// splitPort returns the host and port of a host:port address.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	return host, n, nil
}

// moduleExited describes how the module ended, for evidence ("" while it runs).
func (h *harness) moduleExited() string {
	select {
	case <-h.inst.Done():
		return fmt.Sprintf("the module exited with code %d", h.inst.ExitCode())
	default:
		return ""
	}
}

// ms formats a measured duration to the millisecond ("<1ms" below it).
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return "<1ms"
	}
	return d.Round(time.Millisecond).String()
}
