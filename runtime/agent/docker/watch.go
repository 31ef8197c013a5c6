package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/outpost-edge/outpost/runtime/agent"
)

var _ agent.ExitWatcher = (*Runtime)(nil)

// Bounds of the exit watch.
const (
	// watchBuffer is how many exits the watch channel holds; more are
	// dropped until the agent reads (it re-Lists on any event).
	watchBuffer = 16
	// watchRetryMin and watchRetryMax bound the wait before reconnecting a
	// broken event stream; it doubles from the first to the second while
	// the engine stays unreachable, and starts again at the first once an
	// event arrives.
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// WatchExits implements agent.ExitWatcher on the engine's events API: the
// channel receives a module's name for each "die" event of a container
// labelled agent.LabelOwner = agent.Owner (a crash, an end, a stop or a
// kill), until ctx ends, when it is closed. When the stream breaks (the
// engine restarted, the socket closed) it reconnects with back-off and
// asks the engine to replay the events since the last one it saw, so an
// exit during the gap is still told. It never fails: the first connection
// is made in the background, as every later one.
func (r *Runtime) WatchExits(ctx context.Context) (<-chan string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(chan string, watchBuffer)
	go r.watchExits(ctx, out)
	return out, nil
}

// watchExits subscribes to die events until ctx ends, reconnecting.
func (r *Runtime) watchExits(ctx context.Context, out chan<- string) {
	defer close(out)
	// Replay from here after a break. The engine's wall clock, not
	// Options.Now: since is compared with the engine's event times.
	since := time.Now()
	delay := watchRetryMin
	for {
		err := r.readExits(ctx, since, out, func(t time.Time) {
			since, delay = t, watchRetryMin
		})
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("docker event stream broke; reconnecting", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, watchRetryMax)
	}
}

// readExits reads one event stream, from since, until it breaks or ctx
// ends, sending each module's name to out (never blocking) and reporting
// each event's time to seen.
func (r *Runtime) readExits(ctx context.Context, since time.Time, out chan<- string, seen func(time.Time)) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := r.cli.Events(sctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", string(events.ActionDie)),
			filters.Arg("label", agent.LabelOwner+"="+agent.Owner),
		),
	})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil {
				err = fmt.Errorf("event stream ended")
			}
			return err
		case m, ok := <-msgs:
			if !ok {
				return fmt.Errorf("event stream ended")
			}
			if m.TimeNano > 0 {
				seen(time.Unix(0, m.TimeNano))
			}
			name := m.Actor.Attributes["name"]
			r.log.Debug("container died", "module", name, "exitCode", m.Actor.Attributes["exitCode"])
			select {
			case out <- name:
			default:
			}
		}
	}
}
