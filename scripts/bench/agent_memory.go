package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// rssSample is one reading of the device's resident memory, in bytes.
type rssSample struct {
	Agent, Hub     int64
	Supervisors    int64 // the process runtime's module supervisors, together
	SupervisorsPss int64 // their proportional set size, together
}

// rssPeaks are the highest readings of a phase; AgentHub is the highest sum of one
// reading (not the sum of the peaks).
type rssPeaks struct {
	Agent, Hub, AgentHub, Supervisors, SupervisorsPss int64
	Samples                                           int
}

// add takes one sample into the peaks.
func (p *rssPeaks) add(s rssSample) {
	p.Agent = max(p.Agent, s.Agent)
	p.Hub = max(p.Hub, s.Hub)
	p.AgentHub = max(p.AgentHub, s.Agent+s.Hub)
	p.Supervisors = max(p.Supervisors, s.Supervisors)
	p.SupervisorsPss = max(p.SupervisorsPss, s.SupervisorsPss)
	p.Samples++
}

// watchRSS samples read every period until the returned stop is called, which returns
// the peaks and the first read error.
func watchRSS(period time.Duration, read func() (rssSample, error)) (stop func() (rssPeaks, error)) {
	var (
		peaks   rssPeaks
		readErr error
		wg      sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			s, err := read()
			if err != nil {
				readErr = err
				return
			}
			peaks.add(s)
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	})
	return func() (rssPeaks, error) {
		close(done)
		wg.Wait()
		return peaks, readErr
	}
}

// agentMemoryRun is one run of the memory scenario.
type agentMemoryRun struct {
	Idle          rssPeaks // after the deployment settled
	Reconcile     rssPeaks // while the agent applied deployment updates
	ReconcileHWM  int64    // the agent's VmHWM after them
	Updates       int      // deployment updates applied
	Load          rssPeaks // with the load clients
	LoadAgentHWM  int64    // the agent's VmHWM at the end
	LoadHubHWM    int64    // the edge hub's
	AgentSplit    rssSplit // the agent's RSS by kind at the end of the load
	HubSplit      rssSplit // the edge hub's
	P99           time.Duration
	SupervisorsOf int // modules with a supervisor
}

