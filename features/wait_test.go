package features

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// pollInterval is how often eventually checks its condition.
const pollInterval = 200 * time.Millisecond

// eventually calls check until it returns nil, ctx ends or timeout passes;
// then it returns the last error of check, saying what was waited for. It
// is the suite's only way to wait for the system: no sleeps.
func eventually(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: still not so after %s: %w", what, timeout, err)
			}
			return fmt.Errorf("%s: %w (last check: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// consistently calls check for the whole duration and fails as soon as it
// returns an error: what must stay true while the system is given time to
// do the wrong thing.
func consistently(parent context.Context, d time.Duration, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, d)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := check(ctx)
		switch {
		case parent.Err() != nil:
			return fmt.Errorf("%s: %w", what, parent.Err())
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("%s: %w", what, err)
		case ctx.Err() != nil:
			return nil // the period is over (a check cut short by it does not count)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
