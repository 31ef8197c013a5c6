package agent_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// typicalReport is a device in the middle of things: edgeHub running,
// tempSensor in back-off, filter running with a failed pull of its update
// whose error echoes the registry password, archiver created and stopped.
func typicalReport(t *testing.T) map[string]any {
	d := mustDesired(t)
	filter := runningFor(t, d, "filter", 30*time.Minute)
	filter.ImageID = "sha256:2f1c"
	filter.Record = agent.Record{Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second), Last: now, Hash: filter.SpecHash,
		Err: "module \"filter\": pull \"myacr.azurecr.io/filter:2.1\": unauthorized: login myacr/" + password + " rejected"}}
	temp := withRecord(exitedAgo(t, d, "tempSensor", 1, 3*time.Second), history(2, 50*time.Second))
	temp.ImageID = "sha256:9a8b"
	states := []agent.ModuleState{
		{Name: deployment.EdgeAgentName, State: agent.StateRunning, StartedAt: now.Add(-2 * time.Hour), Image: "ghcr.io/outpost-edge/edgeagent:0.1", ImageID: "sha256:aaaa"},
		runningFor(t, d, "edgeHub", time.Hour),
		temp,
		filter,
		created(t, d, "archiver"),
	}
	last := agent.LastStatus{Code: deployment.CodeFailed, Description: "module \"filter\": pull: wrong password " + password}
	info := agent.AgentInfo{Version: "0.1.0", Build: "42", Commit: "abc1234", Platform: agent.Platform{OS: "linux", Architecture: "x86_64", Version: "28.5.2"}}
	return agent.Report(d, states, last, info, now)
}

func TestReport_Golden(t *testing.T) {
	got, err := json.MarshalIndent(typicalReport(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const path = "testdata/report.golden.json"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("report differs from %s (run go test -run TestReport_Golden -update to accept):\n%s", path, got)
	}
}

func TestReport_NeverContainsSecrets(t *testing.T) {
	b, err := json.Marshal(typicalReport(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{password, "SharedAccessKey", "bW9kdWxla2V5"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("report contains %q:\n%s", secret, b)
		}
	}
	if !bytes.Contains(b, []byte(`"password":"***"`)) || !bytes.Contains(b, []byte(`"username":"myacr"`)) {
		t.Fatalf("registry credentials not reported redacted:\n%s", b)
	}
}

func TestReport_Shape(t *testing.T) {
	r := typicalReport(t)
	get := func(path string) any {
		var v any = r
		for _, k := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: %T is not an object", path, v)
			}
			v = m[k]
		}
		return v
	}
	tests := []struct {
		path string
		want any
	}{
		{"schemaVersion", "1.0"},
		{"lastDesiredVersion", int64(7)},
		{"lastDesiredStatus.code", 500},
		{"runtime.type", "docker"},
		{"runtime.platform.architecture", "x86_64"},
		{"systemModules.edgeAgent.runtimeStatus", "running"},
		{"systemModules.edgeAgent.startupOrder", 0},
		{"systemModules.edgeAgent.lastStartTimeUtc", "2026-03-01T10:00:00Z"},
		{"systemModules.edgeHub.runtimeStatus", "running"},
		{"systemModules.edgeHub.restartPolicy", "always"},
		{"modules.tempSensor.runtimeStatus", "backoff"},
		{"modules.tempSensor.exitCode", 1},
		{"modules.tempSensor.restartCount", 2},
		{"modules.tempSensor.lastExitTimeUtc", "2026-03-01T11:59:57Z"},
		{"modules.tempSensor.lastRestartTimeUtc", "2026-03-01T11:59:10Z"},
		{"modules.tempSensor.env.MessageCount.value", "-1"},
		{"modules.tempSensor.settings.imageHash", "sha256:9a8b"},
		{"modules.filter.runtimeStatus", "running"},
		{"modules.archiver.runtimeStatus", "stopped"},
		{"modules.archiver.startupOrder", uint32(deployment.DefaultStartupOrder)},
		{"modules.archiver.settings.image", "localhost:5000/archiver:latest"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := get(tc.path); got != tc.want {
				t.Fatalf("%s = %#v, want %#v", tc.path, got, tc.want)
			}
		})
	}
	settings := get("systemModules.edgeHub.settings").(map[string]any)
	joined := settings["createOptions"].(string) + settings["createOptions01"].(string)
	if len(settings["createOptions"].(string)) != 512 || joined != mustConfig(t).SystemModules.EdgeHub.CreateOptions {
		t.Fatalf("edgeHub createOptions not chunked at 512: %v", settings)
	}
	for _, key := range []string{"version", "restartCount", "restartPolicy", "status"} {
		if _, ok := get("systemModules.edgeAgent").(map[string]any)[key]; ok {
			t.Errorf("edgeAgent reports %q, which Azure does not", key)
		}
	}
}

