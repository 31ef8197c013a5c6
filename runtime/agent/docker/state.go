package docker

import (
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// moduleState maps an inspected container onto the agent's view of it.
func moduleState(info container.InspectResponse) agent.ModuleState {
	var labels map[string]string
	var configImage string
	if info.Config != nil {
		labels, configImage = info.Config.Labels, info.Config.Image
	}
	var s agent.ModuleState
	if info.ContainerJSONBase != nil {
		s.Name = strings.TrimPrefix(info.Name, "/")
		s.ImageID = info.Image
		if st := info.State; st != nil {
			s.State = state(st.Status)
			s.Health = health(st.Health)
			s.ExitCode = st.ExitCode
			s.StartedAt = engineTime(st.StartedAt)
			s.ExitedAt = engineTime(st.FinishedAt)
		}
	}
	if s.Name == "" {
		s.Name = labels[agent.LabelModule]
	}
	s.Image = labels[agent.LabelImage]
	if s.Image == "" {
		s.Image = configImage
	}
	s.SpecHash = labels[agent.LabelSpecHash]
	return s
}

// state maps Docker's container status as agent.State documents:
// "restarting" and "paused" count as running (the process exists), and
// "removing" as exited. An unknown status is passed through, which Plan
// leaves alone.
func state(status container.ContainerState) agent.State {
	switch status {
	case container.StateCreated:
		return agent.StateCreated
	case container.StateRunning, container.StatePaused, container.StateRestarting:
		return agent.StateRunning
	case container.StateExited, container.StateRemoving:
		return agent.StateExited
	case container.StateDead:
		return agent.StateDead
	}
	return agent.State(status)
}

// health maps Docker's health status; a container without a health check
// has no Health (or "none").
func health(h *container.Health) restart.Health {
	if h == nil {
		return restart.NoHealthCheck
	}
	switch h.Status {
	case container.Healthy:
		return restart.Healthy
	case container.Unhealthy:
		return restart.Unhealthy
	case container.Starting:
		return restart.HealthStarting
	}
	return restart.NoHealthCheck
}

// engineTime parses the engine's RFC 3339 times; the engine writes
// "0001-01-01T00:00:00Z" for never, which is the zero time.
func engineTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}
	}
	return t
}
