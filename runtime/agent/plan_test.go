package agent_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

func TestPlan(t *testing.T) {
	type row struct {
		name    string
		edits   []func(*deployment.AgentConfig)
		desired func(*agent.Desired)
		current func(t testing.TB, d agent.Desired) []agent.ModuleState
		want    []string
	}
	fresh := []string{
		"pull edgeHub/added", "create edgeHub/added", "start edgeHub/added",
		"pull tempSensor/added", "create tempSensor/added", "start tempSensor/added",
		"pull filter/added", "create filter/added", "start filter/added",
		"create archiver/added",
	}
	tests := []row{
		// Added modules, in start order; archiver is desired stopped with imagePullPolicy never.
		{name: "added/empty-device", current: nil, want: fresh},
		{name: "added/one-module", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			var out []agent.ModuleState
			for _, s := range converged(t, d) {
				if s.Name != "filter" {
					out = append(out, s)
				}
			}
			return out
		}, want: []string{"pull filter/added", "create filter/added", "start filter/added"}},
		{name: "added/pull-never-has-no-pull", edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.ImagePullPolicy = deployment.PullNever })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState { return without(converged(t, d), "filter") },
			want:    []string{"create filter/added", "start filter/added"}},
		{name: "unchanged/converged", current: converged, want: []string{}},

		// Updates.
		{name: "updated/version-recreates", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.Version = "1.1" })},
			current: convergedBefore(),
			want:    []string{"pull tempSensor/updated", "stop tempSensor/updated", "remove tempSensor/updated", "create tempSensor/updated", "start tempSensor/updated"}},
		{name: "updated/image-recreates", edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.Image = "myacr.azurecr.io/filter:2.2" })},
			current: convergedBefore(),
			want:    []string{"pull filter/updated", "stop filter/updated", "remove filter/updated", "create filter/updated", "start filter/updated"}},
		{name: "updated/env-recreates", edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.Env["LEVEL"] = "3" })},
			current: convergedBefore(),
			want:    []string{"pull filter/updated", "stop filter/updated", "remove filter/updated", "create filter/updated", "start filter/updated"}},
		{name: "updated/createOptions-recreates", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.CreateOptions = `{"User":"1000"}` })},
			current: convergedBefore(),
			want:    []string{"pull tempSensor/updated", "stop tempSensor/updated", "remove tempSensor/updated", "create tempSensor/updated", "start tempSensor/updated"}},
		{name: "updated/injected-env-recreates", desired: func(d *agent.Desired) { d.Inject["tempSensor"]["IOTEDGE_MODULEGENERATIONID"] = "gen2" },
			current: convergedBefore(),
			want:    []string{"pull tempSensor/updated", "stop tempSensor/updated", "remove tempSensor/updated", "create tempSensor/updated", "start tempSensor/updated"}},
		{name: "updated/exited-module-is-not-stopped", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.Version = "1.1" })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				base := mustDesired(t)
				return replace(converged(t, base), exitedAgo(t, base, "tempSensor", 1, time.Second))
			},
			want: []string{"pull tempSensor/updated", "remove tempSensor/updated", "create tempSensor/updated", "start tempSensor/updated"}},
		{name: "updated/desired-stopped-is-created-not-started", edits: []func(*deployment.AgentConfig){editModule("archiver", func(m *deployment.Module) { m.Version = "2" })},
			current: convergedBefore(),
			want:    []string{"remove archiver/updated", "create archiver/updated"}},
		{name: "updated/container-without-hash-label", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := runningFor(t, d, "tempSensor", time.Minute)
			s.SpecHash = ""
			return replace(converged(t, d), s)
		}, want: []string{"pull tempSensor/updated", "stop tempSensor/updated", "remove tempSensor/updated", "create tempSensor/updated", "start tempSensor/updated"}},
		{name: "not-updated/createOptions-reformatted", edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.CreateOptions = "{ \"Env\" : [ \"LOG=debug\" ] }" })},
			current: convergedBefore(), want: []string{}},
		{name: "not-updated/env-overridden-by-createOptions", edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.Env = map[string]string{"LOG": "warn"} })},
			current: convergedBefore(), want: []string{}},
		{name: "not-updated/restartPolicy-startupOrder-imagePullPolicy", edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) {
			m.RestartPolicy, m.StartupOrder, m.ImagePullPolicy = deployment.RestartNever, 9, deployment.PullNever
		})}, current: convergedBefore(), want: []string{}},

		// Removals come first.
		{name: "removed/running-is-stopped-then-removed", edits: []func(*deployment.AgentConfig){func(c *deployment.AgentConfig) { delete(c.Modules, "filter") }},
			current: convergedBefore(),
			want:    []string{"stop filter/removed", "remove filter/removed"}},
		{name: "removed/before-additions", edits: []func(*deployment.AgentConfig){func(c *deployment.AgentConfig) { delete(c.Modules, "filter") }},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				base := mustDesired(t)
				return []agent.ModuleState{runningFor(t, base, "filter", time.Minute)}
			},
			want: append([]string{"stop filter/removed", "remove filter/removed"}, without2(fresh, "filter")...)},
		{name: "removed/exited-is-only-removed", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return append(converged(t, d), agent.ModuleState{Name: "old", State: agent.StateExited, ExitCode: 0})
		}, want: []string{"remove old/removed"}},
		{name: "removed/missing-is-forgotten", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return append(converged(t, d), agent.ModuleState{Name: "old", State: agent.StateMissing, Record: history(2, time.Hour)})
		}, want: []string{"remove old/removed"}},
		{name: "removed/sorted-by-name", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return append([]agent.ModuleState{{Name: "zeta", State: agent.StateExited}, {Name: "alpha", State: agent.StateCreated}}, converged(t, d)...)
		}, want: []string{"remove alpha/removed", "remove zeta/removed"}},
		{name: "edgeAgent-is-never-touched", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return append(converged(t, d), agent.ModuleState{Name: deployment.EdgeAgentName, State: agent.StateExited, ExitCode: 1})
		}, want: []string{}},

		// Desired status stopped.
		{name: "stopped/running-is-stopped", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.Status = deployment.StatusStopped })},
			current: convergedBefore(), want: []string{"stop tempSensor/status"}},
		{name: "stopped/exited-on-its-own-is-marked", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.Status = deployment.StatusStopped })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), exitedAgo(t, d, "tempSensor", 1, time.Second))
			}, want: []string{"stop tempSensor/status"}},
		{name: "stopped/already-marked", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.Status = deployment.StatusStopped })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 143, time.Second), agent.Record{StoppedFor: agent.CauseStatus}))
			}, want: []string{}},
		{name: "stopped/created-stays-created", current: converged, want: []string{}},
		{name: "status-running-again/started-even-under-never", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartNever })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 143, time.Second), agent.Record{StoppedFor: agent.CauseStatus}))
			}, want: []string{"start tempSensor/status"}},

		// Restart policy and back-off.
		{name: "backoff/first-exit-waits", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), exitedAgo(t, d, "tempSensor", 1, 3*time.Second))
		}, want: []string{"wait tempSensor/exited +7s"}},
		{name: "backoff/due-restarts", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 1, time.Hour), history(4, 2*time.Hour)))
		}, want: []string{"restart tempSensor/exited"}},
		{name: "backoff/grows-with-history", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 1, 0), history(3, time.Minute)))
		}, want: []string{"wait tempSensor/exited +1m20s"}},
		{name: "backoff/custom-unit", desired: func(d *agent.Desired) { d.Backoff.Unit = time.Second },
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), exitedAgo(t, d, "tempSensor", 1, 0))
			}, want: []string{"wait tempSensor/exited +1s"}},
		{name: "backoff/per-module-policy-override", desired: func(d *agent.Desired) {
			d.Policies = map[string]restart.Policy{"tempSensor": {Kind: restart.Never}}
		}, current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), exitedAgo(t, d, "tempSensor", 1, time.Hour))
		}, want: []string{}},
		{name: "backoff/gives-up-at-max-restarts", desired: func(d *agent.Desired) { d.Backoff.MaxRestarts = 3 },
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 1, time.Hour), history(3, 2*time.Hour)))
			}, want: []string{}},
		{name: "backoff/never-gives-up-by-default", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 1, time.Hour), history(500, 2*time.Hour)))
		}, want: []string{"restart tempSensor/exited"}},
		{name: "backoff/on-failure-exit0-stays-stopped", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), exitedAgo(t, d, "filter", 0, time.Hour))
		}, want: []string{}},
		{name: "backoff/always-exit0-restarts", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), exitedAgo(t, d, "tempSensor", 0, time.Hour))
		}, want: []string{"restart tempSensor/exited"}},
		{name: "backoff/one-module-waiting-does-not-block-others", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(without(converged(t, d), "filter"), exitedAgo(t, d, "tempSensor", 1, time.Second))
		}, want: []string{"wait tempSensor/exited +9s", "pull filter/added", "create filter/added", "start filter/added"}},
		{name: "reset/after-10-minutes-running", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), withRecord(runningFor(t, d, "tempSensor", 10*time.Minute), history(4, 10*time.Minute)))
		}, want: []string{"reset tempSensor/healthy"}},
		{name: "reset/long-run-then-crash-resets-then-waits", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := withRecord(exitedAgo(t, d, "tempSensor", 1, time.Second), history(6, time.Hour))
			s.StartedAt = now.Add(-time.Hour)
			return replace(converged(t, d), s)
		}, want: []string{"reset tempSensor/healthy", "wait tempSensor/exited +9s"}},

		// Health.
		{name: "unhealthy/always-is-stopped", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := runningFor(t, d, "tempSensor", time.Minute)
			s.Health = restart.Unhealthy
			return replace(converged(t, d), s)
		}, want: []string{"stop tempSensor/unhealthy"}},
		{name: "unhealthy/on-failure-is-left-running", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := runningFor(t, d, "filter", time.Minute)
			s.Health = restart.Unhealthy
			return replace(converged(t, d), s)
		}, want: []string{}},
		{name: "unhealthy/stopped-module-waits-even-with-exit0", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 0, 4*time.Second), agent.Record{StoppedFor: agent.CauseUnhealthy}))
		}, want: []string{"wait tempSensor/exited +6s"}},
		{name: "unhealthy/on-unhealthy-stopped-exit0-restarted", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartOnUnhealthy })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), withRecord(exitedAgo(t, d, "tempSensor", 0, time.Minute), agent.Record{StoppedFor: agent.CauseUnhealthy}))
			}, want: []string{"restart tempSensor/exited"}},

		// Dead, missing and never-started containers.
		{name: "dead/recreated-and-restarted", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := exitedAgo(t, d, "tempSensor", 137, time.Hour)
			s.State = agent.StateDead
			return replace(converged(t, d), s)
		}, want: []string{"pull tempSensor/dead", "remove tempSensor/dead", "create tempSensor/dead", "restart tempSensor/dead"}},
		{name: "dead/in-backoff-waits", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := withRecord(exitedAgo(t, d, "tempSensor", 0, 2*time.Second), history(1, time.Minute))
			s.State = agent.StateDead
			return replace(converged(t, d), s)
		}, want: []string{"wait tempSensor/dead +18s"}},
		{name: "dead/never-policy-stays-dead", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartNever })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				s := exitedAgo(t, d, "tempSensor", 0, time.Hour)
				s.State = agent.StateDead
				return replace(converged(t, d), s)
			}, want: []string{}},
		{name: "dead/desired-stopped-is-recreated", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := created(t, d, "archiver")
			s.State = agent.StateDead
			return replace(converged(t, d), s)
		}, want: []string{"remove archiver/dead", "create archiver/dead"}},
		{name: "missing/recreated-and-started", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), agent.ModuleState{Name: "tempSensor", State: agent.StateMissing, Record: history(2, time.Hour)})
		}, want: []string{"pull tempSensor/missing", "create tempSensor/missing", "start tempSensor/missing"}},
		{name: "created/started-without-backoff", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return replace(converged(t, d), withRecord(created(t, d, "tempSensor"), history(7, time.Second)))
		}, want: []string{"start tempSensor/first-start"}},
		{name: "unknown-state/left-alone", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			s := created(t, d, "tempSensor")
			s.State = "paused-in-some-way"
			return replace(converged(t, d), s)
		}, want: []string{}},

		// Startup order.
		{name: "order/edgeHub-first-then-startupOrder-then-name", edits: []func(*deployment.AgentConfig){
			editModule(deployment.EdgeHubName, func(m *deployment.Module) { m.StartupOrder = 50 }),
			editModule("b", func(m *deployment.Module) { m.StartupOrder = 0; m.ImagePullPolicy = deployment.PullNever }),
			editModule("a", func(m *deployment.Module) { m.StartupOrder = 0; m.ImagePullPolicy = deployment.PullNever }),
			editModule("z", func(m *deployment.Module) { m.ImagePullPolicy = deployment.PullNever }),
		}, current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			return without(converged(t, d), "edgeHub", "a", "b", "z")
		}, want: []string{
			"pull edgeHub/added", "create edgeHub/added", "start edgeHub/added",
			"create a/added", "start a/added", "create b/added", "start b/added",
			"create z/added", "start z/added",
		}},
		{name: "order/reboot-starts-everything-in-order", desired: func(d *agent.Desired) { d.BootTime = now.Add(-time.Minute) },
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				var out []agent.ModuleState
				for _, name := range []string{"filter", "edgeHub", "tempSensor"} { // listed out of order
					out = append(out, withRecord(exitedAgo(t, d, name, 0, time.Hour), history(3, 2*time.Hour)))
				}
				return append(out, created(t, d, "archiver"))
			},
			want: []string{"start edgeHub/boot", "start tempSensor/boot", "start filter/boot"}},
		{name: "order/reboot-starts-never-and-failed-modules", desired: func(d *agent.Desired) { d.BootTime = now.Add(-time.Minute); d.Backoff.MaxRestarts = 2 },
			edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartNever })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d),
					withRecord(exitedAgo(t, d, "tempSensor", 1, time.Hour), history(2, 2*time.Hour)),
					exitedAgo(t, d, "filter", 137, time.Hour))
			},
			want: []string{"start tempSensor/boot", "start filter/boot"}},
		{name: "order/reboot-with-unknown-exit-time-starts-modules-started-before-boot", desired: func(d *agent.Desired) { d.BootTime = now.Add(-time.Minute) },
			edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartNever })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				// A runtime that lost its processes across the reboot knows neither exit code nor time.
				lost := exitedAgo(t, d, "filter", -1, time.Hour)
				lost.ExitedAt = time.Time{}
				return replace(converged(t, d), lost)
			},
			want: []string{"start filter/boot"}},
		{name: "order/unknown-exit-time-after-boot-is-not-a-reboot", desired: func(d *agent.Desired) { d.BootTime = now.Add(-2 * time.Hour) },
			edits: []func(*deployment.AgentConfig){editModule("filter", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartNever })},
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				lost := exitedAgo(t, d, "filter", -1, time.Hour)
				lost.ExitedAt = time.Time{}
				return replace(converged(t, d), lost)
			},
			want: []string{}},
		{name: "order/exit-after-boot-is-a-crash", desired: func(d *agent.Desired) { d.BootTime = now.Add(-time.Minute) },
			current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
				return replace(converged(t, d), exitedAgo(t, d, "tempSensor", 1, 5*time.Second))
			}, want: []string{"wait tempSensor/exited +5s"}},

		// Failed commands back off per module.
		{name: "retry/pending-waits", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			r := agent.Record{Retry: agent.Retry{Failures: 2, At: now.Add(15 * time.Second), Last: now.Add(-5 * time.Second), Hash: d.Spec(module(t, d, "filter")).Hash, Err: "pull failed"}}
			return replace(converged(t, d), agent.ModuleState{Name: "filter", State: agent.StateMissing, Record: r})
		}, want: []string{"wait filter/retry +15s"}},
		{name: "retry/due-retries", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			r := agent.Record{Retry: agent.Retry{Failures: 2, At: now, Hash: d.Spec(module(t, d, "filter")).Hash}}
			return replace(converged(t, d), agent.ModuleState{Name: "filter", State: agent.StateMissing, Record: r})
		}, want: []string{"pull filter/missing", "create filter/missing", "start filter/missing"}},
		{name: "retry/new-spec-is-tried-at-once", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			r := agent.Record{Retry: agent.Retry{Failures: 2, At: now.Add(time.Minute), Hash: "old"}}
			return replace(converged(t, d), agent.ModuleState{Name: "filter", State: agent.StateMissing, Record: r})
		}, want: []string{"pull filter/missing", "create filter/missing", "start filter/missing"}},
		{name: "retry/removal-backs-off-too", current: func(t testing.TB, d agent.Desired) []agent.ModuleState {
			r := agent.Record{Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second)}}
			return append(converged(t, d), agent.ModuleState{Name: "old", State: agent.StateExited, Record: r})
		}, want: []string{"wait old/retry +10s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustDesired(t, tc.edits...)
			if tc.desired != nil {
				tc.desired(&d)
			}
			var current []agent.ModuleState
			if tc.current != nil {
				current = tc.current(t, d)
			}
			got := summary(agent.Plan(d, current, now))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// convergedBefore is the device converged on the unedited test deployment.
func convergedBefore() func(t testing.TB, d agent.Desired) []agent.ModuleState {
	return func(t testing.TB, _ agent.Desired) []agent.ModuleState { return converged(t, mustDesired(t)) }
}

func without(states []agent.ModuleState, names ...string) []agent.ModuleState {
	var out []agent.ModuleState
	for _, s := range states {
		drop := false
		for _, n := range names {
			drop = drop || s.Name == n
		}
		if !drop {
			out = append(out, s)
		}
	}
	return out
}

// without2 drops the summary lines of module name.
func without2(lines []string, name string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, " "+name+"/") {
			out = append(out, l)
		}
	}
	return out
}