func TestReport_WithoutDeployment(t *testing.T) {
	r := agent.Report(agent.Desired{}, nil, agent.LastStatus{Code: deployment.CodeEmpty, Description: deployment.ErrEmpty.Error()}, agent.AgentInfo{Version: "1"}, now)
	b, _ := json.Marshal(r)
	want := `{"lastDesiredStatus":{"code":417,"description":"This device has an empty configuration for the edge agent. Please set a deployment manifest."},"schemaVersion":"1.0","version":{"build":"","commit":"","version":"1"}}`
	if string(b) != want {
		t.Fatalf("report = %s\nwant %s", b, want)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name     string
		module   string
		edits    []func(*deployment.AgentConfig)
		desired  func(*agent.Desired)
		state    func(t testing.TB, d agent.Desired) *agent.ModuleState
		want     agent.RuntimeStatus
		wantDesc string // substring
	}{
		{name: "no-container", module: "tempSensor", state: func(testing.TB, agent.Desired) *agent.ModuleState { return nil }, want: agent.StatusUnknown, wantDesc: "not created"},
		{name: "missing", module: "tempSensor", state: func(testing.TB, agent.Desired) *agent.ModuleState {
			return &agent.ModuleState{Name: "tempSensor", State: agent.StateMissing}
		}, want: agent.StatusUnknown},
		{name: "downloading", module: "tempSensor", state: func(testing.TB, agent.Desired) *agent.ModuleState {
			return &agent.ModuleState{Name: "tempSensor", State: agent.StateMissing, Pulling: true}
		}, want: agent.StatusDownloading, wantDesc: "simulated-temperature-sensor"},
		{name: "running", module: "tempSensor", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := runningFor(t, d, "tempSensor", time.Minute)
			return &s
		}, want: agent.StatusRunning},
		{name: "unhealthy", module: "tempSensor", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := runningFor(t, d, "tempSensor", time.Minute)
			s.Health = restart.Unhealthy
			return &s
		}, want: agent.StatusUnhealthy},
		{name: "dead", module: "tempSensor", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := created(t, d, "tempSensor")
			s.State = agent.StateDead
			return &s
		}, want: agent.StatusDead},
		{name: "created", module: "archiver", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := created(t, d, "archiver")
			return &s
		}, want: agent.StatusStopped},
		{name: "backoff-waiting", module: "tempSensor", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := exitedAgo(t, d, "tempSensor", 1, time.Second)
			return &s
		}, want: agent.StatusBackoff, wantDesc: "restart 1 at 2026-03-01T12:00:09Z"},
		{name: "backoff-due", module: "tempSensor", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := exitedAgo(t, d, "tempSensor", 1, time.Hour)
			return &s
		}, want: agent.StatusBackoff},
		{name: "failed-gave-up", module: "tempSensor", desired: func(d *agent.Desired) { d.Backoff.MaxRestarts = 1 },
			state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
				s := withRecord(exitedAgo(t, d, "tempSensor", 1, time.Hour), history(1, 2*time.Hour))
				return &s
			}, want: agent.StatusFailed, wantDesc: "gave up after 1 restarts"},
		{name: "failed-under-never", module: "tempSensor", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.RestartPolicy = deployment.RestartNever })},
			state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
				s := exitedAgo(t, d, "tempSensor", 2, time.Hour)
				return &s
			}, want: agent.StatusFailed, wantDesc: "restart policy never"},
		{name: "stopped-exit0-on-failure", module: "filter", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := exitedAgo(t, d, "filter", 0, time.Hour)
			return &s
		}, want: agent.StatusStopped},
		{name: "stopped-by-status", module: "tempSensor", edits: []func(*deployment.AgentConfig){editModule("tempSensor", func(m *deployment.Module) { m.Status = deployment.StatusStopped })},
			state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
				s := withRecord(exitedAgo(t, d, "tempSensor", 143, time.Hour), agent.Record{StoppedFor: agent.CauseStatus})
				return &s
			}, want: agent.StatusStopped, wantDesc: "desired status is stopped"},
		{name: "stopped-by-shutdown", module: "filter", desired: func(d *agent.Desired) { d.BootTime = now.Add(-time.Minute) },
			state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
				s := exitedAgo(t, d, "filter", 137, time.Hour)
				return &s
			}, want: agent.StatusStopped, wantDesc: "shutdown"},
		{name: "retry-error-redacted", module: "filter", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := agent.ModuleState{Name: "filter", State: agent.StateMissing, Record: agent.Record{Retry: agent.Retry{
				Failures: 1, At: now.Add(time.Second), Hash: d.Spec(module(t, d, "filter")).Hash, Err: "denied for " + password}}}
			return &s
		}, want: agent.StatusUnknown, wantDesc: "last attempt failed: denied for ***"},
		{name: "unknown-runtime-state", module: "tempSensor", state: func(t testing.TB, d agent.Desired) *agent.ModuleState {
			s := created(t, d, "tempSensor")
			s.State = "paused"
			return &s
		}, want: agent.StatusUnknown, wantDesc: "paused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustDesired(t, tc.edits...)
			if tc.desired != nil {
				tc.desired(&d)
			}
			got, desc := agent.StatusOf(d, module(t, d, tc.module), tc.state(t, d), now)
			if got != tc.want || !strings.Contains(desc, tc.wantDesc) {
				t.Fatalf("StatusOf = %q, %q; want %q, …%q…", got, desc, tc.want, tc.wantDesc)
			}
			if strings.Contains(desc, password) {
				t.Fatalf("description leaks the password: %q", desc)
			}
		})
	}
}

