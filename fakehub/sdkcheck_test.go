package fakehub_test

// This file proves the fake hub against a client nobody in this repository wrote:
// Microsoft's Azure IoT device SDK for Node.js (azure-iot-device + azure-iot-device-mqtt,
// versions pinned in scripts/sdkcheck/package.json). scripts/sdkcheck/device.js drives the SDK
// one step at a time over stdin/stdout; these tests check each step from the hub's side.
//
// The SDK always dials port 8883 on the connection string's HostName. Every address in
// 127.0.0.0/8 is local on Linux, so the hub listens on a random 127.0.0.N:8883 and uses that
// IP as its Hostname: the connection string is dialable and the server certificate's IP SAN
// matches.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

const (
	// sdkSkipEnv set to 1 skips the Node SDK checks (for machines without the npm registry).
	sdkSkipEnv = "OUTPOST_SKIP_SDKCHECK"
	// sdkRunTimeout bounds one whole SDK session, from hub start to the client's exit.
	sdkRunTimeout = 3 * time.Minute
	// sdkStepTimeout bounds one step (a command and the events and hub state it must cause).
	sdkStepTimeout = 30 * time.Second
	// sdkInstallTimeout bounds npm ci.
	sdkInstallTimeout = 5 * time.Minute
	// sdkStderrTail is how much of the SDK's stderr (DEBUG=azure* logs) a failing test prints.
	sdkStderrTail = 64 << 10
	// sdkOutputName is the output the module variant sends on.
	sdkOutputName = "out1"
)

// sdkInstallMu serialises npm ci between tests of this package.
var sdkInstallMu sync.Mutex

func TestNodeSDKDevice(t *testing.T) {
	dir := sdkcheckDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), sdkRunTimeout)
	defer cancel()
	s := sdkStartHub(ctx, t)
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "d1"}, ""); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	cs, err := s.DeviceConnectionString("d1")
	if err != nil {
		t.Fatalf("DeviceConnectionString: %v", err)
	}
	r := &sdkRun{s: s, deviceID: "d1", dev: sdkStartClient(ctx, t, dir, cs, s.CAFile())}
	r.run(t, true)
}

func TestNodeSDKModule(t *testing.T) {
	dir := sdkcheckDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), sdkRunTimeout)
	defer cancel()
	s := sdkStartHub(ctx, t)
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "d1"}, ""); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	if _, err := s.PutModule(fakehub.Module{DeviceID: "d1", ModuleID: "m1"}, ""); err != nil {
		t.Fatalf("PutModule: %v", err)
	}
	cs, err := s.ModuleConnectionString("d1", "m1")
	if err != nil {
		t.Fatalf("ModuleConnectionString: %v", err)
	}
	r := &sdkRun{s: s, deviceID: "d1", moduleID: "m1", dev: sdkStartClient(ctx, t, dir, cs, s.CAFile())}
	r.run(t, false)
}

// sdkRun is one SDK client session against one hub.
type sdkRun struct {
	s        *fakehub.Server
	deviceID string
	moduleID string // "" for a device client
	dev      *sdkClient
}

// run walks the client through every step. Each step is a subtest so that one run reports
// every incompatibility the client survives; once the client is gone the rest are not run.
func (r *sdkRun) run(t *testing.T, c2d bool) {
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"open", r.stepOpen},
		{"telemetry", r.stepTelemetry},
		{"twin_get", r.stepTwinGet},
		{"reported", r.stepReported},
		{"listen", r.stepListen},
		{"desired_patch", r.stepDesired},
		{"method", r.stepMethod},
		{"c2d", r.stepC2D},
		{"close", r.stepClose},
	}
	for _, st := range steps {
		if st.name == "c2d" && !c2d {
			continue // modules cannot receive C2D
		}
		if !t.Run(st.name, st.fn) {
			if why := r.dev.gone(); why != "" {
				t.Fatalf("device.js is gone after step %q (%s); the remaining steps were not run", st.name, why)
			}
		}
	}
}

func (r *sdkRun) stepOpen(t *testing.T) {
	ctx := r.stepContext(t)
	ev := r.dev.expect(ctx, t, "ready", nil)
	if got, want := ev.Fields["module"], r.moduleID != ""; got != want {
		t.Errorf("device.js module = %v, want %v (connection string misread)", got, want)
	}
}