func TestPlan_NoDeploymentDoesNothing(t *testing.T) {
	d := mustDesired(t)
	if cmds := agent.Plan(agent.Desired{}, converged(t, d), now); cmds != nil {
		t.Fatalf("Plan without a deployment = %v, want nothing", summary(cmds))
	}
}

func TestPlan_CommandDetails(t *testing.T) {
	d := mustDesired(t)
	cmds := agent.Plan(d, nil, now)
	find := func(k agent.Kind, module string) agent.Command {
		t.Helper()
		for _, c := range cmds {
			if c.Kind == k && c.Module == module {
				return c
			}
		}
		t.Fatalf("no %s %s in %v", k, module, summary(cmds))
		return agent.Command{}
	}

	t.Run("private-registry-pull-carries-credential", func(t *testing.T) {
		c := find(agent.Pull, "filter")
		if c.Image != "myacr.azurecr.io/filter:2.1" || c.Credential != "acr" || c.Auth == nil || c.Auth.Password != password {
			t.Fatalf("pull = %+v", c)
		}
	})
	t.Run("public-pull-is-anonymous", func(t *testing.T) {
		if c := find(agent.Pull, "tempSensor"); c.Credential != "" || c.Auth != nil {
			t.Fatalf("pull = %+v", c)
		}
	})
	t.Run("create-carries-spec-with-merged-env-and-labels", func(t *testing.T) {
		c := find(agent.Create, "filter")
		spec := d.Spec(module(t, d, "filter"))
		if !reflect.DeepEqual(*c.Spec, spec) || c.Hash != spec.Hash {
			t.Fatalf("create spec = %+v, want %+v", *c.Spec, spec)
		}
		want := []string{
			"EdgeHubConnectionString=HostName=hub;DeviceId=dev;ModuleId=filter;SharedAccessKey=bW9kdWxla2V5",
			"IOTEDGE_MODULEID=filter", "LOG=debug",
		}
		if !reflect.DeepEqual(c.Spec.Env, want) {
			t.Fatalf("env = %q, want %q", c.Spec.Env, want)
		}
		if c.Spec.Labels[agent.LabelOwner] != agent.Owner || c.Spec.Labels[agent.LabelSpecHash] != spec.Hash ||
			c.Spec.Labels[agent.LabelImage] != "myacr.azurecr.io/filter:2.1" || c.Spec.Labels[agent.LabelModule] != "filter" ||
			c.Spec.Labels[agent.LabelVersion] != "2.1" {
			t.Fatalf("labels = %v", c.Spec.Labels)
		}
	})
	t.Run("every-command-carries-the-desired-hash", func(t *testing.T) {
		for _, c := range cmds {
			if c.Hash != d.Spec(module(t, d, c.Module)).Hash || c.Reason == "" {
				t.Fatalf("%v: hash %q reason %q", c, c.Hash, c.Reason)
			}
		}
	})
	t.Run("stop-timeout", func(t *testing.T) {
		d := mustDesired(t, editModule("tempSensor", func(m *deployment.Module) { m.Status = deployment.StatusStopped }))
		cur := converged(t, mustDesired(t))
		c := find2(t, agent.Plan(d, cur, now), agent.Stop, "tempSensor")
		if c.Timeout != agent.DefaultStopTimeout {
			t.Fatalf("stop = %+v", c)
		}
		d.StopTimeout = 3 * time.Second
		if c := find2(t, agent.Plan(d, cur, now), agent.Stop, "tempSensor"); c.Timeout != 3*time.Second {
			t.Fatalf("stop timeout = %v", c.Timeout)
		}
	})
	t.Run("wait-at-and-next-wake", func(t *testing.T) {
		cur := replace(converged(t, d), exitedAgo(t, d, "tempSensor", 1, 2*time.Second), exitedAgo(t, d, "edgeHub", 1, 5*time.Second))
		at, ok := agent.NextWake(agent.Plan(d, cur, now))
		if !ok || !at.Equal(now.Add(5*time.Second)) {
			t.Fatalf("NextWake = %v, %v; want now+5s", at, ok)
		}
		if _, ok := agent.NextWake(agent.Plan(d, converged(t, d), now)); ok {
			t.Fatal("NextWake of a converged plan reported a wake-up")
		}
	})
	t.Run("upstream-image-resolved", func(t *testing.T) {
		d := mustDesired(t, editModule("tempSensor", func(m *deployment.Module) { m.Image = "$upstream:443/azureiotedge-simulated-temperature-sensor:1.5" }))
		d.Upstream = "parent.local"
		c := find2(t, agent.Plan(d, nil, now), agent.Pull, "tempSensor")
		if c.Image != "parent.local:443/azureiotedge-simulated-temperature-sensor:1.5" {
			t.Fatalf("image = %q", c.Image)
		}
		if l := d.Spec(module(t, d, "tempSensor")).Labels[agent.LabelImage]; l != "$upstream:443/azureiotedge-simulated-temperature-sensor:1.5" {
			t.Fatalf("original-image label = %q", l)
		}
	})
}

