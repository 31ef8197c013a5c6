// Package agent is the decision core of the Outpost edge agent: it computes,
// as pure functions, what to do to make the device run its deployment
// (Plan), what to report about it (Report, StatusOf) and what environment a
// module gets (Env), and it defines the narrow Runtime interface through
// which the commands take effect (Command.Execute, Apply). Agent runs that
// core for real: it reads the deployment from the $edgeAgent twin,
// reconciles, creates module identities and reports (see "Agent").
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
// # Agent
//
// Agent is the long-running part built on the pure core: New(Options, Deps)
// then Run(ctx). Deps are a Runtime, a Twin (the connection as
// {edge}/$edgeAgent, a *moduleclient.Client in production), Identities
// (HubIdentities: module identities over the IoT Hub service API) and a
// StateDB. Run owns one goroutine for the loop and three helpers:
//
//	link      EnsureModule("$edgeAgent"), Twin.Connect; back-off until connected
//	desired   on connect and on every desired notification: GetTwin, keep the
//	          newest document, wake the loop
//	reporter  on every new report: diff against the twin's reported section
//	          (read once per connection) and UpdateReported only a non-empty patch
//	loop      reconcile, then wait for a wake-up (coalesced, size 1), the
//	          earliest Wait, or Options.Period (5 s)
//	exits     only when Deps.Runtime is an ExitWatcher: wake the loop 50 ms
//	          after the first module exit of a burst; a watch that fails or
//	          ends is set up again after Options.Period
//
// So a crash is seen at once: restart.Decide runs within the debounce, the
// back-off counts from the runtime's exit time, and the loop's timer for
// the earliest Wait restarts the module when the back-off ends, not at the
// next period. Without a watch, exits are noticed at the next reconcile.
// The watch never blocks the loop: its events are hints and coalesce.
//
// One reconcile: parse the desired document if its version changed (a
// valid one becomes the deployment and is saved; an invalid one sets
// lastDesiredStatus 400, 412 or 417 and the last valid deployment keeps
// running); make sure every desired module's identity exists in the hub
// (once per run, back-off on failure); compute the injected environment;
// List, Merge, Plan, Apply, update and save the Records; set
// lastDesiredStatus (200, or 500 with the failures, redacted, while any
// module waits to retry a failed command); publish the Report.
//
// Pulls use the deployment's registryCredentials entry for the image's
// registry; when none applies, a login the operator stored on the device
// (RegistriesFile, written by edgectl login, read through
// Options.RegistryLogins at every reconcile) is used instead. Passwords of
// both are redacted wherever they could be echoed.
//
// Offline, the loop runs the saved deployment: module keys are derived
// from the device key (DeriveModuleKey) and identity generation ids are
// saved, so modules get the same environment and spec hash as online, and
// nothing is recreated when the hub comes back. When ctx ends Run reports
// 406 (best effort) and returns; modules are never stopped but by a plan.
//
// The direct methods of $edgeAgent are ping, RestartModule
// ({"schemaVersion":"1.0","id":"<module>"}: stop and start a running
// module, not counted as a restart) and GetModuleLogs (Azure's payload;
// answer [{"id":"<module>","payload":"<text>"}], or "payloadBytes" with
// gzip; with contentType "json" the payload is Azure's array of
// {iothub, device, id, stream, loglevel, text, timestamp}). Bad payloads get 400, other failures 500, both {"message": ...}.
//
// # State database
//
// StateDB is one bbolt file (agent.db, mode 0600):
//
//	meta
//	  version         schema version ("1"); migrated by OpenStateDB, newer is refused
//	deployment
//	  desired         last valid $edgeAgent desired properties, JSON with "$version"
//	                  (it holds registry passwords, hence the file mode)
//	records
//	  <module name>   Record, JSON
//	identities
//	  <identity id>   IdentityInfo (generation id), JSON
//
// No module key is stored: keys are derived from the device key.
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
//	module keys               from the identity service (derived       derived from the edge device key by the
//	                          from the device's master key)            agent; identities created or updated
//	                                                                   with the device's own token
//	desired notifications     merged as patches (version + 1)          a signal only: the agent re-reads the
//	                                                                   twin (a replace sends no nulls)
//	shutdown report           406, every module "unknown"              406; module statuses left as they were
//	                                                                   (the modules keep running)
//	RestartModule             restart command                          stop + start, not counted
package agent