func TestDownloadDescription(t *testing.T) {
	tests := []struct {
		name     string
		image    string
		percent  int
		want     string
		wantBack int // the percentage read back
	}{
		{name: "start", image: "myacr.azurecr.io/filter:2.1", percent: 0, want: "downloading 0% of myacr.azurecr.io/filter:2.1"},
		{name: "middle", image: "hub:1", percent: 45, want: "downloading 45% of hub:1", wantBack: 45},
		{name: "done", image: "a@sha256:00", percent: 100, want: "downloading 100% of a@sha256:00", wantBack: 100},
		{name: "clamped above", image: "x", percent: 250, want: "downloading 100% of x", wantBack: 100},
		{name: "clamped below", image: "x", percent: -3, want: "downloading 0% of x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := agent.DownloadDescription(tt.image, tt.percent)
			if got != tt.want {
				t.Fatalf("DownloadDescription = %q, want %q", got, tt.want)
			}
			for _, desc := range []string{got, got + "; last attempt failed: timeout"} {
				image, percent, ok := agent.ParseDownloadDescription(desc)
				if !ok || image != tt.image || percent != tt.wantBack {
					t.Errorf("ParseDownloadDescription(%q) = %q, %d, %v; want %q, %d, true", desc, image, percent, ok, tt.image, tt.wantBack)
				}
			}
		})
	}
	for _, desc := range []string{"", "pulling hub:1", "downloading hub:1", "downloading % of x", "downloading 101% of x",
		"downloading -1% of x", "downloading 045% of x", "downloading 4.5% of x", "downloading 45% of ", "Downloading 45% of x", "running"} {
		if image, percent, ok := agent.ParseDownloadDescription(desc); ok {
			t.Errorf("ParseDownloadDescription(%q) = %q, %d, true; want not ok", desc, image, percent)
		}
	}
}

