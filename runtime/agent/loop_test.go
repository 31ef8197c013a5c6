package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func envOf(t *testing.T, rt *agenttest.FakeRuntime, module string) map[string]string {
	t.Helper()
	_, spec, ok := rt.Module(module)
	if !ok {
		t.Fatalf("module %q not created", module)
	}
	env := map[string]string{}
	for _, e := range spec.Env {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	return env
}

func TestRun_AppliesDeploymentAndReports(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()

	rep := h.twin.Reported()
	if v := fmt.Sprint(rep["lastDesiredVersion"]); v != "2" {
		t.Errorf("lastDesiredVersion = %s, want 2 (the twin's desired $version)", v)
	}
	for _, id := range []string{"$edgeAgent", "$edgeHub", "tempSensor", "filter", "archiver"} {
		if h.ids.Ensured(id) != 1 {
			t.Errorf("identity %q ensured %d times, want once", id, h.ids.Ensured(id))
		}
	}

	t.Run("user module environment", func(t *testing.T) {
		env := envOf(t, h.rt, "tempSensor")
		cs, err := sas.ParseConnectionString(env[agent.EnvEdgeHubConnectionString])
		if err != nil {
			t.Fatalf("EdgeHubConnectionString: %v", err)
		}
		want := sas.ConnectionString{HostName: "hub.example.net", DeviceID: "edge1", ModuleID: "tempSensor",
			SharedAccessKey: keyOf("tempSensor"), GatewayHostName: "edge1.local"}
		if cs != want {
			t.Errorf("EdgeHubConnectionString = %s, want %s", cs.Redacted(), want.Redacted())
		}
		for k, v := range map[string]string{
			"EdgeModuleCACertificateFile": "/certs/edge-ca.pem", "IOTEDGE_MODULEID": "tempSensor",
			"IOTEDGE_DEVICEID": "edge1", "IOTEDGE_IOTHUBHOSTNAME": "hub.example.net",
			"IOTEDGE_GATEWAYHOSTNAME": "edge1.local", "IOTEDGE_AUTHSCHEME": "sasToken",
			"IOTEDGE_MODULEGENERATIONID": "gen-tempSensor", "RuntimeLogLevel": "info", "MessageCount": "-1",
		} {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
	})
	t.Run("edgeHub environment", func(t *testing.T) {
		env := envOf(t, h.rt, "edgeHub")
		cs, err := sas.ParseConnectionString(env[agent.EnvIotHubConnectionString])
		if err != nil {
			t.Fatalf("IotHubConnectionString: %v", err)
		}
		want := sas.ConnectionString{HostName: "hub.example.net", DeviceID: "edge1", ModuleID: "$edgeHub", SharedAccessKey: keyOf("$edgeHub")}
		if cs != want {
			t.Errorf("IotHubConnectionString = %s, want %s", cs.Redacted(), want.Redacted())
		}
		for k, v := range map[string]string{"EdgeDeviceHostName": "edge1.local", "IOTEDGE_MODULEID": "$edgeHub",
			"EdgeModuleCACertificateFile": "/certs/hub-ca.pem", "EdgeHubConnectionString": "", "IOTEDGE_GATEWAYHOSTNAME": ""} {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
	})
	t.Run("createOptions env wins", func(t *testing.T) {
		if got := envOf(t, h.rt, "filter")["LOG"]; got != "debug" {
			t.Errorf("filter LOG = %q, want createOptions' debug", got)
		}
	})
}

func TestRun_ReconcilesOnDesiredPatch(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()

	// Add a module and remove another in one deployment.
	h.twin.SetDesired(deploymentDoc(t, func(d map[string]any) {
		mods := at(d, "modules")
		delete(mods, "archiver")
		mods["relay"] = map[string]any{"version": "1", "type": "docker", "status": "running", "restartPolicy": "always",
			"settings": map[string]any{"image": "example/relay:1"}}
	}))
	waitFor(t, "relay running and archiver gone", func() bool {
		rep := h.twin.Reported()
		_, _, archiver := h.rt.Module("archiver")
		return runtimeStatus(rep, "relay") == "running" && at(rep, "modules", "archiver") == nil && !archiver
	})
	if v := fmt.Sprint(h.twin.Reported()["lastDesiredVersion"]); v != "3" {
		t.Errorf("lastDesiredVersion = %s, want 3", v)
	}
}

func TestRun_InvalidDeploymentKeepsModules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		doc   func(t *testing.T) map[string]any
		code  string
		field string // in the description
	}{
		{"400 bad image", func(t *testing.T) map[string]any {
			return deploymentDoc(t, func(d map[string]any) {
				at(d, "modules", "tempSensor", "settings")["image"] = "bad:image:tag"
			})
		}, "400", "modules.tempSensor.settings.image"},
		{"400 wrong type", func(t *testing.T) map[string]any {
			return deploymentDoc(t, func(d map[string]any) { at(d, "modules", "filter")["status"] = "paused" })
		}, "400", "modules.filter.status"},
		{"412 schema version", func(t *testing.T) map[string]any {
			return deploymentDoc(t, func(d map[string]any) { d["schemaVersion"] = "2.0" })
		}, "412", "schemaVersion"},
		{"417 empty", func(t *testing.T) map[string]any { return map[string]any{} }, "417", "empty configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.twin.SetDesired(deploymentDoc(t))
			h.start()
			h.waitConverged()
			h.rt.ResetCalls()

			h.twin.SetDesired(tc.doc(t))
			h.waitStatus(tc.code)
			rep := h.twin.Reported()
			if _, desc := lastStatus(rep); !strings.Contains(desc, tc.field) {
				t.Errorf("description %q does not name %q", desc, tc.field)
			}
			if v := fmt.Sprint(rep["lastDesiredVersion"]); v != "2" {
				t.Errorf("lastDesiredVersion = %s, want the last valid one, 2", v)
			}
			if st, _ := rep["lastDesiredStatus"].(map[string]any); fmt.Sprint(st["rejectedVersion"]) != "3" {
				t.Errorf("lastDesiredStatus.rejectedVersion = %v, want the rejected document's, 3", st["rejectedVersion"])
			}
			// A few more reconciles, then nothing may have been touched.
			n := len(h.rt.Calls())
			waitFor(t, "more reconciles", func() bool { return len(h.rt.Calls()) >= n+3 })
			if got := mutating(h.rt.CallStrings()); len(got) > 0 {
				t.Errorf("runtime calls after an invalid deployment: %v", got)
			}
			if runtimeStatus(rep, "tempSensor") != "running" {
				t.Errorf("tempSensor reported %q, want running", runtimeStatus(rep, "tempSensor"))
			}
		})
	}
}