func (r *sdkRun) stepTelemetry(t *testing.T) {
	ctx := r.stepContext(t)
	after := r.lastSeq()
	r.dev.send(t, "send")
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("sdkcheck-%d", i)
		r.dev.expect(ctx, t, "sent", func(ev sdkEvent) bool { return ev.Fields["messageId"] == want })
	}
	events := r.waitEvents(ctx, t, after, 3)
	for i, e := range events {
		n := i + 1
		if e.DeviceID != r.deviceID || e.ModuleID != r.moduleID {
			t.Errorf("event %d identity = %q/%q, want %q/%q", n, e.DeviceID, e.ModuleID, r.deviceID, r.moduleID)
		}
		wantSys := map[string]string{
			"message-id":                  fmt.Sprintf("sdkcheck-%d", n),
			"content-type":                "application/json",
			"content-encoding":            "utf-8",
			"iothub-connection-device-id": r.deviceID,
		}
		if r.moduleID != "" {
			wantSys["iothub-connection-module-id"] = r.moduleID
		}
		for k, v := range wantSys {
			if got := e.SystemProperties[k]; got != v {
				t.Errorf("event %d system property %q = %q, want %q (all: %v)", n, k, got, v, e.SystemProperties)
			}
		}
		if r.moduleID != "" {
			// docs/fakehub.md: the module output keeps its wire name, "$.on".
			wantSys["$.on"] = sdkOutputName
		}
		if got, want := e.Properties["sdkcheck"], fmt.Sprintf("yes %d", n); got != want {
			t.Errorf("event %d app property sdkcheck = %q, want %q (all: %v)", n, got, want, e.Properties)
		}
		for k := range e.Properties {
			if strings.HasPrefix(k, "$.") {
				t.Errorf("event %d: system key %q leaked into the application properties %v", n, k, e.Properties)
			}
		}
		wantBody := fmt.Sprintf(`{"seq":%d,"sdk":"azure-iot-device"}`, n)
		if !jsonEqual(e.Body, []byte(wantBody)) {
			t.Errorf("event %d body = %s, want %s", n, e.Body, wantBody)
		}
	}
}

func (r *sdkRun) stepTwinGet(t *testing.T) {
	ctx := r.stepContext(t)
	var patch fakehub.TwinPatch
	patch.Properties.Desired = map[string]any{"initial": "hello"}
	tw, err := r.s.PatchTwin(r.deviceID, r.moduleID, patch, "")
	if err != nil {
		t.Fatalf("PatchTwin: %v", err)
	}
	wantVersion := tw.Properties.Desired["$version"]
	r.dev.send(t, "twin")
	ev := r.dev.expect(ctx, t, "twin", nil)
	desired, _ := ev.Fields["desired"].(map[string]any)
	if desired["initial"] != "hello" {
		t.Errorf("twin GET desired = %v, want initial=hello", desired)
	}
	if !numberEqual(desired["$version"], wantVersion) {
		t.Errorf("twin GET desired $version = %v, want %v", desired["$version"], wantVersion)
	}
	if _, ok := ev.Fields["reported"].(map[string]any); !ok {
		t.Errorf("twin GET reported = %v, want an object", ev.Fields["reported"])
	}
}

func (r *sdkRun) stepReported(t *testing.T) {
	ctx := r.stepContext(t)
	before, err := r.s.GetTwin(r.deviceID, r.moduleID)
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	r.dev.send(t, `report {"sdkcheck":{"n":1,"sdk":"node"}}`)
	r.dev.expect(ctx, t, "reported", nil)
	after, err := r.s.GetTwin(r.deviceID, r.moduleID)
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	got, _ := after.Properties.Reported["sdkcheck"].(map[string]any)
	if !numberEqual(got["n"], 1) || got["sdk"] != "node" {
		t.Errorf("reported sdkcheck = %v, want {n:1 sdk:node}", after.Properties.Reported["sdkcheck"])
	}
	v0, ok0 := toFloat(before.Properties.Reported["$version"])
	v1, ok1 := toFloat(after.Properties.Reported["$version"])
	if !ok0 || !ok1 || v1 <= v0 {
		t.Errorf("reported $version %v -> %v, want it to move up", before.Properties.Reported["$version"], after.Properties.Reported["$version"])
	}
}

