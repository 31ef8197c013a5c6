package process

import (
	"context"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

var _ agent.ExitWatcher = (*Runtime)(nil)

// exitPoll is how often Run checks, while WatchExits has a watcher, that
// the running modules' processes are still alive: one read of
// /proc/<pid>/stat per module. It bounds how late an exit is noticed when
// the module's supervisor is not the runtime's child (a module adopted
// from an earlier agent); the exit of a supervisor the runtime started
// wakes Run at once.
const exitPoll = 100 * time.Millisecond

// watchBuffer is how many exits a watcher's channel holds; more are
// dropped until the watcher reads (the agent re-Lists on any event).
const watchBuffer = 16

// WatchExits implements agent.ExitWatcher: the channel receives a module's
// name each time the runtime records its exit (see the package
// documentation, "Exit watch"), until ctx ends, when it is closed. Exits
// are recorded by Run (within 100 ms of the module's end while a watcher
// exists), by List and by Stop; without Run only the last two tell.
func (r *Runtime) WatchExits(ctx context.Context) (<-chan string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan string, watchBuffer)
	r.mu.Lock()
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	r.kick() // start the exit poll with a fresh list of running modules
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		delete(r.watchers, ch)
		close(ch)
		r.mu.Unlock()
	}()
	return ch, nil
}

// notifyExit tells every watcher that module name exited, without ever
// blocking: a watcher whose channel is full misses it.
func (r *Runtime) notifyExit(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.watchers {
		select {
		case ch <- name:
		default:
		}
	}
}

// watched reports whether WatchExits has a watcher.
func (r *Runtime) watched() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.watchers) > 0
}

// anyGone reports whether one of procs is no longer alive.
func anyGone(procs []proc) bool {
	for _, p := range procs {
		if !alive(p.Pid, p.Start) {
			return true
		}
	}
	return false
}