// FuzzParseDownloadDescription checks that whatever it reads back it can
// write again: the parser accepts nothing DownloadDescription would not
// produce (up to a trailing note), and never panics.
func FuzzParseDownloadDescription(f *testing.F) {
	for _, s := range []string{"downloading 45% of hub:1", "downloading 100% of a@sha256:00; last attempt failed: x", "pulling hub:1", "downloading 9% of "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, desc string) {
		image, percent, ok := agent.ParseDownloadDescription(desc)
		if !ok {
			return
		}
		again := agent.DownloadDescription(image, percent)
		if !strings.HasPrefix(desc, again) {
			t.Fatalf("ParseDownloadDescription(%q) = %q, %d, which writes %q", desc, image, percent, again)
		}
		if back, p, ok := agent.ParseDownloadDescription(again); !ok || back != image || p != percent {
			t.Fatalf("round trip of %q: %q, %d, %v", again, back, p, ok)
		}
	})
}

// TestReportDownloads checks the statusDescription of modules being
// pulled: with a known percentage, "downloading NN% of <image>"; without,
// "pulling <image>"; a percentage for a module that is not pulling is
// ignored.
func TestReportDownloads(t *testing.T) {
	d := mustDesired(t)
	states := []agent.ModuleState{
		{Name: "tempSensor", State: agent.StateMissing, Pulling: true},
		{Name: "filter", State: agent.StateMissing, Pulling: true},
		runningFor(t, d, "edgeHub", time.Hour),
	}
	rep := agent.ReportDownloads(d, states, map[string]int{"tempSensor": 45, "edgeHub": 70}, agent.LastStatus{Code: 200}, agent.AgentInfo{}, now)
	desc := func(section, name string) (string, string) {
		m := at(rep, section, name)
		s, _ := m["runtimeStatus"].(string)
		dsc, _ := m["statusDescription"].(string)
		return s, dsc
	}
	tempImage := d.Spec(module(t, d, "tempSensor")).Image
	if s, dsc := desc("modules", "tempSensor"); s != "downloading" || dsc != agent.DownloadDescription(tempImage, 45) {
		t.Errorf("tempSensor: %q, %q; want downloading, %q", s, dsc, agent.DownloadDescription(tempImage, 45))
	}
	if s, dsc := desc("modules", "filter"); s != "downloading" || !strings.HasPrefix(dsc, "pulling ") {
		t.Errorf("filter (no percentage yet): %q, %q; want downloading, pulling ...", s, dsc)
	}
	if s, dsc := desc("systemModules", "edgeHub"); s != "running" || dsc != "" {
		t.Errorf("edgeHub (not pulling): %q, %q; want running and no description", s, dsc)
	}
	// Report is ReportDownloads without percentages.
	plain, err := json.Marshal(agent.Report(d, states, agent.LastStatus{Code: 200}, agent.AgentInfo{}, now))
	if err != nil {
		t.Fatal(err)
	}
	none, err := json.Marshal(agent.ReportDownloads(d, states, nil, agent.LastStatus{Code: 200}, agent.AgentInfo{}, now))
	if err != nil || !bytes.Equal(plain, none) {
		t.Errorf("Report and ReportDownloads(nil) differ:\n%s\n%s", plain, none)
	}
}
