package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// hubAPI calls the fake hub's service API and fake-only API over its plain HTTP listener
// (the same APIs and authorisation as HTTPS, without the TLS cost on a 2-core machine),
// with a token of the service connection string.
type hubAPI struct {
	base    string // http://127.0.0.1:port
	service sas.ConnectionString
	http    *http.Client
}

// do sends a request and decodes a 2xx JSON answer into out (when not nil).
func (h *hubAPI) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return err
	}
	tok, err := h.service.Token(time.Now(), time.Hour)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: the fake hub answered %s: %s", method, path, resp.Status, truncate(string(b), 300))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// apply sets a deployment on the edge device, as edgectl deploy does.
func (h *hubAPI) apply(ctx context.Context, device string, content map[string]any) error {
	return h.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(device)+"/applyConfigurationContent?api-version=2021-04-12", content, nil)
}

// agentTwin reads the $edgeAgent module twin of device.
func (h *hubAPI) agentTwin(ctx context.Context, device string) (agentReported, error) {
	var raw json.RawMessage
	if err := h.do(ctx, http.MethodGet, "/twins/"+url.PathEscape(device)+"/modules/$edgeAgent?api-version=2021-04-12", nil, &raw); err != nil {
		return agentReported{}, err
	}
	return parseAgentTwin(raw)
}

// agentReported is what the scenarios read of the $edgeAgent twin: the desired
// version and the agent's report of it and of every module.
type agentReported struct {
	DesiredVersion     int64 // properties.desired.$version
	LastDesiredVersion int64 // properties.reported.lastDesiredVersion
	LastDesiredCode    int   // properties.reported.lastDesiredStatus.code
	// Modules holds the modules and the system modules (edgeHub) by name.
	Modules map[string]moduleReported
}

// moduleReported is one module in the agent's reported properties.
type moduleReported struct {
	RuntimeStatus string `json:"runtimeStatus"`
	RestartCount  int    `json:"restartCount"`
	// LastStart and LastExit are the module's last start and exit as reported (strings,
	// compared only for change: a new start or exit).
	LastStart string `json:"lastStartTimeUtc"`
	LastExit  string `json:"lastExitTimeUtc"`
}

// applied reports whether the agent has reported on desired version v (or a later one).
func (r agentReported) applied(v int64) bool { return r.LastDesiredVersion >= v }

// status returns module name's runtimeStatus, "" when it is not reported.
func (r agentReported) status(name string) string { return r.Modules[name].RuntimeStatus }

