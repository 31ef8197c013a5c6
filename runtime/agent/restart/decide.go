package restart

import (
	"fmt"
	"time"
)

// Health is the result of a module's health check, as the runtime reports it.
type Health int

// Health values. Docker reports "starting" until the first check passes.
const (
	NoHealthCheck  Health = iota // the module has no health check
	HealthStarting               // checks have not passed yet
	Healthy
	Unhealthy
)

// String returns Docker's spelling ("none" for NoHealthCheck).
func (h Health) String() string {
	switch h {
	case NoHealthCheck:
		return "none"
	case HealthStarting:
		return "starting"
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	}
	return fmt.Sprintf("Health(%d)", int(h))
}

// Status is what the runtime reports about a module, seen by the policy.
type Status struct {
	// Running is true while the module's process runs.
	Running bool
	// Health is the health check result of a running module.
	Health Health
	// Exited is true when the module has run and is no longer running.
	// Running and Exited both false means it was never started.
	Exited bool
	// ExitCode is the exit code of the last run (Exited only).
	ExitCode int
	// Failed marks an exit as a failure whatever ExitCode says: the
	// container is dead, or the agent stopped it because it was unhealthy.
	// (A kill by a signal already shows as a non-zero ExitCode.)
	Failed bool
	// StartedAt and ExitedAt are the runtime's times of the last start and
	// exit; zero when unknown.
	StartedAt, ExitedAt time.Time
}

// History is the restart history the agent keeps for a module.
type History struct {
	// RestartCount is the number of restarts since the last reset.
	RestartCount int `json:"restartCount,omitempty"`
	// LastRestart is when the agent last restarted the module, by the
	// agent's clock; zero if never.
	LastRestart time.Time `json:"lastRestart,omitzero"`
}

// active reports whether there is anything to reset.
func (h History) active() bool { return h.RestartCount > 0 || !h.LastRestart.IsZero() }

// Action is what Decide wants done.
type Action int

// Actions.
const (
	None    Action = iota // nothing: the policy does not restart this module, or it runs fine
	Restart               // restart (or, if never started, start) the module now
	Wait                  // restart it at Decision.At, not before
	GiveUp                // MaxRestarts reached: leave the module down and report it failed
	Stop                  // stop the running, unhealthy module; it is restarted after the back-off
)

// String returns the lower-case action name.
func (a Action) String() string {
	switch a {
	case None:
		return "none"
	case Restart:
		return "restart"
	case Wait:
		return "wait"
	case GiveUp:
		return "give-up"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is the result of Decide.
type Decision struct {
	Action Action
	// At is when the restart is due (Wait only).
	At time.Time
	// Reason says why, in words fit for a log line or statusDescription.
	Reason string
	// ResetHistory asks the caller to clear the module's History: it has run
	// long enough without being unhealthy. It can accompany any Action.
	ResetHistory bool
}

// Decide applies policy p to a module in status st with restart history h at
// time now. It is pure: see the package documentation for the rules, each of
// which is a row of TestDecide.
func Decide(p Policy, st Status, h History, now time.Time) Decision {
	p = p.normalized()
	switch {
	case st.Running:
		return decideRunning(p, st, h, now)
	case !st.Exited:
		return Decision{Action: Restart, Reason: "never started: start without back-off"}
	}
	return decideExited(p, st, h, now)
}

func decideRunning(p Policy, st Status, h History, now time.Time) Decision {
	if st.Health == Unhealthy {
		switch {
		case p.Kind < OnUnhealthy:
			return Decision{Reason: fmt.Sprintf("unhealthy; restart policy %s does not act on health", p.Kind)}
		case p.MaxRestarts > 0 && h.RestartCount >= p.MaxRestarts:
			// Stopping it would only leave it down for good.
			return Decision{Reason: fmt.Sprintf("unhealthy; left running because the restart limit (%d) is reached", p.MaxRestarts)}
		}
		return Decision{Action: Stop, Reason: "unhealthy: stopping it to restart it"}
	}
	d := Decision{Reason: "running"}
	if h.active() && (st.Health == NoHealthCheck || st.Health == Healthy) && !st.StartedAt.IsZero() {
		if ran := now.Sub(st.StartedAt); ran >= p.ResetAfter {
			d.ResetHistory = true
			d.Reason = fmt.Sprintf("running for %s: restart history reset", ran.Round(time.Second))
		}
	}
	return d
}

func decideExited(p Policy, st Status, h History, now time.Time) Decision {
	what := fmt.Sprintf("exited with code %d", st.ExitCode)
	if st.Failed {
		what = fmt.Sprintf("failed (exit code %d)", st.ExitCode)
	}
	failure := st.Failed || st.ExitCode != 0
	switch {
	case p.Kind == Never:
		return Decision{Reason: what + "; restart policy never"}
	case p.Kind < Always && !failure:
		return Decision{Reason: what + "; restart policy " + p.Kind.String() + " restarts only after a failure"}
	}

	d := Decision{}
	n := h.RestartCount
	if h.active() && !st.StartedAt.IsZero() && !st.ExitedAt.IsZero() && st.ExitedAt.Sub(st.StartedAt) >= p.ResetAfter {
		// It ran long enough before this exit: a fresh start, not a crash loop.
		n, d.ResetHistory = 0, true
	}
	if p.MaxRestarts > 0 && n >= p.MaxRestarts {
		d.Action = GiveUp
		d.Reason = fmt.Sprintf("%s; gave up after %d restarts (maxRestarts %d)", what, n, p.MaxRestarts)
		return d
	}

	base, from := st.ExitedAt, "exit"
	if base.IsZero() || base.After(now) {
		// Unknown or future exit time: count from the agent's own record.
		base, from = h.LastRestart, "last restart"
		if base.IsZero() || base.After(now) {
			d.Action = Restart
			d.Reason = fmt.Sprintf("%s; restart %d now (exit time unknown or in the future)", what, n+1)
			return d
		}
	}
	delay := p.delay(n, base)
	if at := base.Add(delay); now.Before(at) {
		d.Action, d.At = Wait, at
		d.Reason = fmt.Sprintf("%s; restart %d at %s (back-off %s from %s)", what, n+1, at.UTC().Format(time.RFC3339), delay, from)
		return d
	}
	d.Action = Restart
	d.Reason = fmt.Sprintf("%s; restart %d (back-off %s from %s elapsed)", what, n+1, delay, from)
	return d
}