func agentMemoryScenario() scenario {
	return scenario{
		ID:    "agent-memory",
		Title: "Agent: memory",
		Limit: func(s *settings) time.Duration { return pick(s, 15*time.Minute, 4*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runAgentMemory(ctx, s)
		},
	}
}

// Phases of a memory run.
type memoryPhases struct {
	Settle, Idle time.Duration // wait after the deployment, then sample
	Updates      int           // deployment updates during reconciles
	Load         time.Duration // of traffic
}

func memoryPhasesFor(s *settings) memoryPhases {
	return memoryPhases{
		Settle:  pick(s, 10*time.Second, 5*time.Second),
		Idle:    pick(s, 5*time.Second, 2*time.Second),
		Updates: pick(s, 20, 5),
		Load:    pick(s, 10*time.Second, 3*time.Second),
	}
}

// agentRSSEvery is the period of the RSS samples.
const agentRSSEvery = 50 * time.Millisecond

func runAgentMemory(ctx context.Context, s *settings) (*section, error) {
	ph := memoryPhasesFor(s)
	sec := &section{ID: "agent-memory", Title: "Agent: memory (RSS) idle, during reconciles, and agent + hub with 100 clients"}
	sec.Intro = fmt.Sprintf("Process runtime (the embedded default), one fresh device per run: fake hub, agent, and the demo's "+
		"deployment (edge hub, temperature sensor sending every second, filter; routed as in `make run`), plus %d routes "+
		"`pubNNN/outputs/o1 → sink/inputs/input1` and module identities for the load clients. VmRSS from `/proc/<pid>/status` "+
		"every %v: **idle** over %v after the deployment ran and settled for %v; **during reconciles** while the agent applies "+
		"%d deployment updates in a row (each changes the sensor's environment: pull check, stop, remove, create, start, "+
		"report), with VmHWM (the agent's peak) after them; **with 100 clients** while %d publishers and one subscriber send "+
		"%s msg/s in total (1 KB, QoS 1) through the agent's edge hub for %v (its plain listener; each client authenticated "+
		"upstream by the fake hub on its first connection, as the edge hub does). \"agent + hub\" is the highest sum of one "+
		"reading. The modules' supervisors (one small process per module, the agent's executable in its supervisor mode, "+
		"which keeps a module running when the agent stops) are counted apart. The last two rows split the RSS at the end of the "+
		"load (RssAnon, RssFile): file-backed pages are the executable's and the memory-mapped bbolt files', which the kernel "+
		"can drop under pressure. Medians of %d runs with (lowest–highest). "+
		"The Docker runtime's memory is not measured here (the hub then runs in a container, the supervisors are Docker's).",
		memoryClients, human(agentRSSEvery), human(ph.Idle), human(ph.Settle), ph.Updates, memoryClients, thousands(memoryRate), human(ph.Load), s.Runs)
	if err := checkAgentBinaries(s); err != nil {
		return sec, err
	}
	load := startMachineLoad()
	var runs []agentMemoryRun
	for i := range s.Runs {
		if ctx.Err() != nil {
			sec.Notes = append(sec.Notes, fmt.Sprintf("run %d: not run, the scenario's time limit was reached", i+1))
			break
		}
		s.waitQuiet(ctx)
		r, err := measureAgentMemory(ctx, s, ph)
		if err != nil {
			s.Log.Warn("run failed", "case", "agent-memory", "run", i+1, "err", err)
			sec.Notes = append(sec.Notes, fmt.Sprintf("run %d failed: %v", i+1, oneLine(err)))
			continue
		}
		s.Log.Info("run", "case", "agent-memory", "run", i+1, "result", fmt.Sprintf("%+v", r))
		runs = append(runs, r)
	}
	fillMemorySection(sec, runs)
	sec.Notes = append(sec.Notes, load.note())
	return sec, nil
}

// loadModules are the identities of the load clients: memoryClients publishers and the
// sink.
func loadModules() []string {
	ids := []string{benchSink}
	for i := range memoryClients {
		ids = append(ids, publisherModule(i))
	}
	return ids
}

func measureAgentMemory(ctx context.Context, s *settings, ph memoryPhases) (r agentMemoryRun, err error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	env, err := startAgentEnv(rctx, s, agentEnvConfig{Runtime: runtimeProcess, Modules: loadModules()})
	if err != nil {
		return r, err
	}
	defer func() {
		if cerr := env.close(); err == nil && cerr != nil {
			err = fmt.Errorf("clean-up: %w", cerr)
		}
	}()
	m := benchManifest{EdgeHub: env.edgeHubModule(), Modules: []benchModule{env.sensorModule("tempSensor"), env.filterModule()},
		Routes: map[string]string{
			"sensorToFilter": `FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO BrokeredEndpoint("/modules/filter/inputs/input1")`,
			"sensorToCloud":  "FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO $upstream",
			"alertsToCloud":  "FROM /messages/modules/filter/outputs/alertOutput INTO $upstream",
		}}
	for i := range memoryClients {
		p := publisherModule(i)
		m.Routes[p] = fmt.Sprintf(`FROM /messages/modules/%s/outputs/%s INTO BrokeredEndpoint("/modules/%s/inputs/%s")`, p, benchOutput, benchSink, benchInput)
	}
	if err := env.deployAndWait(rctx, m, deployLimit); err != nil {
		return r, err
	}
	hub, err := readModuleRecord(env.agentData, "edgeHub")
	if err != nil || !hub.running() {
		return r, fmt.Errorf("the edge hub's process: %v (state %q)", err, hub.State)
	}
	read := func() (rssSample, error) {
		a, err := env.agentRSS()
		if err != nil {
			return rssSample{}, fmt.Errorf("agent: %w", err)
		}
		h, err := readMemory(hub.Pid)
		if err != nil {
			return rssSample{}, fmt.Errorf("edge hub: %w", err)
		}
		sup, pss, n, err := supervisorsMemory(env.agentData)
		if err != nil {
			return rssSample{}, err
		}
		r.SupervisorsOf = n
		return rssSample{Agent: a.RSS, Hub: h.RSS, Supervisors: sup, SupervisorsPss: pss}, nil
	}

	// Idle.
	if err := sleepCtx(rctx, ph.Settle); err != nil {
		return r, err
	}
	stop := watchRSS(agentRSSEvery, read)
	err = sleepCtx(rctx, ph.Idle)
	if r.Idle, err = joinStop(stop, err); err != nil {
		return r, err
	}

	// Reconciles: each update recreates the sensor.
	stop = watchRSS(agentRSSEvery, read)
	for k := range ph.Updates {
		m.Modules[0].Env["BenchRound"] = k + 1
		if err = env.updateAndWait(rctx, m, "tempSensor"); err != nil {
			break
		}
		r.Updates++
	}
	if r.Reconcile, err = joinStop(stop, err); err != nil {
		return r, fmt.Errorf("update %d: %w", r.Updates+1, err)
	}
	if a, err := env.agentRSS(); err == nil {
		r.ReconcileHWM = a.Peak
	}

	// 100 clients at 1,000 msg/s through the agent's edge hub.
	b, err := env.loadBroker(hub.Pid)
	if err != nil {
		return r, err
	}
	stop = watchRSS(agentRSSEvery, read)
	lat, err := measureLatency(rctx, b, memoryClients, memorySize, memoryRate, 0, ph.Load, 1000)
	if r.Load, err = joinStop(stop, err); err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	r.P99 = lat.P99
	if a, err := env.agentRSS(); err == nil {
		r.LoadAgentHWM = max(a.Peak, r.Load.Agent)
	}
	if h, err := readMemory(hub.Pid); err == nil {
		r.LoadHubHWM = max(h.Peak, r.Load.Hub)
	}
	if r.AgentSplit, err = readRSSSplit(env.agent.pid()); err != nil {
		return r, fmt.Errorf("agent: %w", err)
	}
	if r.HubSplit, err = readRSSSplit(hub.Pid); err != nil {
		return r, fmt.Errorf("edge hub: %w", err)
	}
	return r, nil
}

// joinStop stops a watch and returns its peaks, with err (the phase's) first.
func joinStop(stop func() (rssPeaks, error), err error) (rssPeaks, error) {
	p, serr := stop()
	if err != nil {
		return p, err
	}
	return p, serr
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// updateAndWait deploys m, in which module changed, and waits until the agent has started
// the new module and reported every module running.
func (e *agentEnv) updateAndWait(ctx context.Context, m benchManifest, module string) error {
	wctx, cancel := context.WithTimeout(ctx, deployLimit)
	defer cancel()
	mark := e.agent.mark()
	_, v, err := e.deploy(wctx, m)
	if err != nil {
		return err
	}
	if _, err := e.agent.waitLine(wctx, mark, func(l logLine) bool {
		return l.Msg == "module command done" && l.Kind == "start" && l.Module == module
	}); err != nil {
		return fmt.Errorf("%s not started again: %w", module, err)
	}
	_, _, err = e.api.waitReported(wctx, agentEdge, func(r agentReported) bool {
		if !r.applied(v) {
			return false
		}
		for _, mod := range append([]benchModule{m.EdgeHub}, m.Modules...) {
			if r.status(mod.Name) != "running" {
				return false
			}
		}
		return true
	})
	return err
}

// loadBroker is the agent's edge hub as the load clients of latency.go see a broker: its
// plain listener, the publishers pubNNN with output o1 and the sink, with the keys the
// fake hub gave their identities.
func (e *agentEnv) loadBroker(hubPid int) (*broker, error) {
	keys := map[string]string{}
	for _, m := range loadModules() {
		raw, err := os.ReadFile(filepath.Join(e.dir, "fakehub", "devices", agentEdge, m+".connection-string"))
		if err != nil {
			return nil, err
		}
		cs, err := sas.ParseConnectionString(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m, err)
		}
		keys[m] = cs.SharedAccessKey
	}
	p, err := os.FindProcess(hubPid) // only its pid is used, for the CPU columns
	if err != nil {
		return nil, err
	}
	b := &broker{addr: fmt.Sprintf("127.0.0.1:%d", e.edgeHubPlain), proc: &proc{name: "edgeHub", cmd: &exec.Cmd{Process: p}}}
	expiry := time.Now().Add(24 * time.Hour)
	const host = "localhost" // the fake hub's host name
	spec := func(module, topic string) clientSpec {
		tok, _ := sas.Sign(host+"/devices/"+agentEdge+"/modules/"+module, keys[module], "", expiry) // keys from the hub are valid
		return clientSpec{
			ClientID: iothub.ClientID(agentEdge, module),
			Username: iothub.FormatUsername(host, agentEdge, module, nil),
			Password: tok, Topic: topic,
		}
	}
	b.publisher = func(i int) clientSpec {
		m := publisherModule(i)
		return spec(m, iothub.TelemetryTopic(agentEdge, m, iothub.Bag{{Key: "$.on", Value: benchOutput}}))
	}
	b.subscriber = spec(benchSink, iothub.InputFilter(agentEdge, benchSink))
	return b, nil
}

// fillMemorySection writes the table, notes and the memory check of the scenario.
func fillMemorySection(sec *section, runs []agentMemoryRun) {
	get := func(f func(agentMemoryRun) int64) summary {
		return summarize(values(runs, func(r agentMemoryRun) float64 { return float64(f(r)) }))
	}
	sumCell := func(f func(agentMemoryRun) int64) string {
		s := get(f)
		if s.N == 0 || s.Median == 0 {
			return "–"
		}
		return mebibytes(s)
	}
	supCell := func(f func(agentMemoryRun) rssPeaks) string {
		rss, pss := get(func(r agentMemoryRun) int64 { return f(r).Supervisors }), get(func(r agentMemoryRun) int64 { return f(r).SupervisorsPss })
		if rss.N == 0 || rss.Median == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (PSS %s)", mebibytes(rss), mebibytes(summary{Median: pss.Median, N: 1}))
	}
	loadSum := get(func(r agentMemoryRun) int64 { return r.Load.AgentHub })
	met := loadSum.N > 0 && loadSum.Median <= targetMemoryMB*(1<<20)
	tb := table{Header: []string{"", "agent", "edge hub", "agent + hub", "module supervisors (all)", "target", "verdict"}}
	tb.Rows = append(tb.Rows,
		[]string{"idle, deployment of 3 modules", sumCell(func(r agentMemoryRun) int64 { return r.Idle.Agent }),
			sumCell(func(r agentMemoryRun) int64 { return r.Idle.Hub }), sumCell(func(r agentMemoryRun) int64 { return r.Idle.AgentHub }),
			supCell(func(r agentMemoryRun) rssPeaks { return r.Idle }), "–", "–"},
		[]string{"during reconciles (highest)", sumCell(func(r agentMemoryRun) int64 { return r.Reconcile.Agent }),
			sumCell(func(r agentMemoryRun) int64 { return r.Reconcile.Hub }), sumCell(func(r agentMemoryRun) int64 { return r.Reconcile.AgentHub }),
			supCell(func(r agentMemoryRun) rssPeaks { return r.Reconcile }), "–", "–"},
		[]string{"agent's peak (VmHWM) after the reconciles", sumCell(func(r agentMemoryRun) int64 { return r.ReconcileHWM }), "–", "–", "–", "–", "–"},
		[]string{fmt.Sprintf("%d clients at %s msg/s (highest)", memoryClients, thousands(memoryRate)),
			sumCell(func(r agentMemoryRun) int64 { return r.Load.Agent }), sumCell(func(r agentMemoryRun) int64 { return r.Load.Hub }),
			mebibytes(loadSum), supCell(func(r agentMemoryRun) rssPeaks { return r.Load }), "agent + hub ≤ 40 MB", verdict(met)},
		[]string{"peaks (VmHWM) at the end of the load", sumCell(func(r agentMemoryRun) int64 { return r.LoadAgentHWM }),
			sumCell(func(r agentMemoryRun) int64 { return r.LoadHubHWM }), "–", "–", "–", "–"},
		[]string{"at the end of the load: anonymous (heap, stacks)", sumCell(func(r agentMemoryRun) int64 { return r.AgentSplit.Anon }),
			sumCell(func(r agentMemoryRun) int64 { return r.HubSplit.Anon }), sumCell(func(r agentMemoryRun) int64 { return r.AgentSplit.Anon + r.HubSplit.Anon }), "–", "–", "–"},
		[]string{"… and file-backed (executable, mapped files)", sumCell(func(r agentMemoryRun) int64 { return r.AgentSplit.File }),
			sumCell(func(r agentMemoryRun) int64 { return r.HubSplit.File }), sumCell(func(r agentMemoryRun) int64 { return r.AgentSplit.File + r.HubSplit.File }), "–", "–", "–"},
	)
	sec.Tables = []table{tb}
	if len(runs) > 0 {
		p99 := summarize(values(runs, func(r agentMemoryRun) float64 { return float64(r.P99) }))
		sec.Notes = append([]string{fmt.Sprintf("p99 latency of the load through the agent's edge hub: %s ms; %d module supervisors "+
			"(edge hub, sensor, filter); %d deployment updates applied per run. The target's 40 MB is read as 40 MiB (41.9 MB), "+
			"as in the hub's memory section; the Targets table gives the sum in both units.", millis(p99), runs[0].SupervisorsOf, runs[0].Updates)}, sec.Notes...)
	}
	measured := "no successful run"
	if loadSum.N > 0 {
		measured = fmt.Sprintf("agent + hub %s = %.1f MB (agent %s, hub %s; the %d module supervisors %s more)", mebibytes(loadSum),
			loadSum.Median/1e6, sumCell(func(r agentMemoryRun) int64 { return r.Load.Agent }), sumCell(func(r agentMemoryRun) int64 { return r.Load.Hub }),
			runs[0].SupervisorsOf, supCell(func(r agentMemoryRun) rssPeaks { return r.Load }))
	}
	sec.Checks = append(sec.Checks, check{ID: "agent-memory", Area: "memory, agent + hub, 100 clients at 1,000 msg/s",
		Target: "agent + hub ≤ 40 MB RSS", Measured: measured, Met: met})
}
