package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// minWait keeps the loop from spinning when a Wait is already due.
const minWait = time.Millisecond

// exitDebounce gathers the exits of modules that end together (a module
// and those that depend on it, a host shutting down) into one reconcile,
// and is short enough to add nothing noticeable to a restart.
const exitDebounce = 50 * time.Millisecond

// Run runs the agent until ctx ends, then returns nil. It may be called
// once per Agent (ErrRunning afterwards): the Twin connects only once.
//
// Run loads the saved state, registers the desired-properties handler and
// the direct methods, connects to the hub in the background, and
// reconciles: at once, on every desired-properties change, when a Wait
// comes due (a back-off or a retry, on its own timer), when a module exits
// (if Deps.Runtime is an ExitWatcher; 50 ms after the first of a burst of
// exits), and Options.Period after each reconcile. Errors are reported to
// the twin and logged, never fatal.
//
// When ctx ends Run reports 406 "Agent is not running" (best effort) and
// returns, leaving every module as it is: stopping the agent never stops
// modules. The caller closes the Twin and the StateDB afterwards.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	a.load()
	a.deps.Twin.OnDesired(a.onDesired)
	a.registerMethods()

	// The reporter outlives ctx a little, to send the shutdown report.
	repCtx, stopReporter := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if w, ok := a.deps.Runtime.(ExitWatcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runExitWatch(ctx, w)
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		a.runLink(ctx)
	}()
	go func() {
		defer wg.Done()
		a.runDesired(ctx)
	}()
	go func() {
		defer wg.Done()
		a.runReporter(repCtx)
	}()
	defer func() {
		stopReporter()
		wg.Wait()
	}()

	for {
		next := a.reconcile(ctx)
		wait := a.opts.Period
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(a.now()), minWait))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			a.log.Info("agent stopping; modules are left running")
			a.shutdownReport()
			return nil
		case <-a.wakeCh:
		case <-t.C:
		}
		t.Stop()
	}
}

// runExitWatch wakes the loop when the runtime reports a module exit, so
// that restart.Decide runs at once rather than at the next period. It
// never blocks the loop: wake-ups coalesce. When the watch cannot be set
// up, or stops, it tries again after Options.Period; meanwhile the periodic
// reconcile still notices exits, only later.
func (a *Agent) runExitWatch(ctx context.Context, w ExitWatcher) {
	for {
		ch, err := w.WatchExits(ctx)
		if err != nil {
			a.log.Warn("cannot watch module exits; exits are noticed at the next reconcile", "err", err, "retry_in", a.opts.Period)
		} else {
			a.forwardExits(ctx, ch)
		}
		t := time.NewTimer(a.opts.Period)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// forwardExits turns the exits read from ch into loop wake-ups, one per
// burst: exitDebounce after the first exit of a burst. It returns when ctx
// ends or ch is closed.
func (a *Agent) forwardExits(ctx context.Context, ch <-chan string) {
	debounce := time.NewTimer(exitDebounce)
	debounce.Stop()
	defer debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return
		case name, ok := <-ch:
			if !ok {
				if pending {
					a.wake()
				}
				if ctx.Err() == nil {
					a.log.Warn("module exit watch stopped; exits are noticed at the next reconcile", "retry_in", a.opts.Period)
				}
				return
			}
			a.log.Debug("module exited", "module", name)
			if !pending {
				pending = true
				debounce.Reset(exitDebounce)
			}
		case <-debounce.C:
			pending = false
			a.wake()
		}
	}
}

// load reads the saved deployment, records and identity information.
// Damaged entries are logged and skipped: the agent then recreates what it
// cannot recognise rather than refusing to start.
func (a *Agent) load() {
	st := a.deps.State
	if raw, err := st.Deployment(); err != nil {
		a.log.Error("cannot read the saved deployment", "err", err)
	} else if raw != nil {
		cfg, err := deployment.ParseAgent(raw)
		if err != nil {
			a.log.Warn("ignoring the saved deployment", "err", deployment.Description(err))
		} else {
			a.cfg = cfg
			a.log.Info("loaded the saved deployment", "version", cfg.Version)
		}
	}
	records, err := st.Records()
	if err != nil {
		a.log.Warn("some module records could not be read", "err", err)
	}
	a.records = records
	if a.records == nil {
		a.records = map[string]Record{}
	}
	a.saved = maps.Clone(a.records)
	if ids, err := st.IdentityInfos(); err != nil {
		a.log.Warn("cannot read saved identity information", "err", err)
	} else {
		a.identities = ids
	}
}

