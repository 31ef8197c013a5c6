// Package restart decides, as a pure function, what the edge agent does with a
// module that is not doing what its restart policy wants: restart it now,
// wait for the back-off, stop it because it is unhealthy, or give up.
//
// # Basics
//
//	d := restart.Decide(policy, status, history, now)
//	switch d.Action {
//	case restart.Restart: // restart it now (counted: History.RestartCount+1, LastRestart = now)
//	case restart.Wait:    // nothing until d.At; wake up then and decide again
//	case restart.Stop:    // running but unhealthy: stop it; the exit is then a failure
//	case restart.GiveUp:  // MaxRestarts reached: leave it down, report "failed" with d.Reason
//	case restart.None:    // the policy wants nothing done
//	}
//	if d.ResetHistory { /* clear the module's History */ }
//
// Decide reads no clock, no randomness and no state: the caller passes now, the
// runtime's view of the module (Status) and the restart history it keeps
// (History), so every rule is a row in a table test. Calling it again with the
// same inputs gives the same Decision, which is what lets the agent call it on
// every reconcile and sleep until the earliest Decision.At.
//
// # Policies
//
// Policies are ordered levels, each doing everything the one before does:
//
//	never < on-failure < on-unhealthy < always
//
//	policy        exit 0     exit ≠ 0, killed, dead   running, unhealthy   running, healthy
//	never         -          -                        -                    -
//	on-failure    -          restart (back-off)       -                    -
//	on-unhealthy  -          restart (back-off)       stop, then restart   -
//	always        restart    restart (back-off)       stop, then restart   -
//
// A module that has never been started gets Restart at once under every
// policy; the agent issues that first start uncounted.
//
// # Back-off
//
//	delay(n) = min(Unit × 2^n, Cap)      Unit 10 s, Cap 300 s by default
//	         = 10, 20, 40, 80, 160, 300, 300 … seconds
//
// n is History.RestartCount, the restarts since the last reset, and the delay
// counts from the exit (Status.ExitedAt). The history is reset once the module
// has run for ResetAfter (10 minutes by default) without being unhealthy:
// while it is running Decide sets ResetHistory, and a run that lasted that long
// before it exited is restarted as if its history were empty. Decide never
// gives up unless MaxRestarts > 0; then, once RestartCount reaches it, the
// answer is GiveUp until the history is reset (the agent clears it when a
// deployment changes the module or its desired status).
//
// Jitter is off by default so that tables are exact. With Policy.Jitter = f,
// each delay is shortened by up to f × delay, by a fraction drawn from a PCG
// generator seeded with Policy.JitterSeed, the exit time and n. The draw is a
// function of its inputs, so repeated calls for the same exit agree on At (a
// *rand.Rand shared across calls would move At on every reconcile), yet two
// modules that exit together are restarted apart.
//
// # Clock skew
//
// Exit times come from the runtime's clock, the agent's now from its own.
// An ExitedAt in the future (the clock stepped back, or a remote daemon runs
// ahead) is not trusted: the back-off then counts from History.LastRestart,
// which the agent stamped with its own clock; with no usable LastRestart the
// module is restarted at once, as Azure does. That cannot become a tight
// restart loop, because every restart stamps LastRestart and the next delay
// counts from it. An unknown ExitedAt (zero) is handled the same way.
//
// # Caveats: how this differs from Azure IoT Edge and Kubernetes
//
//	                          Azure IoT Edge 1.x                 Kubernetes (kubelet)        Outpost (this package)
//	on-failure / on-unhealthy both act like "restart on failure";  Always/OnFailure/Never;     four real levels; on-unhealthy
//	                          no health probe is read            liveness probe restarts     stops an unhealthy module (Docker
//	                                                                                         health check or a health command)
//	exit 0 under on-failure   started again at once, uncounted,  not restarted (OnFailure)   not restarted
//	                          on the next reconcile
//	exit 0 under always       restarted with back-off            restarted with back-off     restarted with back-off
//	back-off                  min(10 s × 2^n, 300 s) from exit   10 s doubling, cap 300 s    min(Unit × 2^n, Cap) from exit
//	reset                     after 10 min running               after 10 min running        after ResetAfter running healthy
//	give up                   after 20 restarts, for ever        never                       never, unless MaxRestarts > 0
//	clock skew (exit > now)   restart at once                    n/a                         count from the agent's own
//	                                                                                         LastRestart; at once if none
//	jitter                    none                               none                        optional, deterministic per exit
package restart
