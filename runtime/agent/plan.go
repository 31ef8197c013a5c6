package agent

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// DefaultStopTimeout is how long a module may take to stop before it is
// killed, when Desired.StopTimeout is zero.
const DefaultStopTimeout = 30 * time.Second

// Desired is what the agent wants the device to run: the validated
// deployment plus what the agent adds to it.
type Desired struct {
	// Config is the deployment being applied (the last valid $edgeAgent
	// desired properties, or the cached copy on an offline boot). With nil,
	// Plan does nothing at all: no deployment is not "remove everything".
	Config *deployment.AgentConfig
	// Backoff holds the back-off settings (Unit, Cap, ResetAfter,
	// MaxRestarts, Jitter, JitterSeed) for every module; its Kind is
	// ignored, each module's comes from its restartPolicy.
	Backoff restart.Policy
	// Policies, when it has an entry for a module, overrides its policy
	// entirely.
	Policies map[string]restart.Policy
	// Inject holds, per module name, the variables the agent injects into
	// its environment (IOTEDGE_*, EdgeHubConnectionString…). See Env.
	Inject map[string]map[string]string
	// BootTime is when the host (or the module runtime) last started.
	// Modules that exited before it were stopped by the shutdown, not by a
	// failure: they are started again, uncounted and in startup order,
	// whatever their restart policy. Zero disables the rule.
	BootTime time.Time
	// StopTimeout is the grace period given to Stop; DefaultStopTimeout
	// when zero.
	StopTimeout time.Duration
	// Upstream is the parent's host name on a nested edge device; images
	// written "$upstream:<port>/…" are pulled from it. Empty: such images
	// are used as written.
	Upstream string
	// Logins are registry credentials stored on the device (edgectl login,
	// see LoginCredentials), used for a pull when no registryCredentials
	// entry of the deployment applies: the deployment wins for the same
	// registry.
	Logins map[string]deployment.RegistryCredential
}

// Policy returns the restart policy Plan applies to m: Policies[m.Name] if
// present, else Backoff with m's restartPolicy as Kind and a JitterSeed
// mixed with m's name.
func (d Desired) Policy(m deployment.Module) restart.Policy {
	if p, ok := d.Policies[m.Name]; ok {
		return p
	}
	p := d.Backoff
	k, err := restart.ParseKind(m.RestartPolicy)
	if err != nil {
		k = restart.OnUnhealthy // Azure's default; a validated deployment never gets here
	}
	p.Kind = k
	p.JitterSeed = moduleSeed(p.JitterSeed, m.Name)
	return p
}

// moduleSeed mixes the module name into a jitter seed, so that modules that
// crash together are not restarted together.
func moduleSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return seed ^ h.Sum64()
}

// Modules returns the modules Plan manages, in start order: edgeHub first,
// then the user modules by ascending startupOrder, then by name. edgeAgent
// is not among them: it is managed by whoever started the agent.
func (d Desired) Modules() []deployment.Module {
	if d.Config == nil {
		return nil
	}
	var out []deployment.Module
	for _, m := range append([]deployment.Module{d.Config.SystemModules.EdgeHub}, d.Config.ModulesInStartOrder()...) {
		if m.Name != "" && m.Name != deployment.EdgeAgentName { // never in a validated deployment
			out = append(out, m)
		}
	}
	return out
}

func (d Desired) stopTimeout() time.Duration {
	if d.StopTimeout > 0 {
		return d.StopTimeout
	}
	return DefaultStopTimeout
}

