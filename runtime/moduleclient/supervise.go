package moduleclient

import (
	"errors"
	"time"
)

// errRenewal is the reason recorded on a connection closed to renew its token.
var errRenewal = errors.New("renewing SAS token")

// stableAfter is how long a connection must last for the back-off to start again from
// ReconnectMin. A hub that accepts the CONNECT and then drops us at once (another client with
// the same identity, a throttle) must not be hammered.
const stableAfter = 30 * time.Second

// supervise keeps the client connected from the first successful Connect until Close. It owns
// every connection after the first and is the only goroutine that replaces one:
//
//   - the connection is lost: report it, wait the back-off, reconnect;
//   - the token reaches RenewFraction of its lifetime: stop handing out the connection, let
//     in-flight publishes finish (drainTimeout), disconnect, reconnect at once with a new token;
//   - Close: disconnect and return.
func (c *Client) supervise(cn *conn) {
	defer close(c.done)
	rnd := newRand()
	attempt := 0
	for {
		var (
			wait time.Duration
			down bool // (false, err) was reported, so (true, nil) must follow
		)
		switch c.hold(cn) {
		case holdClosed:
			c.deactivate(cn)
			cn.close(ErrClosed)
			return
		case holdLost:
			c.deactivate(cn)
			c.log.Info("connection lost", "err", cn.err)
			c.emit(false, cn.err)
			down = true
			if time.Since(cn.started) >= stableAfter {
				attempt = 0
			}
			wait = backoff(attempt, c.opts.ReconnectMin, c.opts.ReconnectMax, rnd.Float64())
			attempt++
		case holdRenew:
			c.log.Debug("renewing SAS token")
			c.deactivate(cn)
			c.drain(cn)
			cn.close(errRenewal)
			attempt = 0
		}
		for {
			if !c.sleep(wait) {
				return
			}
			next, err := c.dial(c.ctx)
			if err == nil {
				cn = next
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Info("reconnecting failed", "attempt", attempt+1, "err", err)
			c.emit(false, err)
			down = true
			wait = backoff(attempt, c.opts.ReconnectMin, c.opts.ReconnectMax, rnd.Float64())
			attempt++
		}
		c.activate(cn)
		if down {
			c.emit(true, nil)
		}
	}
}

// holdResult says why hold returned.
type holdResult int

const (
	holdClosed holdResult = iota // Close was called
	holdLost                     // the connection dropped
	holdRenew                    // the token is due for renewal
)

// hold waits while cn is in use.
func (c *Client) hold(cn *conn) holdResult {
	var renew <-chan time.Time
	if c.renewable {
		t := time.NewTimer(c.renewAfter - time.Since(cn.signed))
		defer t.Stop()
		renew = t.C
	}
	select {
	case <-c.ctx.Done():
		return holdClosed
	case <-cn.lost:
		return holdLost
	case <-renew:
		return holdRenew
	}
}

// sleep waits d and reports false if the client was closed meanwhile.
func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drain waits, at most drainTimeout, for the operations in flight on cn to finish. Nothing new
// starts on cn once it was deactivated.
func (c *Client) drain(cn *conn) {
	done := make(chan struct{})
	go func() {
		cn.inflight.Wait()
		close(done)
	}()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.log.Debug("renewal: operations still in flight are retried on the next connection")
	case <-c.ctx.Done():
	}
}
