package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// expectedModule is what a manifest asks of one module.
type expectedModule struct {
	Name   string
	Image  string // as the parser normalised it, as the agent reports it
	Status string // desired status: running or stopped
}

// expectedModules lists edgeHub and the user modules of a manifest, sorted
// by name. edgeAgent is left out: it runs whenever it reports.
func expectedModules(cfg *deployment.AgentConfig) []expectedModule {
	out := []expectedModule{{Name: cfg.SystemModules.EdgeHub.Name, Image: cfg.SystemModules.EdgeHub.Image, Status: cfg.SystemModules.EdgeHub.Status}}
	if out[0].Name == "" {
		out[0].Name = deployment.EdgeHubName
	}
	for _, m := range cfg.Modules {
		out = append(out, expectedModule{Name: m.Name, Image: m.Image, Status: m.Status})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// reportedModule is one module of the $edgeAgent reported properties.
type reportedModule struct {
	RuntimeStatus string
	Description   string
	Image         string
	ExitCode      *int
}

// agentReport is what deploy reads from the $edgeAgent reported
// properties.
type agentReport struct {
	Version            int64 // $version of the reported section
	LastDesiredVersion int64
	Code               int
	Description        string
	RejectedVersion    int64 // lastDesiredStatus.rejectedVersion; 0 from an agent that does not report it
	Modules            map[string]reportedModule
}

// parseAgentReport reads the reported section of the $edgeAgent twin;
// missing or odd fields stay zero.
func parseAgentReport(reported map[string]any) agentReport {
	r := agentReport{Modules: make(map[string]reportedModule)}
	r.Version, _ = toInt(reported["$version"])
	r.LastDesiredVersion, _ = toInt(reported["lastDesiredVersion"])
	if last, ok := reported["lastDesiredStatus"].(map[string]any); ok {
		c, _ := toInt(last["code"])
		r.Code = int(c)
		r.Description, _ = last["description"].(string)
		r.RejectedVersion, _ = toInt(last["rejectedVersion"])
	}
	for _, section := range []string{"systemModules", "modules"} {
		mods, _ := reported[section].(map[string]any)
		for name, v := range mods {
			e, ok := v.(map[string]any)
			if !ok {
				continue
			}
			m := reportedModule{}
			m.RuntimeStatus, _ = e["runtimeStatus"].(string)
			m.Description, _ = e["statusDescription"].(string)
			if s, ok := e["settings"].(map[string]any); ok {
				m.Image, _ = s["image"].(string)
			}
			if c, ok := toInt(e["exitCode"]); ok {
				code := int(c)
				m.ExitCode = &code
			}
			r.Modules[name] = m
		}
	}
	return r
}

// toInt reads a JSON number (json.Number or float64).
func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), true
	}
	return 0, false
}

// Phases of a deployment as deploy follows it.
const (
	phaseWaiting   = "waiting"   // the agent has not taken the new version yet
	phaseApplying  = "applying"  // it has; not every module runs yet
	phaseSucceeded = "succeeded" // every module is as desired
	phaseFailed    = "failed"    // rejected, or a module failed
)

// moduleProgress is one module's state in a deployment.
type moduleProgress struct {
	Name          string `json:"name"`
	RuntimeStatus string `json:"runtimeStatus"`
	Description   string `json:"description,omitempty"`
	Done          bool   `json:"done"`
	Failed        bool   `json:"failed"`
	// DownloadPercent is how much of its image is downloaded, while the
	// agent reports it (runtimeStatus downloading, statusDescription
	// "downloading NN% of <image>").
	DownloadPercent *int `json:"downloadPercent,omitempty"`
}

// deployState is the verdict of evaluateDeploy.
type deployState struct {
	Phase       string           `json:"phase"`
	Message     string           `json:"message,omitempty"`
	Modules     []moduleProgress `json:"modules"`
	Done        int              `json:"done"`
	Total       int              `json:"total"`
	Downloading int              `json:"downloading"`
}

