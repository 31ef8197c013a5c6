package agent

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// RuntimeStatus is a module's runtimeStatus in the $edgeAgent reported
// properties (edge-runtime-behaviour B.2, plus "downloading").
type RuntimeStatus string

// Runtime statuses.
const (
	StatusUnknown     RuntimeStatus = "unknown"     // no container yet (or the agent does not know its state)
	StatusDownloading RuntimeStatus = "downloading" // its image is being pulled
	StatusBackoff     RuntimeStatus = "backoff"     // exited; will be restarted when the back-off ends
	StatusRunning     RuntimeStatus = "running"
	StatusUnhealthy   RuntimeStatus = "unhealthy" // running, health check failing
	StatusStopped     RuntimeStatus = "stopped"   // created, exited with 0, or stopped on purpose
	StatusFailed      RuntimeStatus = "failed"    // exited with a failure and not (or no longer) restarted
	StatusDead        RuntimeStatus = "dead"
)

// StatusOf derives module m's runtimeStatus and a description from its
// current state st (nil when the runtime has none) at now, using the same
// rules as Plan: an exited module is in "backoff" while the restart policy
// will restart it, "failed" when it gave up or never restarts failures, and
// "stopped" otherwise. Registry passwords are redacted from the description.
func StatusOf(d Desired, m deployment.Module, st *ModuleState, now time.Time) (RuntimeStatus, string) {
	return statusWithDownload(d, m, st, now, -1)
}

// statusWithDownload is StatusOf, describing a module that is downloading
// with its percentage when download is 0..100 (DownloadDescription).
func statusWithDownload(d Desired, m deployment.Module, st *ModuleState, now time.Time, download int) (RuntimeStatus, string) {
	status, desc := statusOf(d, m, st, now)
	if status == StatusDownloading && download >= 0 {
		desc = DownloadDescription(d.Spec(m).Image, download)
	}
	if st != nil && st.Record.Retry.Failures > 0 && st.Record.Retry.Hash == d.Spec(m).Hash {
		note := "last attempt failed: " + st.Record.Retry.Err
		if desc == "" {
			desc = note
		} else {
			desc += "; " + note
		}
	}
	return status, truncate(d.Config.RedactText(desc), maxDescription)
}

func statusOf(d Desired, m deployment.Module, st *ModuleState, now time.Time) (RuntimeStatus, string) {
	switch {
	case st != nil && st.Pulling:
		return StatusDownloading, "pulling " + d.Spec(m).Image
	case st == nil || st.State == StateMissing:
		return StatusUnknown, "not created"
	}
	switch st.State {
	case StateRunning:
		if st.Health == restart.Unhealthy {
			return StatusUnhealthy, "health check failing"
		}
		return StatusRunning, ""
	case StateDead:
		return StatusDead, "the container is dead"
	case StateCreated:
		return StatusStopped, "created, not started"
	case StateExited:
	default:
		return StatusUnknown, fmt.Sprintf("runtime state %q", st.State)
	}
	switch {
	case m.Status != deployment.StatusRunning || st.Record.StoppedFor == CauseStatus:
		return StatusStopped, "desired status is stopped"
	case !d.BootTime.IsZero() && !st.ExitedAt.IsZero() && st.ExitedAt.Before(d.BootTime):
		return StatusStopped, "stopped by a shutdown; starting"
	}
	dec := restart.Decide(d.Policy(m), st.restartStatus(), st.Record.History, now)
	switch dec.Action {
	case restart.Restart, restart.Wait:
		return StatusBackoff, dec.Reason
	case restart.GiveUp:
		return StatusFailed, dec.Reason
	}
	if st.ExitCode != 0 || st.Record.StoppedFor == CauseUnhealthy {
		return StatusFailed, dec.Reason
	}
	return StatusStopped, dec.Reason
}

// downloadPrefix and downloadOf frame DownloadDescription.
const (
	downloadPrefix = "downloading "
	downloadOf     = "% of "
)

// DownloadDescription is the statusDescription of a module in runtimeStatus
// "downloading" once the size of its image is known: "downloading 45% of
// myacr.azurecr.io/filter:2.1" (Docker's "Downloading" with the share of
// the image's bytes; before any size is known it is "pulling <image>").
// percent is clamped to 0..100. edgectl deploy reads it back with
// ParseDownloadDescription to draw its progress bars.
func DownloadDescription(image string, percent int) string {
	return downloadPrefix + strconv.Itoa(min(max(percent, 0), 100)) + downloadOf + image
}

