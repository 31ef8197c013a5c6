package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// Bounds of the agent's calls to the hub.
const (
	// twinTimeout bounds one GetTwin or UpdateReported: the client waits for
	// a connection, so without it a report would wait for ever offline.
	twinTimeout = 30 * time.Second
	// ensureTimeout bounds the EnsureModule calls of one reconcile.
	ensureTimeout = 30 * time.Second
	// shutdownReportTimeout bounds the last report (406) when Run stops.
	shutdownReportTimeout = 5 * time.Second
	// maxRetryDelay caps the back-off of connecting, reporting and
	// creating identities.
	maxRetryDelay = time.Minute
)

// retryDelay is the wait after the n-th consecutive failure (n >= 1) of a
// call to the hub: min(Period, 1 s) doubling, capped at maxRetryDelay.
func (a *Agent) retryDelay(n int) time.Duration {
	d := min(a.opts.Period, time.Second)
	for i := 1; i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// onDesired is the Twin's desired-properties handler. It only notes that
// the document reached version and asks runDesired to read it: a
// notification is a merge patch after a service PATCH but the whole new
// document after a replace (a deployment), without nulls for what the
// replace removed, so merging notifications could keep modules the
// deployment dropped. Reading the twin costs one request per deployment.
// It runs on the client's goroutine and never blocks.
func (a *Agent) onDesired(_ map[string]any, version int64) {
	a.desiredMu.Lock()
	if version > a.desired.notified {
		a.desired.notified = version
	}
	a.desiredMu.Unlock()
	a.log.Debug("desired properties changed", "version", version)
	a.signalFetch()
}

func (a *Agent) signalFetch() {
	select {
	case a.fetchCh <- struct{}{}:
	default:
	}
}

// runDesired reads the desired document from the twin once connected and
// again after every notification of a newer version, with back-off while
// reads fail, and wakes the loop when it has a newer document. It returns
// when ctx ends.
func (a *Agent) runDesired(ctx context.Context) {
	failures := 0
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.fetchCh:
		case <-retry:
		}
		retry = nil
		a.desiredMu.Lock()
		need := !a.desired.seen || a.desired.notified > a.desired.version
		a.desiredMu.Unlock()
		if !need || !a.isConnected() {
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, twinTimeout)
		desired, _, err := a.deps.Twin.GetTwin(tctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := a.retryDelay(failures)
			a.log.Warn("cannot read the desired properties", "retry_in", delay, "err", a.redactErr(err))
			retry = time.After(delay)
			continue
		}
		version, _ := versionOf(desired)
		a.desiredMu.Lock()
		d := &a.desired
		fresh := !d.seen || version > d.version
		if fresh {
			d.doc, d.version, d.seen = twin.StripReadOnly(desired), version, true
		}
		stale := d.notified > d.version
		a.desiredMu.Unlock()
		if fresh {
			a.wake()
		}
		if stale {
			// The read raced the update it was told about: read again.
			failures++
			retry = time.After(a.retryDelay(failures))
			continue
		}
		failures = 0
	}
}

// versionOf reads the "$version" member of a twin section.
func versionOf(section map[string]any) (int64, bool) {
	switch v := section["$version"].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case float64:
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	}
	return 0, false
}

// desiredJSON returns the twin's desired document with its "$version", as
// deployment.ParseAgent reads it, and whether the twin has been read yet.
func (a *Agent) desiredJSON() (raw []byte, version int64, seen bool, err error) {
	a.desiredMu.Lock()
	defer a.desiredMu.Unlock()
	d := a.desired
	if !d.seen {
		return nil, 0, false, nil
	}
	doc := twin.Clone(d.doc)
	if doc == nil {
		doc = map[string]any{}
	}
	doc["$version"] = d.version
	raw, err = json.Marshal(doc)
	return raw, d.version, true, err
}