func TestRun_InvalidFirstDeploymentReportsWithoutModules(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(map[string]any{"schemaVersion": "1.1"})
	h.start()
	h.waitStatus("400")
	if got := mutating(h.rt.CallStrings()); len(got) > 0 {
		t.Errorf("runtime calls: %v", got)
	}
	if _, ok := h.twin.Reported()["modules"]; ok {
		t.Error("modules reported without a valid deployment")
	}
}

func TestRun_PullFailureReports500AndRetries(t *testing.T) {
	h := newHarness(t)
	const image = "myacr.azurecr.io/filter:2.1"
	h.rt.Fail(agenttest.OpPull, image, fmt.Errorf("unauthorized: login myacr/%s rejected", password))
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitStatus("500")
	waitFor(t, "the other modules to run", func() bool {
		rep := h.twin.Reported()
		return runtimeStatus(rep, "tempSensor") == "running" && runtimeStatus(rep, "edgeHub") == "running"
	})
	_, desc := lastStatus(h.twin.Reported())
	if !strings.Contains(desc, `module "filter"`) || !strings.Contains(desc, "unauthorized") {
		t.Errorf("description %q does not give the reason", desc)
	}
	if strings.Contains(desc, password) {
		t.Errorf("description leaks the registry password: %q", desc)
	}
	pulls := func() int {
		n := 0
		for _, c := range h.rt.CallStrings() {
			if c == "pull "+image {
				n++
			}
		}
		return n
	}
	// Held back during the back-off (10 s on the agent's clock).
	n := len(h.rt.Calls())
	waitFor(t, "more reconciles", func() bool { return len(h.rt.Calls()) >= n+3 })
	if got := pulls(); got != 1 {
		t.Fatalf("%d pulls before the back-off ended, want 1", got)
	}
	h.clock.Advance(agent.RetryDelay(1) + time.Second)
	waitFor(t, "a second pull", func() bool { return pulls() == 2 })
	// Later reconciles mean the one that pulled has finished and recorded the failure
	// (at the clock's current time): the back-off below counts from it.
	n = len(h.rt.Calls())
	waitFor(t, "more reconciles", func() bool { return len(h.rt.Calls()) >= n+3 })
	if c, _ := lastStatus(h.twin.Reported()); c != "500" {
		t.Errorf("status %s after the second failure, want 500", c)
	}

	h.rt.Fail(agenttest.OpPull, image, nil)
	h.clock.Advance(agent.RetryDelay(2) + time.Second)
	h.waitConverged()
}