func (r *sdkRun) stepListen(t *testing.T) {
	ctx := r.stepContext(t)
	r.dev.send(t, "listen")
	r.dev.expect(ctx, t, "listening", nil)
}

func (r *sdkRun) stepDesired(t *testing.T) {
	ctx := r.stepContext(t)
	var patch fakehub.TwinPatch
	patch.Properties.Desired = map[string]any{"target": 21.5}
	tw, err := r.s.PatchTwin(r.deviceID, r.moduleID, patch, "")
	if err != nil {
		t.Fatalf("PatchTwin: %v", err)
	}
	wantVersion := tw.Properties.Desired["$version"]
	// The SDK also fires the listener with the desired properties it already had; only a
	// patch carrying the new value counts.
	ev := r.dev.expect(ctx, t, "desired", func(ev sdkEvent) bool {
		p, _ := ev.Fields["patch"].(map[string]any)
		_, ok := p["target"]
		return ok
	})
	p := ev.Fields["patch"].(map[string]any)
	if !numberEqual(p["target"], 21.5) {
		t.Errorf("desired patch target = %v, want 21.5", p["target"])
	}
	if !numberEqual(p["$version"], wantVersion) {
		t.Errorf("desired patch $version = %v, want %v", p["$version"], wantVersion)
	}
}

func (r *sdkRun) stepMethod(t *testing.T) {
	ctx := r.stepContext(t)
	payload := json.RawMessage(`{"ping":"pong","n":7}`)
	resp, err := r.s.InvokeMethod(ctx, r.deviceID, r.moduleID, fakehub.MethodRequest{
		MethodName: "echo", Payload: payload, ResponseTimeoutInSeconds: 20,
	})
	if err != nil {
		t.Fatalf("InvokeMethod echo: %v", err)
	}
	if resp.Status != 200 {
		t.Errorf("echo status = %d, want 200", resp.Status)
	}
	if !jsonEqual(resp.Payload, payload) {
		t.Errorf("echo payload = %s, want %s", resp.Payload, payload)
	}
	ev := r.dev.expect(ctx, t, "method", nil)
	seen, _ := json.Marshal(ev.Fields["payload"])
	if ev.Fields["methodName"] != "echo" || !jsonEqual(seen, payload) {
		t.Errorf("device saw method %v with payload %s, want echo with %s", ev.Fields["methodName"], seen, payload)
	}
}