// runLink connects to the hub until it succeeds or ctx ends: it first makes
// sure the $edgeAgent identity accepts the agent's key, then calls
// Twin.Connect, with back-off between attempts. The client reconnects by
// itself after that.
func (a *Agent) runLink(ctx context.Context) {
	self := IdentityOf(deployment.EdgeAgentName)
	for attempt := 1; ; attempt++ {
		if _, err := a.deps.Identities.EnsureModule(ctx, self); err != nil && ctx.Err() == nil {
			// Not fatal: an identity set up by an earlier run still works.
			a.log.Warn("cannot check the agent's own identity in the hub", "identity", self, "err", a.redactErr(err))
		}
		err := a.deps.Twin.Connect(ctx)
		if err == nil {
			a.log.Info("connected to the hub", "identity", a.opts.DeviceID+"/"+self)
			a.connectOne.Do(func() { close(a.connected) })
			a.signalFetch()
			a.signalReport()
			a.wake()
			return
		}
		if ctx.Err() != nil {
			return
		}
		delay := a.retryDelay(attempt)
		a.log.Warn("cannot connect to the hub; running from the saved deployment meanwhile", "attempt", attempt, "retry_in", delay, "err", a.redactErr(err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// publish hands a full report to the reporter, latest wins. It is
// normalised as the twin would store it (JSON numbers as json.Number) so
// that diffs against what the hub returns are exact, and secrets are
// redacted on the way.
func (a *Agent) publish(report map[string]any) {
	b, err := json.Marshal(report)
	if err != nil {
		a.log.Error("cannot encode the reported properties", "err", err)
		return
	}
	for _, s := range *a.secrets.Load() {
		if q, err := json.Marshal(s); err == nil {
			b = bytes.ReplaceAll(b, q[1:len(q)-1], []byte(redacted))
		}
	}
	doc, err := twin.DecodePatch(b)
	if err != nil {
		a.log.Error("cannot encode the reported properties", "err", err)
		return
	}
	a.reportMu.Lock()
	a.report = doc
	a.reportSeq++
	a.reportMu.Unlock()
	a.signalReport()
}

func (a *Agent) signalReport() {
	select {
	case a.reportCh <- struct{}{}:
	default:
	}
}

// latestReport returns the last published report and its sequence number.
func (a *Agent) latestReport() (map[string]any, uint64) {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	return a.report, a.reportSeq
}

// runReporter sends the reported-properties patches: after each connection
// it reads the twin's reported section once, then sends the difference
// between it and the latest report, and only when there is one. A failed
// send is retried with back-off, after reading the twin again (the patch
// may or may not have been applied). It returns when ctx ends.
func (a *Agent) runReporter(ctx context.Context) {
	var base map[string]any // what the twin holds; nil: unknown
	failures := 0
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.reportCh:
		case <-retry:
		}
		retry = nil
		if !a.isConnected() {
			continue // runLink signals once connected
		}
		rep, seq := a.latestReport()
		if rep == nil {
			continue
		}
		err := func() error {
			if base == nil {
				tctx, cancel := context.WithTimeout(ctx, twinTimeout)
				_, reported, err := a.deps.Twin.GetTwin(tctx)
				cancel()
				if err != nil {
					return fmt.Errorf("read the twin: %w", err)
				}
				base = twin.StripReadOnly(reported)
			}
			patch := twin.Diff(base, rep)
			if len(patch) == 0 {
				return nil
			}
			tctx, cancel := context.WithTimeout(ctx, twinTimeout)
			_, err := a.deps.Twin.UpdateReported(tctx, patch)
			cancel()
			if err != nil {
				base = nil
				return fmt.Errorf("update reported properties: %w", err)
			}
			a.log.Debug("reported properties updated", "keys", len(patch))
			base = rep
			return nil
		}()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := a.retryDelay(failures)
			a.log.Warn("cannot report to the hub", "retry_in", delay, "err", a.redactErr(err))
			retry = time.After(delay)
			continue
		}
		failures = 0
		a.sentSeq.Store(seq)
		select {
		case a.sentCh <- struct{}{}:
		default:
		}
	}
}

// shutdownReport publishes the last report with lastDesiredStatus 406
// "Agent is not running" and waits (at most shutdownReportTimeout) for
// the reporter to send it. Module statuses are left as last reported: the
// modules keep running after the agent stops.
func (a *Agent) shutdownReport() {
	if !a.isConnected() {
		return
	}
	rep, _ := a.latestReport()
	if rep == nil {
		return
	}
	rep = twin.Clone(rep)
	rep["lastDesiredStatus"] = map[string]any{
		"code": json.Number(fmt.Sprint(deployment.CodeNotRunning)), "description": deployment.ErrNotRunning.Error(),
	}
	a.reportMu.Lock()
	a.report = rep
	a.reportSeq++
	want := a.reportSeq
	a.reportMu.Unlock()
	a.signalReport()
	t := time.NewTimer(shutdownReportTimeout)
	defer t.Stop()
	for a.sentSeq.Load() < want {
		select {
		case <-a.sentCh:
		case <-t.C:
			a.log.Warn("could not report the shutdown to the hub in time")
			return
		}
	}
}
