package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/certs"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1GiB", 1 << 30, false},
		{"500MiB", 500 << 20, false},
		{"1.5 GiB", 3 << 29, false},
		{"2gb", 2e9, false},
		{"1024", 1024, false},
		{"10KiB", 10 << 10, false},
		{"", 0, true},
		{"-1GiB", 0, true},
		{"lots", 0, true},
		{"99999999TiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 512: "512 B", 1 << 10: "1 KiB", 1536 << 20: "1.5 GiB", 300 << 20: "300 MiB", 2 << 40: "2 TiB"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestEvalCert(t *testing.T) {
	f := certFile{role: "hub CA (--ca-file)", path: "/c/ca.pem"}
	edge := certFile{role: "edge hub server certificate", path: "/c/server.pem"}
	month := 30 * 24 * time.Hour
	tests := []struct {
		name   string
		f      certFile
		info   certs.Info
		want   string
		reason string
	}{
		{"valid", f, certs.Info{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)}, resultOK, "valid until 2027-03-01"},
		{"expires within the warning", f, certs.Info{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)}, resultWarning, "in 10 days"},
		{"edge cert names the renewal", edge, certs.Info{NotAfter: now.Add(24 * time.Hour)}, resultWarning, "expires on"},
		{"exactly at the limit is fine", f, certs.Info{NotAfter: now.Add(month)}, resultOK, "valid until"},
		{"expired", f, certs.Info{NotAfter: now.Add(-2 * time.Hour)}, resultError, "expired on 2026-03-01T10:00:00Z (2 hours ago)"},
		{"expiring now", f, certs.Info{NotAfter: now}, resultError, "expired"},
		{"not yet valid", f, certs.Info{NotBefore: now.Add(3 * time.Hour), NotAfter: now.Add(month * 12)}, resultError, "not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := evalCert(tt.f, tt.info, now, month)
			if o.Result != tt.want || !strings.Contains(o.Reason, tt.reason) {
				t.Errorf("evalCert = %+v, want %s with %q", o, tt.want, tt.reason)
			}
			if o.Result != resultOK && o.Fix == "" {
				t.Error("a warning or error without a fix")
			}
		})
	}
}

func TestEvalFreeSpace(t *testing.T) {
	tests := []struct {
		name      string
		free, min int64
		want      string
	}{
		{"plenty", 10 << 30, 1 << 30, resultOK},
		{"exactly the minimum", 1 << 30, 1 << 30, resultOK},
		{"short", 300 << 20, 1 << 30, resultWarning},
		{"full", 0, 1, resultWarning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := evalFreeSpace("/d", tt.free, tt.min)
			if o.Result != tt.want || !strings.Contains(o.Reason, formatSize(tt.free)) {
				t.Errorf("evalFreeSpace = %+v, want %s", o, tt.want)
			}
		})
	}
}

