package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// NextWake returns the earliest At of the Wait commands in cmds: when the
// agent should reconcile again even if nothing else happens. ok is false
// when there is no Wait.
func NextWake(cmds []Command) (at time.Time, ok bool) {
	for _, c := range cmds {
		if c.Kind == Wait && (!ok || c.At.Before(at)) {
			at, ok = c.At, true
		}
	}
	return at, ok
}

// Observer receives what happens while Apply runs. Nil fields are ignored.
type Observer struct {
	// Progress is called during pulls with the module the pull is for.
	Progress func(module string, p PullProgress)
	// Done is called after each command Apply ran or skipped (err wraps
	// ErrSkipped then), in order; the agent updates the module's Record
	// with Record.Update here. Wait commands are not reported.
	Done func(c Command, err error)
}

// Apply executes cmds in order against rt. A failed command skips the later
// commands for the same module (no create after a failed pull) but never
// those of other modules: one broken module does not hold up the others.
// Wait commands are passed over. Apply stops early when ctx is done. It
// returns the failures joined (errors.Join), nil when every command ran.
func Apply(ctx context.Context, rt Runtime, cmds []Command, obs Observer) error {
	failed := make(map[string]bool)
	var errs []error
	for _, c := range cmds {
		if c.Kind == Wait {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("plan interrupted before %s: %w", c, err))...)
		}
		var err error
		if failed[c.Module] {
			err = fmt.Errorf("module %q: %s: %w", c.Module, c.Kind, ErrSkipped)
		} else {
			var progress func(PullProgress)
			if obs.Progress != nil {
				module := c.Module
				progress = func(p PullProgress) { obs.Progress(module, p) }
			}
			if err = c.execute(ctx, rt, progress); err != nil {
				failed[c.Module] = true
				errs = append(errs, err)
			}
		}
		if obs.Done != nil {
			obs.Done(c, err)
		}
	}
	return errors.Join(errs...)
}