// reconcile runs one cycle: read the deployment, make sure identities
// exist, plan, apply, save, report. It returns when the agent should
// reconcile again at the latest (zero: after Options.Period).
func (a *Agent) reconcile(parent context.Context) time.Time {
	ctx, cancel := context.WithTimeout(parent, a.opts.ReconcileTimeout)
	defer cancel()
	now := a.now()
	a.updateConfig()
	cfg := a.cfg

	next, problems := a.ensureIdentities(ctx, cfg, now)
	inject, keys, err := a.inject(cfg)
	var logins []RegistryLogin
	if a.opts.RegistryLogins != nil {
		logins = a.opts.RegistryLogins()
	}
	a.setSecrets(keys, cfg, logins)
	if err != nil {
		a.fail(cfg, fmt.Errorf("module environment: %w", err), nil, now)
		return now.Add(a.opts.Period)
	}
	d := Desired{
		Config:      cfg,
		Backoff:     a.opts.Backoff,
		Inject:      inject,
		BootTime:    a.opts.BootTime,
		StopTimeout: a.opts.StopTimeout,
		Upstream:    a.opts.ParentHostName,
		Logins:      LoginCredentials(logins),
	}
	listed, err := a.deps.Runtime.List(ctx)
	if err != nil {
		a.fail(cfg, fmt.Errorf("list modules: %w", err), nil, now)
		return now.Add(a.opts.Period)
	}
	current := Merge(listed, a.records)
	cmds := Plan(d, current, now)
	acted := false
	for _, c := range cmds {
		if c.Kind == Wait {
			a.log.Debug("waiting", "command", a.logged(c))
		} else {
			acted = true
		}
	}
	var applyErr error
	if acted {
		w := &pullWatch{Runtime: a.deps.Runtime, a: a, d: d, states: current, cmds: cmds, now: now}
		applyErr = Apply(ctx, w, cmds, Observer{Done: func(c Command, err error) {
			if err != nil && parent.Err() != nil {
				// Interrupted by the agent's shutdown: not the module's
				// failure, so no back-off after the next start.
				a.log.Info("module command interrupted", "command", a.logged(c), "err", a.redactErr(err))
				return
			}
			switch {
			case err == nil:
				a.log.Info("module command done", "command", a.logged(c))
			case errors.Is(err, ErrSkipped):
				a.log.Info("module command skipped after an earlier failure", "command", a.logged(c))
			default:
				a.log.Warn("module command failed", "command", a.logged(c), "err", a.redactErr(err))
			}
			r := a.records[c.Module].Update(c, err, a.now())
			if r.IsZero() {
				delete(a.records, c.Module)
			} else {
				a.records[c.Module] = r
			}
		}})
	}
	a.saveRecords()

	states := current
	if acted {
		if listed, err := a.deps.Runtime.List(ctx); err == nil {
			states = Merge(listed, a.records)
		} else {
			problems = append(problems, a.errorText(fmt.Errorf("list modules: %w", err)))
		}
	}
	a.setStatus(d, applyErr, problems)
	a.publish(Report(d, states, a.status, a.opts.Info, a.now()))

	if at, ok := NextWake(cmds); ok && (next.IsZero() || at.Before(next)) {
		next = at
	}
	return next
}

// fail records a reconcile that could not plan: status 500 with err, and a
// report of what is known.
func (a *Agent) fail(cfg *deployment.AgentConfig, err error, states []ModuleState, now time.Time) {
	a.log.Error("reconcile failed", "err", a.redactErr(err))
	if a.parseErr != nil {
		a.status = a.rejection()
	} else {
		a.status = LastStatus{Code: deployment.CodeFailed, Description: a.errorText(err)}
	}
	d := Desired{Config: cfg, Backoff: a.opts.Backoff, BootTime: a.opts.BootTime}
	a.publish(Report(d, states, a.status, a.opts.Info, now))
}

// rejection is lastDesiredStatus for the latest desired document, which
// parseErr rejected.
func (a *Agent) rejection() LastStatus {
	return LastStatus{Code: deployment.StatusCode(a.parseErr), Description: deployment.Description(a.parseErr), RejectedVersion: a.parsed}
}