func find2(t *testing.T, cmds []agent.Command, k agent.Kind, module string) agent.Command {
	t.Helper()
	for _, c := range cmds {
		if c.Kind == k && c.Module == module {
			return c
		}
	}
	t.Fatalf("no %s %s in %v", k, module, summary(cmds))
	return agent.Command{}
}

func TestDesired_Policy(t *testing.T) {
	d := mustDesired(t)
	d.Backoff = restart.Policy{Kind: restart.Never, Unit: time.Second, MaxRestarts: 4, Jitter: 0.2, JitterSeed: 9}
	tests := []struct {
		module string
		want   restart.Kind
	}{
		{"edgeHub", restart.Always},
		{"tempSensor", restart.Always},
		{"filter", restart.OnFailure},
		{"archiver", restart.OnUnhealthy}, // the default when restartPolicy is absent
	}
	seeds := map[uint64]bool{}
	for _, tc := range tests {
		t.Run(tc.module, func(t *testing.T) {
			p := d.Policy(module(t, d, tc.module))
			if p.Kind != tc.want || p.Unit != time.Second || p.MaxRestarts != 4 || p.Jitter != 0.2 {
				t.Fatalf("Policy = %+v", p)
			}
			seeds[p.JitterSeed] = true
		})
	}
	if len(seeds) != len(tests) {
		t.Fatalf("modules share jitter seeds: %v", seeds)
	}
	d.Policies = map[string]restart.Policy{"filter": {Kind: restart.Always}}
	if p := d.Policy(module(t, d, "filter")); p != (restart.Policy{Kind: restart.Always}) {
		t.Fatalf("override = %+v", p)
	}
}
