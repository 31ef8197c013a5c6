package upstream

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errRenewal is the reason recorded on a connection closed to renew its token.
var errRenewal = errors.New("renewing SAS token")

// Run owns the link until ctx ends: it connects, subscribes, re-attaches every attached
// identity, renews the token before it expires (by reconnecting: MQTT 3.1.1 has no in-band
// re-authentication), notices a lost link (keep-alive, closed socket, failed write) and
// reconnects with capped exponential back-off and jitter: capped at UnreachableMax while IoT
// Hub cannot be reached and after a lost link, at ReconnectMax after a refusal (CONNACK 0x05
// while IoT Hub refuses authentication, 0x03 while it throttles). Refusals are logged and
// retried like any other failure: they may be transient, and giving up would strand every
// client of the hub. It returns nil when ctx ends, after disconnecting; ErrRunning if Run is
// already running.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	c.runWorkers(ctx, &wg)

	attempt := 0
	for {
		cn, err := c.dial(ctx)
		if err != nil {
			c.endRenewal()
			c.setConnected(false)
			if ctx.Err() != nil {
				return nil
			}
			wait := backoff(attempt, c.opts.ReconnectMin, c.retryCap(err), c.opts.Rand.Float64())
			attempt++
			c.log.Info("connecting to IoT Hub failed", "attempt", attempt, "retry_in", wait, "err", err)
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		c.activate(ctx, cn, &wg)
		if attempt > 0 {
			c.log.Info("connected to IoT Hub", "after_attempts", attempt)
		}
		switch c.hold(ctx, cn) {
		case holdDone:
			c.deactivate(cn)
			cn.close(ctx.Err())
			c.setConnected(false)
			return nil
		case holdLost:
			c.deactivate(cn)
			c.setConnected(false)
			if time.Since(cn.started) >= stableAfter {
				attempt = 0
			}
			wait := backoff(attempt, c.opts.ReconnectMin, c.opts.UnreachableMax, c.opts.Rand.Float64())
			attempt++
			c.log.Warn("link to IoT Hub lost", "err", cn.err, "retry_in", wait)
			if !sleep(ctx, wait) {
				return nil
			}
		case holdRenew:
			c.log.Debug("renewing SAS token")
			c.beginRenewal()
			c.deactivate(cn)
			c.drain(ctx, cn)
			cn.close(errRenewal)
			attempt = 0
		}
	}
}

// retryCap is the back-off's cap after a failed connection attempt: ReconnectMax when IoT
// Hub refused it (it answered: a CONNACK other than accepted, a refused subscription, a
// token we could not sign), UnreachableMax when it could not be reached (no route, refused
// or reset TCP, a TLS or MQTT handshake that failed or timed out).
func (c *Client) retryCap(err error) time.Duration {
	if errors.Is(err, ErrConnectRefused) || errors.Is(err, ErrProtocol) || errors.Is(err, errSign) {
		return c.opts.ReconnectMax
	}
	return c.opts.UnreachableMax
}

// holdResult says why hold returned.
type holdResult int

const (
	holdDone  holdResult = iota // ctx ended
	holdLost                    // the connection dropped
	holdRenew                   // the token is due for renewal
)

// hold waits while cn is in use.
func (c *Client) hold(ctx context.Context, cn *conn) holdResult {
	t := time.NewTimer(c.renewAfter - time.Since(cn.started))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return holdDone
	case <-cn.lost:
		return holdLost
	case <-t.C:
		return holdRenew
	}
}

// activate makes cn the usable connection and starts re-attaching on it.
func (c *Client) activate(ctx context.Context, cn *conn, wg *sync.WaitGroup) {
	c.mu.Lock()
	c.conn = cn
	if c.renewing != nil {
		close(c.renewing)
		c.renewing = nil
	}
	c.mu.Unlock()
	c.setConnected(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.reattach(ctx, cn)
	}()
}

// deactivate withdraws cn: new operations no longer get it.
func (c *Client) deactivate(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
}

// beginRenewal makes operations wait for the next connection instead of failing with
// ErrOffline, until endRenewal or activate.
func (c *Client) beginRenewal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.renewing == nil {
		c.renewing = make(chan struct{})
	}
}

// endRenewal releases operations waiting for a renewal that failed: they get ErrOffline.
func (c *Client) endRenewal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.renewing != nil {
		close(c.renewing)
		c.renewing = nil
	}
}

// drain waits, at most drainTimeout, for the operations in flight on cn to finish.
func (c *Client) drain(ctx context.Context, cn *conn) {
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
		c.log.Debug("renewal: operations still in flight fail with ErrOffline")
	case <-ctx.Done():
	}
}

// sleep waits d and reports false if ctx ended meanwhile.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
