package cli

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// DefaultGCPercent is the daemons' garbage-collection target (GOGC) when the GOGC
// environment variable does not set one. The daemons' live heaps are small (under 1 MB
// for an agent with three modules, about 2 MB for an edge hub carrying 100 clients), so
// Go's default of 100, with its 4 MB minimum heap goal, lets a heap grow to several times
// what is live between collections. At 50 the agent + edge hub of the agent-memory
// benchmark (100 clients at 1,000 msg/s) use about 4.7 MiB less RSS (43.7 → 39.0 MiB);
// the price is CPU: the hub used 3.0–3.4 s of CPU per 10 s of that load at 100 and
// 3.6–4.2 s at 50 (measured 2026-11), the agent about 10% more of very little.
const DefaultGCPercent = 50

// TuneMemory applies the daemons' memory defaults, each unless the environment (read
// through getenv) overrides it:
//
//   - the GC target DefaultGCPercent, unless GOGC is set (then the runtime already
//     applied it);
//   - no heap profiling (runtime.MemProfileRate 0) unless profiling is true (the daemon
//     serves its profiles) or GODEBUG sets memprofilerate: the profiler's sampled
//     records and bucket table cost 0.2 to 0.7 MiB of RSS per process.
//
// Call it first thing in main (or run), before the daemon allocates much.
func TuneMemory(getenv func(string) string, profiling bool) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	if !profiling && !strings.Contains(getenv("GODEBUG"), "memprofilerate=") {
		runtime.MemProfileRate = 0
	}
}
