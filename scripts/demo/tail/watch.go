package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// pollWait is the longest long poll; the status is shown between polls.
const pollWait = 10 * time.Second

// watcher prints what arrives at the hub, and counts what came through the edge hub.
type watcher struct {
	hub         *hub
	device      string
	exitAfter   int
	statusEvery time.Duration
	out         io.Writer

	readings, alerts int // through the edge hub, from the device's tempSensor and filter
}

// Run prints events until ctx is done (then it returns ctx.Err() when counting toward
// --exit-after, else nil) or, with exitAfter, until enough arrived (nil).
func (w *watcher) Run(ctx context.Context) error {
	var after int64
	nextStatus := time.Now() // the status first, then the messages
	for {
		wait := pollWait
		if w.statusEvery > 0 {
			wait = min(wait, max(time.Until(nextStatus), time.Millisecond))
		}
		evs, err := w.hub.events(ctx, after, wait)
		if ctx.Err() != nil {
			if w.exitAfter > 0 {
				return ctx.Err()
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the hub's messages: %w", err)
		}
		for _, e := range evs {
			after = max(after, e.Seq)
			fmt.Fprintln(w.out, formatEvent(e))
			w.count(e)
		}
		done := w.exitAfter > 0 && w.readings >= w.exitAfter && w.alerts >= w.exitAfter
		if done || (w.statusEvery > 0 && !time.Now().Before(nextStatus)) {
			nextStatus = time.Now().Add(w.statusEvery)
			w.showStatus(ctx)
		}
		if done {
			return nil
		}
	}
}

// showStatus prints the modules' status as the edge agent last reported it.
func (w *watcher) showStatus(ctx context.Context) {
	rep, err := w.hub.agentReported(ctx, w.device)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		fmt.Fprintf(w.out, "-- module status: %v\n", err)
	default:
		fmt.Fprintln(w.out, formatStatus(w.device, rep))
	}
}

// count counts the readings and alerts of the device's modules that the edge hub sent.
func (w *watcher) count(e event) {
	if e.DeviceID != w.device || !viaEdgeHub(e) {
		return
	}
	switch {
	case e.ModuleID == "tempSensor" && e.SystemProperties["$.on"] == "temperatureOutput":
		w.readings++
	case e.ModuleID == "filter" && e.SystemProperties["$.on"] == "alertOutput":
		w.alerts++
	}
}
