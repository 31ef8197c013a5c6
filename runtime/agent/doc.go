// Package agent is the decision core of the Outpost edge agent: it computes,
// as pure functions, what to do to make the device run its deployment
// (Plan), what to report about it (Report, StatusOf) and what environment a
// module gets (Env), and it defines the narrow Runtime interface through
// which the commands take effect (Command.Execute, Apply).
//
// # Basics
//
// One reconcile cycle, as the agent's Run loop performs it:
//
//	listed, err := rt.List(ctx)                      // what the runtime has
//	current := agent.Merge(listed, records)          // + what the agent remembers
//	cmds := agent.Plan(desired, current, now)        // pure
//	err = agent.Apply(ctx, rt, cmds, agent.Observer{ // effects
//		Done: func(c agent.Command, err error) {
//			records[c.Module] = records[c.Module].Update(c, err, clock.Now())
//		},
//	})
//	wake, ok := agent.NextWake(cmds)                 // earliest back-off or retry
//	reported := agent.Report(desired, current, status, info, now)
//
// Plan is called again after every change of the deployment, when a module
// changes state, at the earliest Wait, and periodically. It reads nothing
// but its arguments, so each of its rules is a row of TestPlan. The agent's
// memory of a module (restart history, why it stopped it, failed commands)
// is a Record that the agent persists and that only Record.Update changes.
//
// # Module lifecycle
//
//	          Pull+Create            Start (first, status, boot: no back-off)
//	(absent) ───────────▶ created ──────────────────────────────▶ running
//	    ▲                                                         │  │
//	    │ Remove                          exit / Stop (unhealthy) │  │ unhealthy:
//	    │ (removed, updated)                                      ▼  │ Stop
//	    └──────────────────────────────────────────────────── exited ◀┘
//	                                                    │    ▲
//	         restart.Decide: Restart (counted) ─────────┘    │ Wait until back-off ends,
//	         back to running                                 │ or GiveUp / None: stays
//
//	dead ── [Pull] Remove Create Restart ──▶ running    missing ── [Pull] Create Start ──▶ running
//
// An update (any change of the spec hash: version, image, environment,
// createOptions) pulls the new image first and only then stops, removes and
// recreates the module, so a failed pull leaves the old version running.
// Stopping the agent never stops modules: there is no shutdown plan.
//
// # Ordering and isolation
//
// Removals come first. Then every start, on a deployment as after a
// reboot, follows edgeHub first, then ascending startupOrder, then name.
// Modules never started, modules whose desired status turned running and
// modules stopped by a shutdown (exited before Desired.BootTime) are
// started at once and uncounted, whatever their restart policy. Each
// command names its module; Apply skips the rest of a module's commands
// after one fails but carries on with the others, and Record.Retry makes
// Plan hold that module back for RetryDelay (10 s doubling to 300 s) while
// the others proceed. A module in back-off never delays modules later in
// the order.
//
// # Labels and hashing
//
// Modules are created with the labels LabelOwner (= Owner), LabelModule,
// LabelSpecHash, LabelImage and LabelVersion. Runtime.List returns only
// modules carrying LabelOwner, so the agent never touches containers it did
// not create. The spec hash is what Plan compares to decide on an update;
// see Desired.Spec for what it covers.
//
// # Caveats: where Outpost differs from Azure IoT Edge
//
//	                          Azure IoT Edge 1.x                       Outpost
//	restart policies          on-failure = on-unhealthy; no health     four real levels (restart package)
//	give up                   after 20 restarts, for ever              never, unless Backoff.MaxRestarts > 0
//	current state             last applied deployment, not the         the runtime's containers and their
//	                          containers (drift invisible)             spec-hash label (a changed or
//	                                                                   unlabelled container is recreated)
//	recreate on               any module difference but status        version, image, env, createOptions;
//	                          (restartPolicy, startupOrder too)       not restartPolicy/startupOrder/
//	                                                                   imagePullPolicy/status
//	update order              stop, remove, pull, create, start        pull first; a failed pull keeps the
//	                                                                   old module running
//	failed command            back-off 10 s × 2^n, uncapped; gives     per module, 10 s × 2^n capped at 300 s,
//	                          up after 20; skips the rest of the plan  never gives up; other modules proceed
//	startupOrder after reboot ignored (#7144)                          honoured, modules stopped by the
//	                                                                   shutdown restart whatever the policy
//	dead module               removed; recreated next deployment       recreated, as a counted restart
//	deleted by hand           recreated (watchdog for edgeAgent only)  recreated and started
//	registry password         echoed in reported properties            "***" in reports, never in logs
//	container labels          net.azure-devices.edge.*                 io.github.outpost-edge.*
//	reported times            0001-01-01T00:00:00 when unknown         left out when unknown
//	runtimeStatus             no "downloading"                         "downloading" during pulls
package agent