func (r *sdkRun) stepC2D(t *testing.T) {
	ctx := r.stepContext(t)
	id, err := r.s.SendC2D(r.deviceID, fakehub.C2DMessage{
		Body:            []byte("hello device"),
		Properties:      map[string]string{"color": "blue green"},
		MessageID:       "c2d-1",
		CorrelationID:   "corr-1",
		ContentType:     "text/plain",
		ContentEncoding: "utf-8",
	})
	if err != nil {
		t.Fatalf("SendC2D: %v", err)
	}
	if id != "c2d-1" {
		t.Errorf("SendC2D message id = %q, want c2d-1", id)
	}
	ev := r.dev.expect(ctx, t, "c2d", nil)
	want := map[string]any{
		"messageId": "c2d-1", "correlationId": "corr-1", "contentType": "text/plain",
		"contentEncoding": "utf-8", "body": "hello device",
		"properties": map[string]any{"color": "blue green"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(ev.Fields[k], v) {
			t.Errorf("C2D %s = %#v, want %#v (event: %s)", k, ev.Fields[k], v, ev.Raw)
		}
	}
	// The SDK completes with its PUBACK; the hub must then drop the message from the queue.
	if err := sdkPoll(ctx, func() error {
		if n := r.s.PendingC2D(r.deviceID); n != 0 {
			return fmt.Errorf("PendingC2D = %d, want 0 after the SDK completed the message", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func (r *sdkRun) stepClose(t *testing.T) {
	ctx := r.stepContext(t)
	r.dev.send(t, "quit")
	r.dev.expect(ctx, t, "closed", nil)
	if err := r.dev.wait(ctx); err != nil {
		t.Errorf("device.js exit: %v", err)
	}
}

func (r *sdkRun) stepContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sdkStepTimeout)
	t.Cleanup(cancel)
	return ctx
}

// lastSeq returns the sequence number of the newest captured event (0 for none).
func (r *sdkRun) lastSeq() int64 {
	var after int64
	for {
		evs := r.s.Events(after, 1000)
		if len(evs) == 0 {
			return after
		}
		after = evs[len(evs)-1].Seq
	}
}

// waitEvents returns the next n telemetry events captured after seq, failing on timeout.
// Events that say they come from another source (twin change notifications, say) are skipped.
func (r *sdkRun) waitEvents(ctx context.Context, t *testing.T, after int64, n int) []fakehub.Event {
	t.Helper()
	var got []fakehub.Event
	for len(got) < n {
		evs, err := r.s.WaitEvents(ctx, after, n-len(got))
		if err != nil {
			t.Fatalf("WaitEvents after seq %d: have %d of %d events (%v): %v", after, len(got), n, got, err)
		}
		for _, e := range evs {
			after = e.Seq
			if src := e.SystemProperties["iothub-message-source"]; src != "" && src != "Telemetry" {
				t.Logf("skipping a %s event: %+v", src, e)
				continue
			}
			got = append(got, e)
		}
	}
	return got
}

// sdkcheckDir skips when the check cannot run here and otherwise returns scripts/sdkcheck
// with its node_modules installed from package-lock.json.
func sdkcheckDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("Node SDK check skipped under -short: it runs Node.js and may run npm ci")
	}
	if os.Getenv(sdkSkipEnv) == "1" {
		t.Skipf("Node SDK check skipped: %s=1", sdkSkipEnv)
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("OUTPOST_SDKCHECK_REQUIRED") == "1" {
				t.Fatalf("Node SDK check: %s not found on PATH, and OUTPOST_SDKCHECK_REQUIRED=1 (scripts/node-up.sh installs it)", tool)
			}
			t.Skipf("Node SDK check skipped: %s not found on PATH (install Node.js 20+ with npm to run it, e.g. scripts/node-up.sh)", tool)
		}
	}
	dir, err := filepath.Abs(filepath.Join("..", "scripts", "sdkcheck"))
	if err != nil {
		t.Fatalf("locating scripts/sdkcheck: %v", err)
	}
	sdkInstallMu.Lock()
	defer sdkInstallMu.Unlock()
	if err := sdkInstalled(dir); err != nil {
		t.Logf("installing the Node SDK (%v)", err)
		ctx, cancel := context.WithTimeout(context.Background(), sdkInstallTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--cache", filepath.Join(dir, ".npm-cache"))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
		if err := sdkInstalled(dir); err != nil {
			t.Fatalf("after npm ci: %v", err)
		}
	}
	return dir
}

// sdkInstalled reports why node_modules does not hold exactly the pinned SDK packages.
func sdkInstalled(dir string) error {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := readJSON(filepath.Join(dir, "package.json"), &pkg); err != nil {
		return err
	}
	if len(pkg.Dependencies) == 0 {
		return fmt.Errorf("%s/package.json pins no dependencies", dir)
	}
	for name, want := range pkg.Dependencies {
		var got struct {
			Version string `json:"version"`
		}
		if err := readJSON(filepath.Join(dir, "node_modules", name, "package.json"), &got); err != nil {
			return fmt.Errorf("%s not installed: %w", name, err)
		}
		if got.Version != want {
			return fmt.Errorf("%s %s installed, package.json pins %s", name, got.Version, want)
		}
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// sdkStartHub starts a hub whose MQTT/TLS listener is on 127.0.0.N:8883, retrying other N
// while the port is taken (another test run, or another hub of this one).
func sdkStartHub(ctx context.Context, t *testing.T) *fakehub.Server {
	t.Helper()
	var lastErr error
	for range 20 {
		ip := fmt.Sprintf("127.0.0.%d", 2+rand.IntN(249))
		s := &fakehub.Server{
			Hostname: ip,
			DataDir:  t.TempDir(),
			MQTTAddr: net.JoinHostPort(ip, "8883"),
			HTTPAddr: "127.0.0.1:0",
		}
		err := s.Start(ctx)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("hub Close: %v", err)
				}
			})
			return s
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("starting the hub on %s:8883: %v", ip, err)
		}
		lastErr = err
	}
	t.Fatalf("no free 127.0.0.N:8883 after 20 tries: %v", lastErr)
	return nil
}

