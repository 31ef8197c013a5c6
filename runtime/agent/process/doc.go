// Package process is the edge agent's module runtime on plain OS processes:
// an agent.Runtime that runs each module as an executable, with its
// environment, arguments and working directory, its output captured to a
// log file and an optional health command. It is the embedded default on a
// device without Docker, and the runtime the features also run against.
//
// # Basics
//
//	rt, err := process.New(process.Options{StateDir: "/var/lib/outpost/process", ImageDir: "/opt/outpost/modules"})
//	go rt.Run(ctx) // exit tracking and health checks
//	err = rt.Create(ctx, spec) // agent.ModuleSpec from agent.Desired.Spec
//	err = rt.Start(ctx, spec.Name)
//	modules, err := rt.List(ctx)
//
// The program that uses the runtime must hand over to SuperviseMain when
// started with SuperviseArg (see "Processes"); cmd/edgeagent does:
//
//	if len(os.Args) > 1 && os.Args[1] == process.SuperviseArg {
//		os.Exit(process.SuperviseMain(os.Args[2:]))
//	}
//
// The runtime needs Linux (/proc, process groups, sessions).
//
// # Images
//
// settings.image names an executable; nothing is downloaded. Two forms:
//
//	exec:/abs/path/to/binary[:tag]              the file at that absolute path
//	[registry[:port]/][path/]name[:tag][@digest]  <Options.ImageDir>/name
//
// so "outpost/tempsensor:1.0", "localhost:5000/tempsensor" and
// "$upstream:443/tempsensor:1.0" all run <ImageDir>/tempsensor. The tag and
// the digest are ignored (the manifest validator appends ":latest" to an
// image that has none, "exec:" images included), and so are registry
// credentials. Pull only checks that the resolved path is a regular file
// with an execute bit, and fails with agent.ErrImageNotFound otherwise (or
// when a registry-style image is used with no ImageDir); Create checks the
// same. A module's ImageID is "sha256:" and the SHA-256 of the executable
// at create time, so replacing the file by another build shows as another
// imageHash.
//
// # createOptions
//
// A small subset of the Docker create JSON is used; keys match
// case-insensitively, as in Docker, and every other key (HostConfig,
// ExposedPorts, Labels, User…) is ignored with a debug log:
//
//	Cmd          the arguments (a string is one argument, as in Docker)
//	Entrypoint   overrides the executable: Entrypoint[0] is an absolute path
//	             or a name in ImageDir; the arguments are Entrypoint[1:] then
//	             Cmd. An empty Entrypoint is the same as none.
//	WorkingDir   an absolute path, which must exist when the module starts;
//	             by default <StateDir>/work/<name>, created at start and
//	             deleted by Remove
//	Env          ignored here: the agent has merged it into ModuleSpec.Env
//	Healthcheck  {Test, Interval, Timeout, StartPeriod, Retries}, durations
//	             in nanoseconds; Test is ["CMD", exe, args…],
//	             ["CMD-SHELL", "text"] (run by /bin/sh -c) or ["NONE"]
//
// Anything malformed among these fails Create with ErrCreateOptions and an
// error naming the field. The module's environment is exactly
// ModuleSpec.Env, plus Docker's default PATH when it has none: nothing of
// the agent's own environment leaks into a module.
//
// # Processes
//
// Modules must outlive the agent: stopping or restarting the agent never
// stops a module, and a new agent adopts the running ones. So the agent
// does not run modules as its children. Start launches a small supervisor,
// the agent's own executable re-run in a hidden mode, in a session of its
// own; the supervisor starts the module in a process group of its own:
//
//	agent ──(setsid)──► supervisor ──(setpgid)──► module ─► its children
//	                     │ pipe ◄─ stdout+stderr ─┘
//	                     ├─► logs/<name>.log   (each line with its time)
//	                     └─► modules/<name>.exit (exit code, once it exits)
//
// The module's stdin is /dev/null. The agent may exit at any time; the
// supervisor and the module carry on, and a later agent reads what the
// supervisor wrote. The supervisor waits for the module, kills what remains
// of its process group (as a container's processes die with its init
// process), and writes the exit code: the exit status, or 128 + the signal
// number when killed (143 for SIGTERM, 137 for SIGKILL), as Docker reports
// it. A module that cannot be started (missing
// executable or working directory, permission) is recorded as exited with
// 127 (not found) or 126 (anything else), and Start fails with ErrStart.
//
// Under systemd, the agent's unit needs KillMode=process, or stopping the
// agent's service kills every process of its control group, modules
// included.
//
// # States
//
//	         Create              Start
//	(none) ──────────► created ──────────► running
//	  ▲                   │                 ▲    │
//	  │      Remove       │          Start  │    │  exits by itself, or Stop:
//	  ├◄──────────────────┘                 │    ▼  SIGTERM, SIGKILL after the timeout
//	  ├◄─────────────────────────────────── exited
//	  │      Remove
//	  └◄─────────────────────────────────── dead   (state file unreadable, or of
//	         Remove                                 an unknown format version)
//
// Start of a running module and Stop of a module that is not running do
// nothing; Remove of a running module fails with ErrNotStopped. The runtime
// never restarts a module by itself: that is the agent's decision.
//
// # Adoption
//
// A module's state file records the pids of the module and of its
// supervisor, each with its start time from /proc/<pid>/stat (field 22),
// so that a pid reused by an unrelated process is never mistaken for the
// module (nor signalled by Stop). List, Stop and Run look at a module
// recorded as running in this order:
//
//	module pid alive, same start time      → running (adopted as is)
//	exit file of the current run           → exited, with its exit code and time
//	supervisor alive, same start time      → running (it is finishing)
//	otherwise                              → exited, exit code -1, exit time unknown
//
// The last case happens only when the supervisor was killed or the machine
// rebooted; then the exit code is unknown. Exits are thus exact across
// agent restarts, and a restarted agent's first List shows the modules as
// running with their original start times, without touching them.
// (Zombies count as dead: a supervisor is the agent's child only until the
// agent exits, and the agent reaps those it started.)
//
// # Exit watch
//
// WatchExits (agent.ExitWatcher) tells the agent each module exit the
// runtime records: by Run, List or Stop. Run records an exit at once when
// the module's supervisor is its own child (the supervisor writes the exit
// file, then exits, and the runtime's wait on it wakes Run); for a module
// adopted from an earlier agent, whose supervisor is nobody's child here,
// Run checks every 100 ms, while a watcher exists, that the running
// modules' processes are alive (one read of /proc/<pid>/stat each), and
// refreshes them when one is gone. No inotify and no channel to the
// supervisor: the exit file stays the one record of an exit. Sends never
// block; a watcher that lags misses events (16 are buffered).
//
// # Health checks
//
// Run keeps one checker goroutine per running module that has a
// Healthcheck. It runs Test every Interval, with the module's environment
// and working directory, in its own process group killed after Timeout,
// and applies Docker's rules: a success makes the module healthy; a failure
// (non-zero exit or timeout) counts unless the module is still starting and
// within StartPeriod of its start; Retries consecutive counted failures
// make it unhealthy. List reports it in ModuleState.Health: "starting"
// until the first result, none for a module without a check. Results live
// in memory: after an agent restart an adopted module is "starting" again
// until its next check, at most one Interval later. Defaults as in Docker:
// Interval and Timeout 30 s, Retries 3, StartPeriod 0.
//
// # Logs
//
// The supervisor writes each line of the module's output (stdout and
// stderr through one pipe, so their order is kept) as
//
//	2026-03-01T12:00:00.123456789Z the line
//
// to logs/<name>.log, appending across restarts of the module. When the
// file would exceed Options.LogMaxBytes (10 MiB by default) it is renamed
// logs/<name>.log.1, replacing the previous one, and a new file is started.
// Logs reads the rotated file then the current one, filters by Since and
// Until on the stored times, keeps the last Tail lines, and strips the
// time unless Timestamps is set. With Follow it then polls for new output
// (every 100 ms) until its ctx ends or Until passes, and follows rotations.
// Lines longer than 16 KiB are split.
//
// # On disk
//
//	<StateDir>/                  mode 0700: state files hold the environment
//	  modules/<name>.json        the module's state (runtime-owned, format below)
//	  modules/<name>.exit        the last run's exit (supervisor-owned)
//	  logs/<name>.log, .log.1    output, as above
//	  work/<name>/               default working directory
//
// The state file is JSON, written atomically (temporary file, fsync,
// rename):
//
//	{
//	  "version": 1,                  format version; another one is "dead"
//	  "name", "image", "env", "createOptions", "labels", "hash":  the ModuleSpec
//	  "imageId": "sha256:…",
//	  "exec": {"path", "args", "env", "dir", "health": {"test", "interval",
//	           "timeout", "startPeriod", "retries"}},   resolved at Create
//	  "createdAt": time,
//	  "state": "created" | "running" | "exited",   as last recorded
//	  "run": n,                      starts so far
//	  "pid", "pidStart", "supervisor", "supervisorStart",
//	  "startedAt", "exitedAt": time, "exitCode": n
//	}
//
// The exit file is {"run", "pid", "exitCode", "exitedAt", "err"}; it counts
// only when its run equals the state file's. A change to either format
// bumps the version and adds a migration.
//
// # Concurrency
//
// Create, Start, Stop and Remove hold a per-module lock, so calls for one
// module are serialized while different modules proceed in parallel. List,
// Logs and Run take no module lock to read; they record an exit they find
// only when the module's lock is free. Times recorded by the runtime
// (StartedAt, health start periods) come from Options.Now; exit times and
// log times come from the supervisor's wall clock.
package process