// parseAgentTwin reads a service-side module twin (GET /twins/{d}/modules/$edgeAgent).
func parseAgentTwin(b []byte) (agentReported, error) {
	var t struct {
		Properties struct {
			Desired struct {
				Version int64 `json:"$version"`
			} `json:"desired"`
			Reported struct {
				LastDesiredVersion int64 `json:"lastDesiredVersion"`
				LastDesiredStatus  struct {
					Code int `json:"code"`
				} `json:"lastDesiredStatus"`
				SystemModules map[string]moduleReported `json:"systemModules"`
				Modules       map[string]moduleReported `json:"modules"`
			} `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return agentReported{}, fmt.Errorf("$edgeAgent twin: %w", err)
	}
	rep := t.Properties.Reported
	r := agentReported{
		DesiredVersion:     t.Properties.Desired.Version,
		LastDesiredVersion: rep.LastDesiredVersion,
		LastDesiredCode:    rep.LastDesiredStatus.Code,
		Modules:            map[string]moduleReported{},
	}
	for name, m := range rep.SystemModules {
		r.Modules[name] = m
	}
	for name, m := range rep.Modules {
		r.Modules[name] = m
	}
	return r, nil
}

// reportPoll is how often waitReported reads the $edgeAgent twin: the resolution of the
// "reported" times.
const reportPoll = 25 * time.Millisecond

// waitReported polls the $edgeAgent twin until ok is true of it and returns when the poll
// that saw it returned, and what it saw.
func (h *hubAPI) waitReported(ctx context.Context, device string, ok func(agentReported) bool) (time.Time, agentReported, error) {
	var last agentReported
	var lastErr error
	for {
		r, err := h.agentTwin(ctx, device)
		at := time.Now()
		if err == nil && ok(r) {
			return at, r, nil
		}
		if err == nil {
			last = r
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil && last.Modules == nil {
				return time.Time{}, last, fmt.Errorf("%w (last read: %v)", ctx.Err(), lastErr)
			}
			return time.Time{}, last, fmt.Errorf("%w (last report: %s)", ctx.Err(), last.describe())
		case <-time.After(reportPoll):
		}
	}
}

// describe summarises a report for error messages.
func (r agentReported) describe() string {
	s := fmt.Sprintf("desired v%d, reported v%d code %d", r.DesiredVersion, r.LastDesiredVersion, r.LastDesiredCode)
	for name, m := range r.Modules {
		s += fmt.Sprintf(", %s %s", name, m.RuntimeStatus)
	}
	return s
}

// hubEvent is a device-to-cloud message the fake hub captured, stamped with the time the
// harness received it.
type hubEvent struct {
	Seq        int64             `json:"seq"`
	DeviceID   string            `json:"deviceId"`
	ModuleID   string            `json:"moduleId"`
	Properties map[string]string `json:"properties"`
	At         time.Time
}

// firstOfRun reports whether e is the first message a run of tempsensor sent: its
// sequenceNumber property starts at 1 in every process.
func (e hubEvent) firstOfRun() bool { return e.Properties["sequenceNumber"] == "1" }

// parseEvents reads GET /fake/events's answer.
func parseEvents(b []byte, at time.Time) ([]hubEvent, error) {
	var ev []hubEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	for i := range ev {
		ev[i].At = at
	}
	return ev, nil
}

// eventFollower follows the fake hub's captured messages with long polls, so that a
// scenario can wait for a module's first message and know when it arrived.
type eventFollower struct {
	mu     sync.Mutex
	events []hubEvent    // the last keptEvents
	more   chan struct{} // closed at the next event, then replaced
	err    error         // why following stopped
	stop   chan struct{} // closed when run returns
}

const (
	keptEvents = 10000
	eventWait  = 20 * time.Second // long-poll wait
)

func newEventFollower() *eventFollower {
	return &eventFollower{more: make(chan struct{}), stop: make(chan struct{})}
}

// run long-polls GET /fake/events until ctx ends.
func (f *eventFollower) run(ctx context.Context, h *hubAPI) {
	defer close(f.stop)
	var after int64
	for ctx.Err() == nil {
		var raw json.RawMessage
		path := fmt.Sprintf("/fake/events?after=%d&limit=1000&wait=%s", after, eventWait)
		err := h.do(ctx, http.MethodGet, path, nil, &raw)
		at := time.Now()
		var ev []hubEvent
		if err == nil {
			ev, err = parseEvents(raw, at)
		}
		if err != nil {
			if ctx.Err() == nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				select { // a hub that is stopping: retry shortly
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			continue
		}
		if len(ev) == 0 {
			continue
		}
		after = ev[len(ev)-1].Seq
		f.mu.Lock()
		f.events = append(f.events, ev...)
		if len(f.events) > keptEvents {
			f.events = append([]hubEvent(nil), f.events[len(f.events)-keptEvents/2:]...)
		}
		close(f.more)
		f.more = make(chan struct{})
		f.mu.Unlock()
	}
}

// waitFirst returns the first message of a new run of module (tempsensor's first
// reading: a message still on its way from an earlier run does not count) that arrived
// after since.
func (f *eventFollower) waitFirst(ctx context.Context, module string, since time.Time) (hubEvent, error) {
	for {
		f.mu.Lock()
		for _, e := range f.events {
			if e.ModuleID == module && e.At.After(since) && e.firstOfRun() {
				f.mu.Unlock()
				return e, nil
			}
		}
		more, err := f.more, f.err
		f.mu.Unlock()
		select {
		case <-more:
		case <-ctx.Done():
			if err != nil {
				return hubEvent{}, fmt.Errorf("no message from %s: %w (following the hub's events: %v)", module, ctx.Err(), err)
			}
			return hubEvent{}, fmt.Errorf("no message from %s: %w", module, ctx.Err())
		case <-f.stop:
			return hubEvent{}, fmt.Errorf("no message from %s: stopped following the hub's events", module)
		}
	}
}