func TestRun_ReportsOnlyChanges(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	n := len(h.twin.Patches())
	calls := len(h.rt.Calls())
	waitFor(t, "more reconciles", func() bool { return len(h.rt.Calls()) >= calls+5 })
	if got := len(h.twin.Patches()); got != n {
		t.Errorf("%d patches sent while nothing changed", got-n)
	}

	// A second agent on the same state, runtime and twin adopts the modules
	// and only corrects lastDesiredStatus (406 after the first one stopped).
	h.stop()
	if c, desc := lastStatus(h.twin.Reported()); c != "406" || desc != "Agent is not running" {
		t.Errorf("after stop: lastDesiredStatus %s %q, want 406 Agent is not running", c, desc)
	}
	h.rt.ResetCalls()
	n = len(h.twin.Patches())
	h.start()
	h.waitStatus("200")
	patches := h.twin.Patches()[n:]
	b, _ := json.Marshal(patches)
	if want := `[{"lastDesiredStatus":{"code":200,"description":null}}]`; string(b) != want {
		t.Errorf("patches after restart = %s, want %s", b, want)
	}
	if got := mutating(h.rt.CallStrings()); len(got) > 0 {
		t.Errorf("the second agent touched the modules: %v", got)
	}
}

func TestRun_SecretsNeverLeak(t *testing.T) {
	h := newHarness(t)
	// A runtime error that echoes a module key and the registry password.
	h.rt.Fail(agenttest.OpCreate, "tempSensor", fmt.Errorf("bad env SharedAccessKey=%s, auth %s", keyOf("tempSensor"), password))
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitStatus("500")
	waitFor(t, "tempSensor failure reported", func() bool {
		_, desc := lastStatus(h.twin.Reported())
		return strings.Contains(desc, "tempSensor")
	})
	h.stop()

	rep, _ := json.Marshal(h.twin.Reported())
	patches, _ := json.Marshal(h.twin.Patches())
	secrets := []string{password}
	for _, id := range []string{"$edgeAgent", "$edgeHub", "tempSensor", "filter", "archiver"} {
		secrets = append(secrets, keyOf(id))
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"reported": string(rep), "patches": string(patches), "logs": h.logs.String()} {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s contain the secret %q: ...%s...", what, s, text[max(0, i-300):min(len(text), i+100)])
			}
		}
	}
	if !strings.Contains(h.logs.String(), "***") {
		t.Error("the failure was not logged (redacted)")
	}
}