// sdkEvent is one JSON line from device.js.
type sdkEvent struct {
	Name   string
	Fields map[string]any
	Raw    string
}

// sdkClient is a running device.js.
type sdkClient struct {
	stdin   io.WriteCloser
	events  chan sdkEvent
	stderr  *tailBuffer
	exited  chan struct{} // closed once the process is reaped
	exitErr error         // valid after exited is closed
	failure string        // the last "error" event read, if any (device.js exits after one)
}

// sdkStartClient starts node device.js; its stderr (the SDK's DEBUG=azure* log unless DEBUG
// is already set) is printed if the test fails.
func sdkStartClient(ctx context.Context, t *testing.T, dir, connectionString, caFile string) *sdkClient {
	t.Helper()
	cmd := exec.CommandContext(ctx, "node", "device.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CONNECTION_STRING="+connectionString, "CA_FILE="+caFile, "OUTPUT_NAME="+sdkOutputName)
	if os.Getenv("DEBUG") == "" {
		cmd.Env = append(cmd.Env, "DEBUG=azure*")
	}
	cmd.WaitDelay = 5 * time.Second
	c := &sdkClient{events: make(chan sdkEvent, 64), stderr: &tailBuffer{max: sdkStderrTail}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("device.js stdout: %v", err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("device.js stdin: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node device.js: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			ev := sdkEvent{Raw: sc.Text()}
			if err := json.Unmarshal(sc.Bytes(), &ev.Fields); err != nil {
				ev.Name = "unparsable"
			} else {
				ev.Name, _ = ev.Fields["event"].(string)
			}
			c.events <- ev
		}
		close(c.events)
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		if cmd.Process != nil {
			select {
			case <-c.exited:
			default:
				_ = cmd.Process.Kill()
				<-c.exited
			}
		}
		if t.Failed() {
			t.Logf("device.js stderr (last %d bytes):\n%s", sdkStderrTail, c.stderr.String())
		}
	})
	return c
}

func (c *sdkClient) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatalf("writing %q to device.js: %v", line, err)
	}
}

// expect returns the next event called name that match accepts (nil accepts any); it skips
// other events, and fails on an "error" event, the client's exit, or ctx's end.
func (c *sdkClient) expect(ctx context.Context, t *testing.T, name string, match func(sdkEvent) bool) sdkEvent {
	t.Helper()
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for device.js event %q: %v", name, ctx.Err())
		case ev, ok := <-c.events:
			switch {
			case !ok:
				<-c.exited
				t.Fatalf("device.js exited (%v) before event %q", c.exitErr, name)
			case ev.Name == "error":
				c.failure = ev.Raw
				t.Fatalf("device.js failed waiting for %q: %s", name, ev.Raw)
			case ev.Name == name && (match == nil || match(ev)):
				return ev
			default:
				t.Logf("device.js (skipped while waiting for %q): %s", name, ev.Raw)
			}
		}
	}
}

// gone says why the client can take no more commands, or "" while it can.
func (c *sdkClient) gone() string {
	if c.failure != "" {
		return c.failure
	}
	select {
	case <-c.exited:
		return fmt.Sprintf("exited: %v", c.exitErr)
	default:
		return ""
	}
}

// wait waits for the client to exit and returns its exit error.
func (c *sdkClient) wait(ctx context.Context) error {
	select {
	case <-c.exited:
		return c.exitErr
	case <-ctx.Done():
		return fmt.Errorf("still running: %w", ctx.Err())
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// sdkPoll calls cond until it returns nil or ctx ends, returning cond's last error then.
func sdkPoll(ctx context.Context, cond func() error) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// toFloat reads a JSON number as decoded by encoding/json or kept as json.Number.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func numberEqual(a, b any) bool {
	x, ok1 := toFloat(a)
	y, ok2 := toFloat(b)
	return ok1 && ok2 && x == y
}