// Plan computes the commands that move the modules from current towards d at
// time now. It is pure: it reads no clock and calls no runtime; Apply (or
// Command.Execute) performs the result, and the agent calls Plan again after
// every change, at the earliest Wait (see NextWake), and periodically.
//
// Commands come in this order: removals of modules no longer desired (by
// name), then the desired modules in start order (see Modules), each
// module's commands together. Per module:
//
//	situation                                    commands
//	no current entry (added)                     [pull] create [start]
//	StateMissing (container deleted by hand)     [pull] create [start]
//	spec hash differs (updated)                  [pull] [stop] remove create [start]
//	dead, desired running, restart decided       [pull] remove create restart
//	dead, desired stopped                        [pull] remove create
//	desired stopped, running                     stop (status)
//	desired stopped, exited on its own           stop (status; marks it)
//	desired running, created                     start (no back-off)
//	desired running, stopped by a status change  start (no back-off)
//	desired running, exited before BootTime      start (no back-off)
//	desired running, exited                      restart.Decide: restart | wait | nothing
//	desired running, running                     restart.Decide: stop if unhealthy | reset
//	an earlier command failed (Record.Retry)     wait until Retry.At
//	removed from the deployment                  [stop] remove
//
// [pull] is present when imagePullPolicy is on-create: the image is pulled
// before every create (and, on an update, before the old module is stopped,
// so that a failed pull leaves it running). [start] is present when the
// desired status is running; [stop] when the module runs. Plan never
// touches edgeAgent.
func Plan(d Desired, current []ModuleState, now time.Time) []Command {
	if d.Config == nil {
		return nil
	}
	cur := make(map[string]*ModuleState, len(current))
	for i := range current {
		cur[current[i].Name] = &current[i]
	}
	desired := d.Modules()
	wanted := make(map[string]bool, len(desired))
	for _, m := range desired {
		wanted[m.Name] = true
	}

	var cmds []Command
	var gone []string
	for name := range cur {
		if !wanted[name] && name != deployment.EdgeAgentName {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		cmds = append(cmds, d.planRemoval(cur[name], now)...)
	}
	for _, m := range desired {
		cmds = append(cmds, d.planModule(m, cur[m.Name], now)...)
	}
	return cmds
}

func (d Desired) planRemoval(st *ModuleState, now time.Time) []Command {
	mk := func(k Kind) Command {
		return Command{Kind: k, Module: st.Name, Cause: CauseRemoved, Reason: "removed from the deployment"}
	}
	if st.Record.Retry.pending("", now) {
		return []Command{retryWait(st.Name, "", st.Record.Retry)}
	}
	var cmds []Command
	if st.State == StateRunning {
		c := mk(Stop)
		c.Timeout = d.stopTimeout()
		cmds = append(cmds, c)
	}
	return append(cmds, mk(Remove))
}

func retryWait(name, hash string, r Retry) Command {
	return Command{Kind: Wait, Module: name, Cause: CauseRetry, Hash: hash, At: r.At,
		Reason: fmt.Sprintf("failed %d time(s), retrying at %s: %s", r.Failures, r.At.UTC().Format(time.RFC3339), r.Err)}
}

// planner builds one module's commands.
type planner struct {
	d    Desired
	m    deployment.Module
	spec ModuleSpec
	cmds []Command
}

func (p *planner) add(k Kind, cause Cause, reason string) *Command {
	c := Command{Kind: k, Module: p.m.Name, Cause: cause, Reason: reason, Hash: p.spec.Hash}
	switch k {
	case Pull:
		c.Image = p.spec.Image
		if p.d.Config != nil {
			c.Credential, c.Auth = Credential(c.Image, p.d.Config.Runtime.Settings.RegistryCredentials)
		}
		if c.Auth == nil {
			c.Credential, c.Auth = Credential(c.Image, p.d.Logins)
		}
	case Create:
		spec := p.spec
		c.Spec = &spec
	case Stop, Restart:
		c.Timeout = p.d.stopTimeout()
	}
	p.cmds = append(p.cmds, c)
	return &p.cmds[len(p.cmds)-1]
}

// pull adds a Pull when the module's imagePullPolicy asks for one on create.
func (p *planner) pull(cause Cause, reason string) {
	if p.m.ImagePullPolicy != deployment.PullNever {
		p.add(Pull, cause, reason)
	}
}

func (d Desired) planModule(m deployment.Module, st *ModuleState, now time.Time) []Command {
	p := &planner{d: d, m: m, spec: d.Spec(m)}
	wantRunning := m.Status == deployment.StatusRunning
	if st != nil && st.Record.Retry.pending(p.spec.Hash, now) {
		return []Command{retryWait(m.Name, p.spec.Hash, st.Record.Retry)}
	}

	switch {
	case st == nil, st.State == StateMissing:
		cause, reason := CauseAdded, "added to the deployment"
		if st != nil {
			cause, reason = CauseMissing, "its container is missing"
		}
		p.pull(cause, reason)
		p.add(Create, cause, reason)
		if wantRunning {
			p.add(Start, cause, reason)
		}

	case st.SpecHash != p.spec.Hash:
		const reason = "the deployment changed it"
		p.pull(CauseUpdated, reason)
		if st.State == StateRunning {
			p.add(Stop, CauseUpdated, reason)
		}
		p.add(Remove, CauseUpdated, reason)
		p.add(Create, CauseUpdated, reason)
		if wantRunning {
			p.add(Start, CauseUpdated, reason)
		}

	case st.State == StateDead:
		p.planDead(st, wantRunning, now)

	case !wantRunning:
		if st.State == StateRunning || (st.State == StateExited && st.Record.StoppedFor != CauseStatus) {
			p.add(Stop, CauseStatus, "desired status is stopped")
		}

	default:
		p.planRunning(st, now)
	}
	return p.cmds
}

// planDead recreates a dead module: at once when it is to stay stopped,
// else when the restart policy would restart it after a failure.
func (p *planner) planDead(st *ModuleState, wantRunning bool, now time.Time) {
	const reason = "the container is dead"
	if !wantRunning {
		p.pull(CauseDead, reason)
		p.add(Remove, CauseDead, reason)
		p.add(Create, CauseDead, reason)
		return
	}
	dec := restart.Decide(p.d.Policy(p.m), st.restartStatus(), st.Record.History, now)
	p.reset(dec)
	switch dec.Action {
	case restart.Restart:
		p.pull(CauseDead, reason)
		p.add(Remove, CauseDead, reason)
		p.add(Create, CauseDead, reason)
		p.add(Restart, CauseDead, reason+"; "+dec.Reason)
	case restart.Wait:
		p.add(Wait, CauseDead, reason+"; "+dec.Reason).At = dec.At
	}
}

// planRunning handles a module whose spec is current and that is desired
// running.
func (p *planner) planRunning(st *ModuleState, now time.Time) {
	switch st.State {
	case StateCreated:
		p.add(Start, CauseFirstStart, "created, never started")
		return
	case StateExited:
		switch {
		case st.Record.StoppedFor == CauseStatus:
			p.add(Start, CauseStatus, "desired status is running")
			return
		case stoppedByBoot(st, p.d.BootTime):
			p.add(Start, CauseBoot, "stopped by a shutdown of the host or runtime")
			return
		}
	case StateRunning:
	default:
		return // a state Plan does not know: leave it alone
	}
	dec := restart.Decide(p.d.Policy(p.m), st.restartStatus(), st.Record.History, now)
	p.reset(dec)
	switch dec.Action {
	case restart.Restart:
		p.add(Restart, CauseExited, dec.Reason)
	case restart.Wait:
		p.add(Wait, CauseExited, dec.Reason).At = dec.At
	case restart.Stop:
		p.add(Stop, CauseUnhealthy, dec.Reason)
	}
}

// reset adds a Reset when the decision asks for one; it goes first, so that
// a Restart in the same plan is counted from zero.
func (p *planner) reset(dec restart.Decision) {
	if !dec.ResetHistory {
		return
	}
	reason := dec.Reason
	if dec.Action != restart.None {
		reason = "it ran long enough before this exit: restart history reset"
	}
	p.add(Reset, CauseHealthy, reason)
}

// stoppedByBoot reports whether an exited module was stopped by a shutdown of
// the host or runtime rather than by its own failure: it exited before boot,
// or, when its exit time is unknown (a runtime that lost track of the process
// across the reboot), it was started before boot.
func stoppedByBoot(st *ModuleState, boot time.Time) bool {
	switch {
	case boot.IsZero():
		return false
	case !st.ExitedAt.IsZero():
		return st.ExitedAt.Before(boot)
	default:
		return !st.StartedAt.IsZero() && st.StartedAt.Before(boot)
	}
}