// updateConfig parses the twin's desired document when its version
// changed. A valid one becomes the deployment and is saved; an invalid one
// is remembered as parseErr (400, 412 or 417) while the last valid
// deployment keeps running.
func (a *Agent) updateConfig() {
	raw, version, seen, err := a.desiredJSON()
	if !seen || version == a.parsed {
		return
	}
	a.parsed = version
	if err != nil {
		a.parseErr = fmt.Errorf("%w: %w", deployment.ErrInvalid, err)
		return
	}
	cfg, err := deployment.ParseAgent(raw)
	if err != nil {
		a.parseErr = err
		a.log.Warn("deployment rejected; the modules of the last valid one keep running",
			"version", version, "code", deployment.StatusCode(err), "reason", deployment.Description(err))
		return
	}
	a.parseErr = nil
	if a.cfg == nil || a.cfg.Version != cfg.Version || !reflect.DeepEqual(a.cfg, cfg) {
		if err := a.deps.State.PutDeployment(raw); err != nil {
			a.log.Error("cannot save the deployment; an offline boot would start the previous one", "err", err)
		}
		a.log.Info("new deployment", "version", version, "modules", len(cfg.Modules))
	}
	a.cfg = cfg
}

// ensureIdentities makes sure every desired module's identity exists in
// the hub, once per run, retrying failures with back-off. It returns the
// earliest retry and the failures still pending. Identities are created in
// parallel under one timeout, so that an unreachable hub costs a reconcile
// ensureTimeout at most.
func (a *Agent) ensureIdentities(ctx context.Context, cfg *deployment.AgentConfig, now time.Time) (next time.Time, problems []string) {
	if cfg == nil {
		return time.Time{}, nil
	}
	var todo []string
	for _, m := range (Desired{Config: cfg}).Modules() {
		id := IdentityOf(m.Name)
		if a.ensured[id] {
			continue
		}
		if t, ok := a.ensureRetry[id]; ok && now.Before(t.at) {
			problems = append(problems, a.errorText(t.err))
			if next.IsZero() || t.at.Before(next) {
				next = t.at
			}
			continue
		}
		todo = append(todo, id)
	}
	if len(todo) == 0 {
		return next, problems
	}
	type result struct {
		gen string
		err error
	}
	results := make([]result, len(todo))
	ectx, cancel := context.WithTimeout(ctx, ensureTimeout)
	var wg sync.WaitGroup
	for i, id := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen, err := a.deps.Identities.EnsureModule(ectx, id)
			results[i] = result{gen, err}
		}()
	}
	wg.Wait()
	cancel()
	for i, id := range todo {
		r := results[i]
		if r.err != nil {
			t := a.ensureRetry[id]
			t.failures++
			t.at = now.Add(a.retryDelay(t.failures))
			t.err = r.err
			a.ensureRetry[id] = t
			a.log.Warn("cannot create or check a module identity in the hub", "identity", id,
				"retry_at", t.at, "err", a.redactErr(r.err))
			problems = append(problems, a.errorText(r.err))
			if next.IsZero() || t.at.Before(next) {
				next = t.at
			}
			continue
		}
		a.ensured[id] = true
		delete(a.ensureRetry, id)
		if r.gen != "" && a.identities[id].GenerationID != r.gen {
			a.identities[id] = IdentityInfo{GenerationID: r.gen}
			if err := a.deps.State.PutIdentityInfo(id, a.identities[id]); err != nil {
				a.log.Error("cannot save identity information", "identity", id, "err", err)
			}
		}
		a.log.Debug("module identity ready", "identity", id)
	}
	return next, problems
}

// saveRecords writes the records when they changed.
func (a *Agent) saveRecords() {
	if reflect.DeepEqual(a.records, a.saved) {
		return
	}
	if err := a.deps.State.PutRecords(a.records); err != nil {
		a.log.Error("cannot save module records", "err", err)
		return
	}
	a.saved = maps.Clone(a.records)
}