// evaluateDeploy judges how far the deployment of desired version version
// has got, from the agent's report rep. A rejection (400, 412, 417) leaves
// lastDesiredVersion at the previous version; the agent names the version
// it rejected (lastDesiredStatus.rejectedVersion), so a rejection of an
// older document, reported just after this one was sent, is not taken for
// its own. From an agent that does not name it, base decides: the reported
// section's $version read right after the deployment was sent, and a
// rejection counts only when the agent has reported since. It is pure.
func evaluateDeploy(want []expectedModule, version, base int64, rep agentReport) deployState {
	st := deployState{Total: len(want)}
	rejected := rep.Code == deployment.CodeInvalid || rep.Code == deployment.CodeSchemaVersion || rep.Code == deployment.CodeEmpty
	if rejected && rep.RejectedVersion != 0 && rep.RejectedVersion != version {
		rejected = false // an older document's: this one is not judged yet
	}
	if rep.LastDesiredVersion != version {
		if rejected && (rep.RejectedVersion == version || rep.Version > base) {
			st.Phase = phaseFailed
			st.Message = fmt.Sprintf("the agent rejected the deployment (%d): %s", rep.Code, rep.Description)
			return st
		}
		st.Phase = phaseWaiting
		st.Message = fmt.Sprintf("waiting for the agent to take version %d", version)
		if rep.LastDesiredVersion != 0 {
			st.Message += fmt.Sprintf(" (it runs version %d)", rep.LastDesiredVersion)
		}
		return st
	}
	switch {
	case rejected:
		st.Phase = phaseFailed
		st.Message = fmt.Sprintf("the agent rejected the deployment (%d): %s", rep.Code, rep.Description)
		return st
	case rep.Code == deployment.CodeFailed:
		st.Phase = phaseFailed
		st.Message = "the agent could not apply the deployment (500): " + rep.Description + " (it keeps retrying; follow it with edgectl list)"
	case rep.Code == deployment.CodeNotRunning:
		st.Phase = phaseWaiting
		st.Message = "the agent reports it is not running (406)"
		return st
	}
	failedAny := false
	for _, w := range want {
		p := moduleProgress{Name: w.Name, RuntimeStatus: string(agent.StatusUnknown), Description: "not reported yet"}
		if m, ok := rep.Modules[w.Name]; ok {
			p.RuntimeStatus, p.Description = m.RuntimeStatus, m.Description
			updated := m.Image == "" || m.Image == w.Image
			switch agent.RuntimeStatus(m.RuntimeStatus) {
			case agent.StatusRunning:
				p.Done = updated && w.Status == deployment.StatusRunning
				if !updated {
					p.Description = "still runs " + m.Image
				}
			case agent.StatusStopped:
				p.Done = updated && w.Status == deployment.StatusStopped
			case agent.StatusFailed, agent.StatusDead:
				p.Failed = true
				if m.ExitCode != nil && p.Description == "" {
					p.Description = fmt.Sprintf("exit code %d", *m.ExitCode)
				}
			case agent.StatusDownloading:
				st.Downloading++
				if _, pct, ok := agent.ParseDownloadDescription(m.Description); ok {
					p.DownloadPercent = &pct
				}
			}
		}
		if p.Done {
			st.Done++
		}
		failedAny = failedAny || p.Failed
		st.Modules = append(st.Modules, p)
	}
	switch {
	case st.Phase == phaseFailed:
	case failedAny:
		st.Phase = phaseFailed
		var names []string
		for _, p := range st.Modules {
			if p.Failed {
				names = append(names, p.Name)
			}
		}
		st.Message = "module(s) failed: " + strings.Join(names, ", ")
	case st.Done == st.Total:
		st.Phase = phaseSucceeded
		st.Message = fmt.Sprintf("version %d deployed: every module is as desired", version)
	default:
		st.Phase = phaseApplying
		st.Message = fmt.Sprintf("version %d: %d of %d module(s) ready", version, st.Done, st.Total)
	}
	return st
}

// progressBar draws done of total as "[########------------]  2/5".
func progressBar(done, total, width int) string {
	if total <= 0 || width <= 0 {
		return "[]"
	}
	done = min(max(done, 0), total)
	fill := done * width / total
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", fill), strings.Repeat("-", width-fill), done, total)
}

// percentBar draws percent as "[#########---------------------]  30%".
func percentBar(percent, width int) string {
	if width <= 0 {
		return fmt.Sprintf("%3d%%", percent)
	}
	percent = min(max(percent, 0), 100)
	fill := percent * width / 100
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", fill), strings.Repeat("-", width-fill), percent)
}

// changedLines are the progress lines to print when the state went from
// prev to cur: one per module whose status or description changed. A
// module whose download progress is known gets a bar of its own:
// "  filter: downloading [#########---------------------]  30% of <image>".
func changedLines(prev, cur deployState) []string {
	before := make(map[string]moduleProgress, len(prev.Modules))
	for _, p := range prev.Modules {
		before[p.Name] = p
	}
	var out []string
	for _, p := range cur.Modules {
		if b, ok := before[p.Name]; ok && b.RuntimeStatus == p.RuntimeStatus && b.Description == p.Description {
			continue
		}
		line := fmt.Sprintf("  %s: %s", p.Name, p.RuntimeStatus)
		if image, _, ok := agent.ParseDownloadDescription(p.Description); ok && p.DownloadPercent != nil {
			line += " " + percentBar(*p.DownloadPercent, barWidth) + " of " + image
			if _, note, ok := strings.Cut(p.Description, "; "); ok {
				line += " (" + note + ")"
			}
		} else if p.Description != "" {
			line += " (" + p.Description + ")"
		}
		out = append(out, line)
	}
	return out
}