// ParseDownloadDescription reads a statusDescription made by
// DownloadDescription, possibly followed by "; " and a note (a failed
// earlier attempt); ok is false for any other description.
func ParseDownloadDescription(desc string) (image string, percent int, ok bool) {
	rest, found := strings.CutPrefix(desc, downloadPrefix)
	if !found {
		return "", 0, false
	}
	num, rest, found := strings.Cut(rest, downloadOf)
	if !found || num == "" || len(num) > 3 {
		return "", 0, false
	}
	percent, err := strconv.Atoi(num)
	if err != nil || percent < 0 || percent > 100 || strconv.Itoa(percent) != num {
		return "", 0, false
	}
	image, _, _ = strings.Cut(rest, "; ")
	if image == "" {
		return "", 0, false
	}
	return image, percent, true
}

// maxDescription caps statusDescription, like lastDesiredStatus.description.
const maxDescription = 512

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// LastStatus is lastDesiredStatus: the outcome of the last deployment
// (deployment.StatusCode and deployment.Description of its error).
//
// RejectedVersion is the $version of the desired properties a 400, 412 or
// 417 rejected (0 otherwise), reported as lastDesiredStatus.rejectedVersion.
// lastDesiredVersion keeps the version that runs, as Azure's agent does, so
// without it a tool cannot tell a rejection of what it just deployed from
// one of an older document reported a moment later (Azure's own "deployment
// is invalid" recipe compares lastDesiredVersion and gets this wrong).
type LastStatus struct {
	Code            int
	Description     string
	RejectedVersion int64
}

// AgentInfo describes the agent and its platform for the reported
// properties.
type AgentInfo struct {
	Version, Build, Commit string // of the agent binary
	Platform               Platform
}

// Platform is runtime.platform: the host's OS and architecture and the
// module runtime's version.
type Platform struct {
	OS, Architecture, Version string
}

// ReportSchemaVersion is the schemaVersion of the $edgeAgent reported
// properties.
const ReportSchemaVersion = "1.0"

// Report builds the full $edgeAgent reported properties (B.1) from the
// deployment being applied, the modules' current states, the last
// deployment status and the agent's own description, at now. It is pure;
// the agent diffs the result against what it last reported and sends the
// patch. Times are UTC RFC 3339; fields without a value (a module never
// started has no lastStartTimeUtc) are left out, rather than reported as
// 0001-01-01 as Azure does. Registry passwords never appear: credentials
// come from Config.Redacted, descriptions go through Config.RedactText, and
// env shows the manifest's variables only, never the injected ones.
//
// Modules are the desired ones; one that is no longer desired drops out of
// the report at once, even while its removal is pending. With no deployment
// (d.Config nil) only schemaVersion, version and lastDesiredStatus are
// reported.
func Report(d Desired, states []ModuleState, last LastStatus, info AgentInfo, now time.Time) map[string]any {
	return ReportDownloads(d, states, nil, last, info, now)
}

// ReportDownloads is Report while images are being pulled: downloads maps
// the name of a module whose state is Pulling to the percentage of its
// image downloaded so far, which its statusDescription then gives
// (DownloadDescription). Modules not in downloads are described as Report
// describes them. It is pure.
func ReportDownloads(d Desired, states []ModuleState, downloads map[string]int, last LastStatus, info AgentInfo, now time.Time) map[string]any {
	cfg := d.Config
	lastStatus := map[string]any{"code": last.Code}
	if last.Description != "" {
		lastStatus["description"] = truncate(cfg.RedactText(last.Description), maxDescription)
	}
	if last.RejectedVersion != 0 {
		lastStatus["rejectedVersion"] = last.RejectedVersion
	}
	out := map[string]any{
		"schemaVersion":     ReportSchemaVersion,
		"version":           map[string]any{"version": info.Version, "build": info.Build, "commit": info.Commit},
		"lastDesiredStatus": lastStatus,
	}
	if cfg == nil {
		return out
	}
	byName := make(map[string]*ModuleState, len(states))
	for i := range states {
		byName[states[i].Name] = &states[i]
	}

	red := cfg.Redacted()
	creds := make(map[string]any, len(red.Runtime.Settings.RegistryCredentials))
	for name, c := range red.Runtime.Settings.RegistryCredentials {
		creds[name] = map[string]any{"username": c.Username, "password": c.Password, "address": c.Address}
	}
	out["lastDesiredVersion"] = cfg.Version
	out["runtime"] = map[string]any{
		"type": cfg.Runtime.Type,
		"settings": map[string]any{
			"minDockerVersion":    cfg.Runtime.Settings.MinDockerVersion,
			"loggingOptions":      cfg.Runtime.Settings.LoggingOptions,
			"registryCredentials": creds,
		},
		"platform": map[string]any{"os": info.Platform.OS, "architecture": info.Platform.Architecture, "version": info.Platform.Version},
	}
	out["systemModules"] = map[string]any{
		deployment.EdgeAgentName: reportAgent(cfg.SystemModules.EdgeAgent, byName[deployment.EdgeAgentName]),
		deployment.EdgeHubName:   reportModule(d, cfg.SystemModules.EdgeHub, byName[deployment.EdgeHubName], moduleDownload(downloads, deployment.EdgeHubName), now),
	}
	modules := make(map[string]any, len(cfg.Modules))
	for name, m := range cfg.Modules {
		modules[name] = reportModule(d, m, byName[name], moduleDownload(downloads, name), now)
	}
	out["modules"] = modules
	return out
}