func TestRun_OfflineBootFromStateDB(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	h.stop()
	hashes := map[string]string{}
	for _, m := range []string{"edgeHub", "tempSensor", "filter", "archiver"} {
		st, _, _ := h.rt.Module(m)
		hashes[m] = st.SpecHash
	}

	// Reboot: the modules are gone, the hub is unreachable.
	rt := &agenttest.FakeRuntime{Now: h.clock.Now}
	rt.AddImage("localhost:5000/archiver:latest")
	h.rt = rt
	h.twin.SetConnectErr(errors.New("network unreachable"))
	h.twin.mu.Lock()
	h.twin.connected = false
	h.twin.mu.Unlock()
	h.start()
	waitFor(t, "modules started from the saved deployment", func() bool {
		for _, m := range []string{"edgeHub", "tempSensor", "filter"} {
			if st, _, ok := rt.Module(m); !ok || st.State != agent.StateRunning {
				return false
			}
		}
		return true
	})
	for m, want := range hashes {
		if st, _, _ := rt.Module(m); st.SpecHash != want {
			t.Errorf("%s spec hash changed offline: the environment differs from the online one", m)
		}
	}
	waitFor(t, "connection attempts", func() bool {
		h.twin.mu.Lock()
		defer h.twin.mu.Unlock()
		return h.twin.connects >= 3
	})

	h.twin.SetConnectErr(nil)
	h.waitStatus("200")
}

func TestRun_StopLeavesModulesRunning(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	h.rt.ResetCalls()
	h.stop()
	if got := mutating(h.rt.CallStrings()); len(got) > 0 {
		t.Errorf("stopping the agent made runtime calls: %v", got)
	}
	for _, m := range []string{"edgeHub", "tempSensor", "filter"} {
		if st, _, _ := h.rt.Module(m); st.State != agent.StateRunning {
			t.Errorf("%s is %s after the agent stopped", m, st.State)
		}
	}
}