func TestEvalClockSkew(t *testing.T) {
	tests := []struct {
		skew   time.Duration
		want   string
		reason string
	}{
		{0, resultOK, "within 1s"},
		{3 * time.Second, resultOK, "within 3s"},
		{-59 * time.Second, resultOK, "within 59s"},
		{time.Minute, resultWarning, "1m0s behind"},
		{-2 * time.Minute, resultWarning, "2m0s ahead of"},
		{5 * time.Minute, resultError, "rejects SAS tokens"},
		{-time.Hour, resultError, "1h0m0s ahead of"},
	}
	for _, tt := range tests {
		t.Run(tt.skew.String(), func(t *testing.T) {
			o := evalClockSkew(tt.skew)
			if o.Result != tt.want || !strings.Contains(o.Reason, tt.reason) {
				t.Errorf("evalClockSkew(%s) = %+v, want %s with %q", tt.skew, o, tt.want, tt.reason)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyHubError(t *testing.T) {
	addr := "hub.example.net:8883"
	tests := []struct {
		name   string
		err    error
		want   string
		reason string
	}{
		{"dns", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "hub.example.net", IsNotFound: true}}, resultWarning, "cannot resolve hub.example.net"},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, resultWarning, "refused"},
		{"timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, resultWarning, "no answer"},
		{"deadline", context.DeadlineExceeded, resultWarning, "no answer"},
		{"unknown CA", x509.UnknownAuthorityError{}, resultError, "does not trust"},
		{"wrong name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "hub.example.net"}, resultError, "other names"},
		{"expired cert", x509.CertificateInvalidError{Reason: x509.Expired}, resultError, "invalid certificate"},
		{"other", errors.New("network is unreachable"), resultWarning, "cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := classifyHubError(addr, tt.err)
			if o.Result != tt.want || !strings.Contains(o.Reason, tt.reason) || o.Fix == "" {
				t.Errorf("classifyHubError = %+v, want %s with %q and a fix", o, tt.want, tt.reason)
			}
			if o.Result == resultWarning && !strings.Contains(o.Fix, "8883") {
				t.Errorf("offline fix %q does not name the port", o.Fix)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	got := worst([]outcome{ok("a"), warning("b", "fix b"), failure("c", "fix c"), failure("d", "fix c")})
	if got.Result != resultError || got.Reason != "c\nd" || got.Fix != "fix c" {
		t.Errorf("worst = %+v", got)
	}
	if got := worst([]outcome{ok("a"), ok("b")}); got.Result != resultOK || got.Reason != "a\nb" {
		t.Errorf("worst of OKs = %+v", got)
	}
}

func TestRunChecks_Dependencies(t *testing.T) {
	run := func(o outcome) func(context.Context, *checker) outcome {
		return func(context.Context, *checker) outcome { return o }
	}
	ran := map[string]bool{}
	track := func(id string, o outcome) func(context.Context, *checker) outcome {
		return func(context.Context, *checker) outcome { ran[id] = true; return o }
	}
	defs := []checkDef{
		{id: "a", section: sectionConfig, run: run(ok("fine"))},
		{id: "b", section: sectionConfig, run: run(warning("offline", "wait"))},
		{id: "c", section: sectionConnectivity, needs: []string{"a"}, run: track("c", ok("fine"))},
		{id: "d", section: sectionConnectivity, needs: []string{"b"}, run: track("d", ok("fine"))},
		{id: "e", section: sectionConnectivity, needs: []string{"d"}, run: track("e", ok("fine"))},
		{id: "f", section: sectionConnectivity, run: track("f", failure("bad", "fix"))},
	}
	rep := runChecks(context.Background(), &checker{}, defs, []string{"f"})
	got := []string{}
	for _, r := range rep.Checks {
		got = append(got, r.ID+"="+r.Result)
	}
	if want := "a=ok b=warning c=ok d=skipped e=skipped f=skipped"; strings.Join(got, " ") != want {
		t.Errorf("results = %s, want %s", strings.Join(got, " "), want)
	}
	if ran["d"] || ran["e"] || ran["f"] || !ran["c"] {
		t.Errorf("ran = %v", ran)
	}
	if rep.Summary != (checkSummary{OK: 2, Warnings: 1, Skipped: 3}) {
		t.Errorf("summary = %+v", rep.Summary)
	}
	if !strings.Contains(rep.Checks[3].Reason, "needs b, which raised a warning") {
		t.Errorf("skip reason = %q", rep.Checks[3].Reason)
	}
}

func TestWriteCheckText(t *testing.T) {
	rep := checkReport{Checks: []checkResult{
		{ID: "a", Section: sectionConfig, Description: "thing a", Result: resultOK, Reason: "all good"},
		{ID: "b", Section: sectionConfig, Description: "thing b", Result: resultError, Reason: "broken", Fix: "mend it"},
		{ID: "c", Section: sectionConnectivity, Description: "thing c", Result: resultWarning, Reason: "offline\nfor now", Fix: "wait"},
		{ID: "d", Section: sectionConnectivity, Description: "thing d", Result: resultSkipped, Reason: "needs c"},
	}, Summary: checkSummary{OK: 1, Warnings: 1, Errors: 1, Skipped: 1}}
	var b strings.Builder
	writeCheckText(&b, rep, false)
	want := `Configuration checks
--------------------
√ thing a - OK
× thing b - Error
    broken
    Fix: mend it

Connectivity checks
-------------------
‼ thing c - Warning
    offline
    for now
    Fix: wait

1 check(s) succeeded.
1 check(s) raised warnings.
1 check(s) raised errors.
1 check(s) were skipped due to errors or warnings from other checks, or because they do not apply. Re-run with --verbose for more details.
`
	if b.String() != want {
		t.Errorf("text =\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	writeCheckText(&b, rep, true)
	for _, s := range []string{"    all good\n", "- thing d - Skipped\n    needs c\n"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("verbose text lacks %q:\n%s", s, b.String())
		}
	}
}

func TestAgentState(t *testing.T) {
	stopped := &unavailableError{state: stateStopped, reason: "nothing answers"}
	denied := &unavailableError{state: stateUnavailable, reason: "permission denied"}
	tests := []struct {
		name     string
		err      error
		hasState bool
		want     string
		reason   string
	}{
		{"answers", nil, true, stateRunning, ""},
		{"stopped", stopped, true, stateStopped, "nothing answers"},
		{"never ran here", stopped, false, stateUnavailable, "no agent has used the data directory /d"},
		{"permission", denied, true, stateUnavailable, "permission denied"},
		{"odd answer", fmt.Errorf("wrapped: %w", denied), true, stateUnavailable, "permission denied"},
		{"api error", &apiError{status: 500, message: "boom"}, true, stateUnavailable, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, reason := agentState(tt.err, tt.hasState, "/d")
			if state != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("agentState = %s, %q; want %s with %q", state, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestValidateConfig(t *testing.T) {
	good := agent.EffectiveConfig{ConnectionStringFile: "/cs", Runtime: "process", GatewayHostName: "edge", MQTTPort: 8883, ReconcilePeriod: "5s"}
	tests := []struct {
		name string
		edit func(*agent.EffectiveConfig)
		want string
	}{
		{"good", func(*agent.EffectiveConfig) {}, ""},
		{"no connection string", func(c *agent.EffectiveConfig) { c.ConnectionStringFile = "" }, "connectionStringFile"},
		{"bad runtime", func(c *agent.EffectiveConfig) { c.Runtime = "podman" }, "runtime"},
		{"bad port", func(c *agent.EffectiveConfig) { c.MQTTPort = 70000 }, "mqttPort"},
		{"bad period", func(c *agent.EffectiveConfig) { c.ReconcilePeriod = "soon" }, "reconcilePeriod"},
		{"no gateway", func(c *agent.EffectiveConfig) { c.GatewayHostName = "" }, "gatewayHostName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			bad := strings.Join(validateConfig(c), "; ")
			if (tt.want == "") != (bad == "") || !strings.Contains(bad, tt.want) {
				t.Errorf("validateConfig = %q, want %q", bad, tt.want)
			}
		})
	}
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		done, total, width int
		want               string
	}{
		{0, 4, 8, "[--------] 0/4"},
		{1, 4, 8, "[##------] 1/4"},
		{4, 4, 8, "[########] 4/4"},
		{5, 4, 8, "[########] 4/4"},
		{1, 3, 10, "[###-------] 1/3"},
		{0, 0, 8, "[]"},
	}
	for _, tt := range tests {
		if got := progressBar(tt.done, tt.total, tt.width); got != tt.want {
			t.Errorf("progressBar(%d, %d, %d) = %q, want %q", tt.done, tt.total, tt.width, got, tt.want)
		}
	}
}

// report builds reported properties for evaluateDeploy tests.
func report(t *testing.T, doc string) agentReport {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return parseAgentReport(m)
}

func TestEvaluateDeploy(t *testing.T) {
	want := []expectedModule{
		{Name: "edgeHub", Image: "hub:1", Status: "running"},
		{Name: "sensor", Image: "sensor:2", Status: "running"},
		{Name: "spare", Image: "spare:1", Status: "stopped"},
	}
	mods := func(hub, sensor, spare string) string {
		return fmt.Sprintf(`"systemModules":{"edgeAgent":{"runtimeStatus":"running"},"edgeHub":%s},"modules":{"sensor":%s,"spare":%s}`, hub, sensor, spare)
	}
	run := func(image string) string { return `{"runtimeStatus":"running","settings":{"image":"` + image + `"}}` }
	tests := []struct {
		name      string
		doc       string
		phase     string
		done      int
		downloads int
		message   string
	}{
		{"not taken yet", `{"$version":4,"lastDesiredVersion":6,"lastDesiredStatus":{"code":200}}`, phaseWaiting, 0, 0, "it runs version 6"},
		{"stale rejection before the deploy", `{"$version":5,"lastDesiredVersion":6,"lastDesiredStatus":{"code":400,"description":"old"}}`, phaseWaiting, 0, 0, "waiting"},
		{"rejected after the deploy", `{"$version":9,"lastDesiredVersion":6,"lastDesiredStatus":{"code":400,"description":"modules.x: bad"}}`, phaseFailed, 0, 0, "rejected the deployment (400): modules.x: bad"},
		{"older document's rejection reported after the deploy", `{"$version":9,"lastDesiredStatus":{"code":417,"description":"empty","rejectedVersion":1}}`, phaseWaiting, 0, 0, "waiting for the agent to take version 7"},
		{"this document rejected, named by the agent", `{"$version":5,"lastDesiredVersion":6,"lastDesiredStatus":{"code":400,"description":"bad","rejectedVersion":7}}`, phaseFailed, 0, 0, "rejected the deployment (400): bad"},
		{"a later document rejected after this one applied", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":400,"description":"newer","rejectedVersion":8},` +
			mods(run("hub:1"), run("sensor:2"), `{"runtimeStatus":"stopped","settings":{"image":"spare:1"}}`) + `}`, phaseSucceeded, 3, 0, "every module"},
		{"schema rejected on the version", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":412,"description":"schema"}}`, phaseFailed, 0, 0, "412"},
		{"agent shutting down", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":406}}`, phaseWaiting, 0, 0, "406"},
		{"downloading", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},` +
			mods(run("hub:1"), `{"runtimeStatus":"downloading","statusDescription":"pulling sensor:2"}`, `{"runtimeStatus":"unknown"}`) + `}`,
			phaseApplying, 1, 1, "1 of 3"},
		{"old version still runs", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},` +
			mods(run("hub:1"), run("sensor:1"), `{"runtimeStatus":"stopped"}`) + `}`, phaseApplying, 2, 0, "2 of 3"},
		{"all as desired", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},` +
			mods(run("hub:1"), run("sensor:2"), `{"runtimeStatus":"stopped","settings":{"image":"spare:1"}}`) + `}`, phaseSucceeded, 3, 0, "every module"},
		{"module failed", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},` +
			mods(run("hub:1"), `{"runtimeStatus":"failed","exitCode":2}`, `{"runtimeStatus":"stopped"}`) + `}`, phaseFailed, 2, 0, "failed: sensor"},
		{"back-off keeps waiting", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},` +
			mods(run("hub:1"), `{"runtimeStatus":"backoff"}`, `{"runtimeStatus":"stopped"}`) + `}`, phaseApplying, 2, 0, "2 of 3"},
		{"apply failed", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":500,"description":"pull failed"},` +
			mods(run("hub:1"), `{"runtimeStatus":"unknown"}`, `{"runtimeStatus":"stopped"}`) + `}`, phaseFailed, 2, 0, "could not apply the deployment (500): pull failed"},
		{"module not reported yet", `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200}}`, phaseApplying, 0, 0, "0 of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := evaluateDeploy(want, 7, 5, report(t, tt.doc))
			if st.Phase != tt.phase || st.Done != tt.done || st.Downloading != tt.downloads || !strings.Contains(st.Message, tt.message) {
				t.Errorf("evaluateDeploy = %+v; want phase %s, done %d, downloading %d, message with %q", st, tt.phase, tt.done, tt.downloads, tt.message)
			}
		})
	}
}

func TestChangedLines(t *testing.T) {
	prev := deployState{Modules: []moduleProgress{{Name: "a", RuntimeStatus: "running"}, {Name: "b", RuntimeStatus: "downloading", Description: "pulling b"}}}
	cur := deployState{Modules: []moduleProgress{{Name: "a", RuntimeStatus: "running"}, {Name: "b", RuntimeStatus: "running"}, {Name: "c", RuntimeStatus: "unknown", Description: "not reported yet"}}}
	got := strings.Join(changedLines(prev, cur), "|")
	if want := "  b: running|  c: unknown (not reported yet)"; got != want {
		t.Errorf("changedLines = %q, want %q", got, want)
	}
}

func TestPercentBar(t *testing.T) {
	tests := []struct {
		percent, width int
		want           string
	}{
		{0, 10, "[----------]   0%"},
		{30, 10, "[###-------]  30%"},
		{99, 10, "[#########-]  99%"},
		{100, 10, "[##########] 100%"},
		{150, 10, "[##########] 100%"},
		{-5, 10, "[----------]   0%"},
		{45, 0, " 45%"},
	}
	for _, tt := range tests {
		if got := percentBar(tt.percent, tt.width); got != tt.want {
			t.Errorf("percentBar(%d, %d) = %q, want %q", tt.percent, tt.width, got, tt.want)
		}
	}
}

// TestDeployDownloadProgress follows the agent's "downloading NN%"
// statusDescription: evaluateDeploy reads the percentage per module, and
// changedLines draws a bar for each module that downloads.
func TestDeployDownloadProgress(t *testing.T) {
	want := []expectedModule{
		{Name: "edgeHub", Image: "hub:1", Status: "running"},
		{Name: "filter", Image: "acr.io/filter:2", Status: "running"},
		{Name: "sensor", Image: "acr.io/sensor:2", Status: "running"},
	}
	doc := func(filter, sensor string) string {
		return `{"$version":9,"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},"systemModules":{"edgeHub":{"runtimeStatus":"running"}},` +
			`"modules":{"filter":` + filter + `,"sensor":` + sensor + `}}`
	}
	downloading := func(desc string) string {
		return `{"runtimeStatus":"downloading","statusDescription":"` + desc + `"}`
	}
	steps := []struct {
		filter, sensor string
		percents       map[string]int // by module; absent: none
		lines          string
	}{
		{filter: downloading("pulling acr.io/filter:2"), sensor: `{"runtimeStatus":"unknown","statusDescription":"not created"}`,
			lines: "  edgeHub: running|  filter: downloading (pulling acr.io/filter:2)|  sensor: unknown (not created)"},
		{filter: downloading("downloading 30% of acr.io/filter:2"), sensor: downloading("downloading 5% of acr.io/sensor:2; last attempt failed: timeout"),
			percents: map[string]int{"filter": 30, "sensor": 5},
			lines: "  filter: downloading [#########---------------------]  30% of acr.io/filter:2" +
				"|  sensor: downloading [#-----------------------------]   5% of acr.io/sensor:2 (last attempt failed: timeout)"},
		{filter: downloading("downloading 30% of acr.io/filter:2"), sensor: downloading("downloading 60% of acr.io/sensor:2"),
			percents: map[string]int{"filter": 30, "sensor": 60},
			lines:    "  sensor: downloading [##################------------]  60% of acr.io/sensor:2"},
		{filter: `{"runtimeStatus":"running"}`, sensor: downloading("downloading 100% of acr.io/sensor:2"),
			percents: map[string]int{"sensor": 100},
			lines:    "  filter: running|  sensor: downloading [##############################] 100% of acr.io/sensor:2"},
	}
	var prev deployState
	for i, s := range steps {
		t.Run(fmt.Sprint("step ", i), func(t *testing.T) {
			st := evaluateDeploy(want, 7, 5, report(t, doc(s.filter, s.sensor)))
			for _, m := range st.Modules {
				p, ok := s.percents[m.Name]
				switch {
				case ok && (m.DownloadPercent == nil || *m.DownloadPercent != p):
					t.Errorf("%s: DownloadPercent %v, want %d", m.Name, m.DownloadPercent, p)
				case !ok && m.DownloadPercent != nil:
					t.Errorf("%s: DownloadPercent %d, want none", m.Name, *m.DownloadPercent)
				}
			}
			if got := strings.Join(changedLines(prev, st), "|"); got != s.lines {
				t.Errorf("changedLines =\n%q\nwant\n%q", got, s.lines)
			}
			prev = st
		})
	}
}