// reportAgent describes edgeAgent: it is running, since it is reporting.
// Azure reports no version, status, restartPolicy or restartCount for it.
func reportAgent(m deployment.Module, st *ModuleState) map[string]any {
	e := map[string]any{
		"type":            m.Type,
		"imagePullPolicy": m.ImagePullPolicy,
		"startupOrder":    0,
		"settings":        reportSettings(m, st),
		"runtimeStatus":   string(StatusRunning),
	}
	if env := reportEnv(m.Env); env != nil {
		e["env"] = env
	}
	if st != nil {
		putTime(e, "lastStartTimeUtc", st.StartedAt)
	}
	return e
}

// moduleDownload is module name's download percentage, -1 when unknown.
func moduleDownload(downloads map[string]int, name string) int {
	if p, ok := downloads[name]; ok {
		return p
	}
	return -1
}

// reportModule describes a module; download is its image's download
// percentage while it is being pulled, -1 when unknown.
func reportModule(d Desired, m deployment.Module, st *ModuleState, download int, now time.Time) map[string]any {
	status, desc := statusWithDownload(d, m, st, now, download)
	e := map[string]any{
		"version":         m.Version,
		"type":            m.Type,
		"status":          m.Status,
		"restartPolicy":   m.RestartPolicy,
		"imagePullPolicy": m.ImagePullPolicy,
		"startupOrder":    m.StartupOrder,
		"settings":        reportSettings(m, st),
		"runtimeStatus":   string(status),
		"restartCount":    0,
	}
	if env := reportEnv(m.Env); env != nil {
		e["env"] = env
	}
	if desc != "" {
		e["statusDescription"] = desc
	}
	if st == nil {
		return e
	}
	e["restartCount"] = st.Record.History.RestartCount
	if st.State == StateExited || st.State == StateDead {
		e["exitCode"] = st.ExitCode
	}
	putTime(e, "lastStartTimeUtc", st.StartedAt)
	putTime(e, "lastExitTimeUtc", st.ExitedAt)
	putTime(e, "lastRestartTimeUtc", st.Record.History.LastRestart)
	return e
}

// reportSettings gives settings.image as the module was created (it may
// still differ from the desired one while an update is pending), its
// imageHash, and createOptions in 512-character chunks.
func reportSettings(m deployment.Module, st *ModuleState) map[string]any {
	s := map[string]any{"image": m.Image}
	if st != nil && st.Image != "" {
		s["image"] = st.Image
	}
	if st != nil && st.ImageID != "" {
		s["imageHash"] = st.ImageID
	}
	for k, v := range deployment.ChunkCreateOptions(m.CreateOptions) {
		s[k] = v
	}
	return s
}

func reportEnv(env map[string]string) map[string]any {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]any, len(env))
	for k, v := range env {
		out[k] = map[string]any{"value": v}
	}
	return out
}

// ReportTime is the format of the reported times.
const ReportTime = time.RFC3339Nano

func putTime(e map[string]any, key string, t time.Time) {
	if !t.IsZero() {
		e[key] = t.UTC().Format(ReportTime)
	}
}