func TestRun_RecreatesDeletedModule(t *testing.T) {
	h := newHarness(t)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	h.rt.ResetCalls()
	h.rt.Delete("tempSensor")
	waitFor(t, "tempSensor recreated", func() bool {
		st, _, ok := h.rt.Module("tempSensor")
		return ok && st.State == agent.StateRunning
	})
	want := []string{"pull mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "create tempSensor", "start tempSensor"}
	if got := mutating(h.rt.CallStrings()); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestRun_IdentityFailureIsReportedAndRetried(t *testing.T) {
	h := newHarness(t)
	h.ids.SetFail("filter", fmt.Errorf("module identity %q: PUT answered 401: %w", "filter", agent.ErrRejected))
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitStatus("500")
	waitFor(t, "failure described", func() bool {
		_, desc := lastStatus(h.twin.Reported())
		return strings.Contains(desc, `module identity "filter"`)
	})
	h.ids.SetFail("filter", nil)
	h.clock.Advance(time.Minute)
	h.waitConverged()
	if h.ids.Ensured("filter") != 1 {
		t.Errorf("filter ensured %d times, want 1", h.ids.Ensured("filter"))
	}
}

func TestRun_Twice(t *testing.T) {
	h := newHarness(t)
	h.start()
	waitFor(t, "the first Run to connect", func() bool {
		h.twin.mu.Lock()
		defer h.twin.mu.Unlock()
		return h.twin.connected
	})
	if err := h.a.Run(context.Background()); !errors.Is(err, agent.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

func TestNew_MissingDeps(t *testing.T) {
	_, err := agent.New(agent.Options{}, agent.Deps{})
	if err == nil {
		t.Fatal("New accepted empty options")
	}
	for _, want := range []string{"Deps.Runtime", "Deps.Twin", "Deps.Identities", "Deps.State", "Options.DeviceID", "Options.IoTHubHostName", "Options.GatewayHostName"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// blockingPull is a runtime whose pulls of one image wait for their context.
type blockingPull struct {
	agent.Runtime
	image   string
	started chan struct{}
}

func (b *blockingPull) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(agent.PullProgress)) error {
	if image != b.image {
		return b.Runtime.Pull(ctx, image, auth, progress)
	}
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestRun_ShutdownDuringPullRecordsNoFailure(t *testing.T) {
	h := newHarness(t)
	bp := &blockingPull{image: "myacr.azurecr.io/filter:2.1", started: make(chan struct{}, 1)}
	h.wrap = func(rt agent.Runtime) agent.Runtime { bp.Runtime = rt; return bp }
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	waitFor(t, "the blocking pull", func() bool { return len(bp.started) == 1 })
	waitFor(t, "downloading reported", func() bool { return runtimeStatus(h.twin.Reported(), "filter") == "downloading" })
	h.stop()
	db := MustOpenStateDB(t, h.dbPath)
	records, err := db.Records()
	if err != nil {
		t.Fatal(err)
	}
	if r := records["filter"]; r.Retry.Failures != 0 {
		t.Errorf("the interrupted pull was recorded as a failure: %+v", r.Retry)
	}
}

// steppedPull is a runtime whose pull of one image sends progress events
// one at a time, when the test lets it (next), moving the agent's clock
// before each and saying when it was sent (sent).
type steppedPull struct {
	agent.Runtime
	image  string
	clock  *fakeClock
	events []steppedEvent
	next   chan struct{}
	sent   chan struct{}
}

type steppedEvent struct {
	advance time.Duration
	p       agent.PullProgress
}

func (s *steppedPull) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(agent.PullProgress)) error {
	if image != s.image {
		return s.Runtime.Pull(ctx, image, auth, progress)
	}
	for _, e := range s.events {
		select {
		case <-s.next:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.clock.Advance(e.advance)
		if progress != nil {
			progress(e.p)
		}
		s.sent <- struct{}{}
	}
	return s.Runtime.Pull(ctx, image, auth, nil) // the image is there now
}

// TestRun_DownloadProgressReported follows a pull through the reported
// statusDescription: "pulling <image>" first, then "downloading NN% of
// <image>" at most every 2 s and only after a move of 5 points, never
// backwards when a layer's size becomes known late.
func TestRun_DownloadProgressReported(t *testing.T) {
	const image = "myacr.azurecr.io/filter:2.1"
	h := newHarness(t)
	layer := func(id, status string, cur, total int64) agent.PullProgress {
		return agent.PullProgress{Layer: id, Status: status, Current: cur, Total: total}
	}
	sp := &steppedPull{image: image, clock: h.clock, next: make(chan struct{}), sent: make(chan struct{}),
		events: []steppedEvent{
			{time.Second, layer("l1", "Downloading", 10, 100)},             // 10%: too soon
			{1500 * time.Millisecond, layer("l1", "Downloading", 20, 100)}, // 20%: reported
			{500 * time.Millisecond, layer("l1", "Downloading", 60, 100)},  // 60%: too soon
			{2 * time.Second, layer("l2", "Downloading", 0, 100)},          // 60 of 200 bytes, but 60% was reached: reported
			{3 * time.Second, layer("l2", "Downloading", 10, 100)},         // 35%: no progress past 60%
			{3 * time.Second, layer("l1", "Download complete", 0, 0)},      // 55%: l1 counts whole
			{0, layer("l2", "Downloading", 30, 100)},                       // 65%: 5 points, 6 s later: reported
			{100 * time.Millisecond, layer("l2", "Pull complete", 0, 0)},   // 100%: too soon, and the pull ends
		}}
	h.wrap = func(rt agent.Runtime) agent.Runtime { sp.Runtime = rt; return sp }
	h.twin.SetDesired(deploymentDoc(t))
	h.start()

	desc := func() string {
		m := at(h.twin.Reported(), "modules", "filter")
		s, _ := m["statusDescription"].(string)
		return s
	}
	waitFor(t, "pulling reported", func() bool { return desc() == "pulling "+image })
	reports := map[int]string{1: "downloading 20% of " + image, 3: "downloading 60% of " + image, 6: "downloading 65% of " + image}
	for i := range sp.events {
		sp.next <- struct{}{}
		<-sp.sent
		if want, ok := reports[i]; ok {
			waitFor(t, fmt.Sprintf("%q reported after event %d", want, i), func() bool { return desc() == want })
		}
	}
	h.waitConverged()

	var got []string
	for _, p := range h.twin.Patches() {
		if d, _ := at(p, "modules", "filter")["statusDescription"].(string); strings.HasPrefix(d, "downloading ") {
			got = append(got, d)
		}
	}
	want := []string{reports[1], reports[3], reports[6]}
	if !slices.Equal(got, want) {
		t.Errorf("download reports %q, want %q", got, want)
	}
}
