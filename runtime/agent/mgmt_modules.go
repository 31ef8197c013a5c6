package agent

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// Modules builds the rows of the management API's GET /modules: one per
// desired module (edgeHub and the user modules; edgeAgent is the caller's
// business) and one per module the runtime lists that the deployment does
// not hold, sorted by name. d is the deployment (Config nil: none), listed
// what the runtime lists, records the agent's records, pulls the running
// pulls by image (PullTracker.Pulls), now the time. It is pure.
func Modules(d Desired, listed []ModuleState, records map[string]Record, pulls map[string]PullStatus, now time.Time) []ModuleInfo {
	current := Merge(listed, records)
	byName := make(map[string]*ModuleState, len(current))
	for i := range current {
		byName[current[i].Name] = &current[i]
	}
	var out []ModuleInfo
	seen := make(map[string]bool)
	if d.Config != nil {
		for _, m := range d.Modules() {
			seen[m.Name] = true
			out = append(out, desiredInfo(d, m, byName[m.Name], pulls, now))
		}
	}
	for _, st := range current {
		if seen[st.Name] || st.State == StateMissing {
			continue
		}
		out = append(out, undesiredInfo(st, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// desiredInfo describes a module of the deployment; st is nil when the
// runtime does not have it.
func desiredInfo(d Desired, m deployment.Module, st *ModuleState, pulls map[string]PullStatus, now time.Time) ModuleInfo {
	image := d.image(m.Image)
	var ps *ModuleState
	if st != nil {
		c := *st
		ps = &c
	}
	pull, pulling := pulls[image]
	if pulling {
		if ps == nil {
			ps = &ModuleState{Name: m.Name, State: StateMissing}
		}
		ps.Pulling = true
	}
	status, reason := StatusOf(d, m, ps, now)
	info := ModuleInfo{Name: m.Name, RuntimeStatus: status, StatusDescription: reason, Image: m.Image, Desired: true}
	if st != nil && st.State != StateMissing {
		fillRuntime(&info, *st)
	}
	if st != nil {
		info.RestartCount = st.Record.History.RestartCount
		if r := st.Record.Retry; r.Failures > 0 && now.Before(r.At) && !strings.Contains(reason, "last attempt failed") {
			// StatusOf notes a failed command only for the exact spec it
			// was for, which needs the injected environment; the API shows
			// any pending retry.
			note := fmt.Sprintf("retrying in %s after: %s", roundUp(r.At.Sub(now)), d.Config.RedactText(r.Err))
			if info.StatusDescription == "" {
				info.StatusDescription = note
			} else if info.StatusDescription != note {
				info.StatusDescription += "; " + note
			}
			info.StatusDescription = truncate(info.StatusDescription, maxDescription)
		}
	}
	if status == StatusDownloading && pull.Total > 0 {
		f := pull.Fraction()
		info.DownloadProgress = &f
	}
	if status == StatusBackoff && st != nil {
		dec := restart.Decide(d.Policy(m), st.restartStatus(), st.Record.History, now)
		switch dec.Action {
		case restart.Wait:
			info.RestartAt = dec.At
		case restart.Restart:
			info.RestartAt = now
		}
	}
	info.Description = Describe(info, now)
	return info
}

// undesiredInfo describes a module the runtime has but the deployment does
// not (being removed, or no deployment): its status follows the runtime
// state alone.
func undesiredInfo(st ModuleState, now time.Time) ModuleInfo {
	info := ModuleInfo{Name: st.Name, RestartCount: st.Record.History.RestartCount}
	fillRuntime(&info, st)
	switch st.State {
	case StateRunning:
		info.RuntimeStatus = StatusRunning
		if st.Health == restart.Unhealthy {
			info.RuntimeStatus = StatusUnhealthy
		}
	case StateCreated:
		info.RuntimeStatus = StatusStopped
	case StateExited:
		info.RuntimeStatus = StatusStopped
		if st.ExitCode != 0 {
			info.RuntimeStatus = StatusFailed
		}
	case StateDead:
		info.RuntimeStatus = StatusDead
	default:
		info.RuntimeStatus = StatusUnknown
	}
	info.StatusDescription = "not in the deployment"
	info.Description = Describe(info, now)
	return info
}

// fillRuntime copies what the runtime says about st into info.
func fillRuntime(info *ModuleInfo, st ModuleState) {
	if st.Image != "" {
		info.Image = st.Image
	}
	info.StartedAt, info.ExitedAt = st.StartedAt, st.ExitedAt
	if st.State == StateExited || st.State == StateDead {
		code := st.ExitCode
		info.ExitCode = &code
	}
}

// Describe is the short description edgectl list shows for a module, after
// iotedge list: "Up 3 minutes", "Up 2 hours (unhealthy)", "Stopped 2
// minutes ago", "Failed (1) 5 seconds ago", "Back-off, restart in 20s",
// "Downloading 45%", "Dead 1 minute ago", "Not created". It reads
// RuntimeStatus, the times, ExitCode, RestartAt and DownloadProgress of m
// and is pure.
func Describe(m ModuleInfo, now time.Time) string {
	exit := 0
	if m.ExitCode != nil {
		exit = *m.ExitCode
	}
	switch m.RuntimeStatus {
	case StatusRunning, StatusUnhealthy:
		s := "Up"
		if !m.StartedAt.IsZero() {
			s += " " + HumanDuration(now.Sub(m.StartedAt))
		}
		if m.RuntimeStatus == StatusUnhealthy {
			s += " (unhealthy)"
		}
		return s
	case StatusStopped:
		if m.ExitedAt.IsZero() {
			if m.StartedAt.IsZero() {
				return "Created, not started"
			}
			return "Stopped"
		}
		return "Stopped " + ago(m.ExitedAt, now)
	case StatusFailed:
		s := fmt.Sprintf("Failed (%d)", exit)
		if !m.ExitedAt.IsZero() {
			s += " " + ago(m.ExitedAt, now)
		}
		return s
	case StatusBackoff:
		switch {
		case m.RestartAt.IsZero():
			return "Back-off"
		case !m.RestartAt.After(now):
			return "Back-off, restarting"
		}
		return "Back-off, restart in " + roundUp(m.RestartAt.Sub(now)).String()
	case StatusDownloading:
		if m.DownloadProgress == nil {
			return "Downloading"
		}
		pct := int(math.Floor(*m.DownloadProgress * 100))
		return fmt.Sprintf("Downloading %d%%", min(max(pct, 0), 100))
	case StatusDead:
		if m.ExitedAt.IsZero() {
			return "Dead"
		}
		return "Dead " + ago(m.ExitedAt, now)
	case StatusUnknown:
		if m.StartedAt.IsZero() && m.ExitedAt.IsZero() {
			return "Not created"
		}
		return "Unknown"
	}
	return string(m.RuntimeStatus)
}

// ago is "2 minutes ago", or "just now" for a time not in the past.
func ago(t, now time.Time) string {
	if !now.After(t) {
		return "just now"
	}
	return HumanDuration(now.Sub(t)) + " ago"
}

// roundUp rounds d up to whole seconds, so that "restart in 0s" never shows
// while the restart is still ahead.
func roundUp(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return ((d + time.Second - 1) / time.Second) * time.Second
}

// HumanDuration spells d as Docker's ps does: "Less than a second", "1
// second", "45 seconds", "About a minute", "3 minutes", "About an hour", "5
// hours", "3 days", "2 weeks", "4 months", "2 years". Negative durations
// count as zero.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	seconds := int(d.Seconds())
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	}
	minutes := int(d.Minutes())
	switch {
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := int(math.Round(d.Hours()))
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}