// setStatus sets lastDesiredStatus after a reconcile (edge-runtime-behaviour
// A.5, B.1): the rejection of the latest desired document when it was
// invalid; else 500 when a command failed this time or a module is still
// waiting to retry a failed one (so that the failure stays visible during
// the back-off), or when a module identity could not be created; else 200.
func (a *Agent) setStatus(d Desired, applyErr error, problems []string) {
	switch {
	case a.parseErr != nil:
		a.status = a.rejection()
		return
	case d.Config == nil:
		// No deployment yet, and none saved: nothing is running on our behalf.
		a.status = LastStatus{Code: deployment.CodeNotRunning, Description: deployment.ErrNotRunning.Error()}
		return
	}
	var failures []string
	if applyErr != nil {
		failures = append(failures, strings.Split(a.errorText(applyErr), "\n")...)
	} else {
		failures = append(failures, a.pendingRetries(d)...)
	}
	failures = append(failures, problems...)
	if len(failures) == 0 {
		a.status = LastStatus{Code: deployment.CodeOK}
		return
	}
	a.status = LastStatus{Code: deployment.CodeFailed, Description: d.Config.RedactText(strings.Join(dedupe(failures), "; "))}
}

// pendingRetries describes the modules held back by a failed command that
// still applies to the deployment.
func (a *Agent) pendingRetries(d Desired) []string {
	want := make(map[string]string)
	for _, m := range d.Modules() {
		want[m.Name] = d.Spec(m).Hash
	}
	var out []string
	names := make([]string, 0, len(a.records))
	for name := range a.records {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := a.records[name].Retry
		if r.Failures == 0 {
			continue
		}
		if hash, desired := want[name]; (desired && r.Hash == hash) || (!desired && r.Hash == "") {
			out = append(out, a.redact(r.Err))
		}
	}
	return out
}

func dedupe(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// How often a pull's progress is reported: a "downloading NN%" patch at
// most every downloadReportInterval, and only when the percentage moved by
// downloadReportStep points or more since the last one, so that a large
// image's hundreds of progress events cost a handful of twin updates.
const (
	downloadReportInterval = 2 * time.Second
	downloadReportStep     = 5
)

// downloadThrottle decides which download percentages of one pull are
// worth a report. It has no clock of its own: the caller passes now.
type downloadThrottle struct {
	at      time.Time // of the last report (the pull's start at first)
	percent int       // last reported; -1 before the first percentage
}

// due reports whether percent, at now, is worth a report, and if so
// records it as reported. The first percentage is due once the interval
// has passed since the pull started; later ones also need the step.
func (t *downloadThrottle) due(percent int, now time.Time) bool {
	if now.Sub(t.at) < downloadReportInterval {
		return false
	}
	if t.percent >= 0 && percent-t.percent < downloadReportStep {
		return false
	}
	t.at, t.percent = now, percent
	return true
}

// pullWatch is the runtime Apply uses: it reports "downloading" for the
// modules of a pull while it runs, with the percentage downloaded
// (throttled by downloadThrottle).
type pullWatch struct {
	Runtime
	a      *Agent
	d      Desired
	states []ModuleState
	cmds   []Command
	now    time.Time
}

// Pull marks the modules pulling image, publishes a report, then pulls,
// publishing the percentage downloaded as it grows (never backwards: a
// layer whose size becomes known late does not send it down), at the pace
// downloadThrottle allows.
func (w *pullWatch) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(PullProgress)) error {
	pulling := make(map[string]bool)
	for _, c := range w.cmds {
		if c.Kind == Pull && c.Image == image {
			pulling[c.Module] = true
		}
	}
	names := make([]string, 0, len(pulling))
	for name := range pulling {
		names = append(names, name)
	}
	states := make([]ModuleState, 0, len(w.states)+len(pulling))
	for _, s := range w.states {
		if pulling[s.Name] {
			s.Pulling = true
			delete(pulling, s.Name)
		}
		states = append(states, s)
	}
	for name := range pulling {
		states = append(states, ModuleState{Name: name, State: StateMissing, Pulling: true})
	}
	w.a.publish(Report(w.d, states, w.a.status, w.a.opts.Info, w.now))

	layers := make(pullLayers)
	throttle := downloadThrottle{at: w.a.now(), percent: -1}
	best := -1
	return w.Runtime.Pull(ctx, image, auth, func(p PullProgress) {
		layers.add(p)
		if percent, ok := layers.status().Percent(); ok {
			best = max(best, percent)
			if throttle.due(best, w.a.now()) {
				downloads := make(map[string]int, len(names))
				for _, name := range names {
					downloads[name] = best
				}
				w.a.publish(ReportDownloads(w.d, states, downloads, w.a.status, w.a.opts.Info, w.now))
			}
		}
		if progress != nil {
			progress(p)
		}
	})
}
