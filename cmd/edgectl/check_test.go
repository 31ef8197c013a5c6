package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/certs"
)

// checkDevice is a data directory as a device has it: config.json, a
// device connection string, the edge CA and edge hub certificates made by
// runtime/certs, and a running management API. The hub is at hubAddr.
func checkDevice(t *testing.T, hubAddr, caFile, serviceURL, cs string) string {
	t.Helper()
	dir := t.TempDir()
	certDir := filepath.Join(dir, "edgehub")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := certs.LoadOrCreate(certs.Options{Dir: certDir, Names: certs.Names("localhost")})
	if err != nil {
		t.Fatal(err)
	}
	_ = b
	ec := testConfig(dir)
	host, port, _ := net.SplitHostPort(hubAddr)
	ec.IoTHubHostName, ec.CAFile, ec.ServiceURL = host, caFile, serviceURL
	ec.MQTTPort, _ = strconv.Atoi(port)
	ec.ModuleCAFile = filepath.Join(certDir, certs.DefaultCAFile)
	if cs == "" {
		cs = "HostName=" + host + ";DeviceId=edge1;SharedAccessKey=c2VjcmV0LWtleS1vZi1lZGdlMQ=="
	}
	if err := os.WriteFile(ec.ConnectionStringFile, []byte(cs+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, ec)
	rt := &agenttest.FakeRuntime{}
	rt.Put(agent.ModuleState{Name: "edgeHub", State: agent.StateRunning, StartedAt: time.Now()})
	startAPI(t, dir, rt, nil, ec)
	return dir
}

// checkResults runs edgectl check with --output json and returns the exit
// code and the results by id.
func checkResults(t *testing.T, e env, dir string, extra ...string) (int, map[string]checkResult) {
	t.Helper()
	code, out, errOut := cli(t, e, append([]string{"--data-dir", dir, "-o", "json", "check", "--timeout", "2s"}, extra...)...)
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check json: %v\n%s\n%s", err, out, errOut)
	}
	byID := map[string]checkResult{}
	for _, r := range rep.Checks {
		byID[r.ID] = r
	}
	return code, byID
}

func wantResults(t *testing.T, got map[string]checkResult, want map[string]string) {
	t.Helper()
	for id, w := range want {
		if got[id].Result != w {
			t.Errorf("%s = %s (%s / %s), want %s", id, got[id].Result, got[id].Reason, got[id].Fix, w)
		}
	}
}

// Offline, check works: an unreachable hub is a warning with advice, the
// checks that need the hub are skipped, and the exit status is 0.
func TestCheck_Offline(t *testing.T) {
	dir := checkDevice(t, unusedPort(t), "", "", "")
	code, got := checkResults(t, env{}, dir)
	wantResults(t, got, map[string]string{
		"config-well-formed": resultOK, "connection-string": resultOK, "certs-not-expiring": resultOK,
		"storage-writable-free-space": resultOK, "docker-reachable": resultSkipped, "agent-running": resultOK,
		"deployment-applied": resultWarning, // no agent attached: nothing reported yet
		"hub-reachable":      resultWarning, "clock-skew": resultSkipped,
	})
	if code != 0 {
		t.Errorf("exit = %d, want 0 with warnings only", code)
	}
	if fix := got["hub-reachable"].Fix; !strings.Contains(fix, "keeps running the saved deployment") {
		t.Errorf("hub-reachable fix = %q", fix)
	}
	if r := got["certs-not-expiring"].Reason; !strings.Contains(r, "edge CA") || !strings.Contains(r, "edge hub server certificate") {
		t.Errorf("certs checked = %q", r)
	}

	code, _ = checkResults(t, env{}, dir, "--warnings-as-errors")
	if code != 1 {
		t.Errorf("--warnings-as-errors exit = %d, want 1", code)
	}
	code, got = checkResults(t, env{}, dir, "--dont-run", "hub-reachable,deployment-applied")
	if code != 0 || got["hub-reachable"].Reason != "not run (--dont-run)" || got["clock-skew"].Result != resultSkipped {
		t.Errorf("--dont-run: %d %+v", code, got["hub-reachable"])
	}

	// The text form, as an operator sees it.
	code, out, _ := cli(t, env{}, "--data-dir", dir, "check", "--timeout", "2s")
	for _, s := range []string{"Configuration checks\n--------------------\n", "√ device connection string is valid - OK\n",
		"‼ IoT Hub is reachable (MQTT over TLS) - Warning\n", "    Fix: if the device is meant to be offline, nothing",
		"5 check(s) succeeded.\n", "2 check(s) raised warnings.\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("check text lacks %q:\n%s", s, out)
		}
	}
	if code != 0 {
		t.Errorf("exit = %d", code)
	}
}

func TestCheck_Problems(t *testing.T) {
	t.Run("certificates about to expire and expired", func(t *testing.T) {
		dir := checkDevice(t, unusedPort(t), "", "", "")
		// The edge hub's server certificate lasts a year by default.
		code, got := checkResults(t, env{Now: func() time.Time { return time.Now().Add(350 * 24 * time.Hour) }}, dir)
		wantResults(t, got, map[string]string{"certs-not-expiring": resultWarning})
		if !strings.Contains(got["certs-not-expiring"].Reason, "edge hub server certificate") || code != 0 {
			t.Errorf("%d %+v", code, got["certs-not-expiring"])
		}
		code, got = checkResults(t, env{Now: func() time.Time { return time.Now().Add(400 * 24 * time.Hour) }}, dir)
		wantResults(t, got, map[string]string{"certs-not-expiring": resultError})
		if code != 1 || !strings.Contains(got["certs-not-expiring"].Reason, "expired on") {
			t.Errorf("%d %+v", code, got["certs-not-expiring"])
		}
	})
	t.Run("bad connection string", func(t *testing.T) {
		dir := checkDevice(t, unusedPort(t), "", "", "HostName=h;DeviceId=edge1;ModuleId=m;SharedAccessKey=a2V5")
		code, got := checkResults(t, env{}, dir)
		wantResults(t, got, map[string]string{"connection-string": resultError, "hub-reachable": resultSkipped})
		if code != 1 || strings.Contains(got["connection-string"].Reason, "a2V5") {
			t.Errorf("%d %+v", code, got["connection-string"])
		}
	})
	t.Run("missing CA file and little free space", func(t *testing.T) {
		dir := checkDevice(t, unusedPort(t), "/nonexistent/ca.pem", "", "")
		code, got := checkResults(t, env{}, dir, "--min-free-space", "100000TiB")
		wantResults(t, got, map[string]string{"certs-not-expiring": resultError, "storage-writable-free-space": resultWarning, "hub-reachable": resultError})
		if code != 1 || !strings.Contains(got["certs-not-expiring"].Reason, "/nonexistent/ca.pem does not exist") {
			t.Errorf("%d %+v", code, got["certs-not-expiring"])
		}
	})
	t.Run("agent not running", func(t *testing.T) {
		dir := t.TempDir()
		ec := testConfig(dir)
		ec.MQTTPort, _ = strconv.Atoi(strings.Split(unusedPort(t), ":")[1])
		writeConfig(t, ec)
		code, got := checkResults(t, env{}, dir)
		wantResults(t, got, map[string]string{"config-well-formed": resultOK, "connection-string": resultError, "agent-running": resultError, "deployment-applied": resultSkipped})
		if code != 1 || !strings.Contains(got["agent-running"].Fix, "edgeagent --data-dir "+dir) {
			t.Errorf("%d %+v", code, got["agent-running"])
		}
	})
	t.Run("docker runtime without docker", func(t *testing.T) {
		dir := t.TempDir()
		ec := testConfig(dir)
		ec.Runtime = "docker"
		writeConfig(t, ec)
		_, got := checkResults(t, env{}, dir, "--docker-host", "unix://"+filepath.Join(dir, "no-docker.sock"))
		wantResults(t, got, map[string]string{"docker-reachable": resultError})
		if !strings.Contains(got["docker-reachable"].Fix, "start it") {
			t.Errorf("%+v", got["docker-reachable"])
		}
	})
}

// Online, against a fake IoT Hub: the hub is reachable over TLS with its CA,
// and the clock agrees; a device clock 10 minutes off is an error.
func TestCheck_Online(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	dir := checkDevice(t, "localhost:"+port, s.CAFile(), "https://"+s.HTTPAddress(), cs)
	code, got := checkResults(t, env{}, dir)
	wantResults(t, got, map[string]string{"connection-string": resultOK, "hub-reachable": resultOK, "clock-skew": resultOK, "certs-not-expiring": resultOK})
	if code != 0 {
		t.Errorf("exit = %d", code)
	}
	code, got = checkResults(t, env{Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}, dir)
	wantResults(t, got, map[string]string{"clock-skew": resultError})
	if code != 1 || !strings.Contains(got["clock-skew"].Reason, "behind") {
		t.Errorf("%d %+v", code, got["clock-skew"])
	}

	// A CA that did not sign the hub's certificate is an error, not "offline".
	other := t.TempDir()
	b, err := certs.LoadOrCreate(certs.Options{Dir: other, Names: certs.Names("localhost")})
	if err != nil {
		t.Fatal(err)
	}
	_ = b
	_, got = checkResults(t, env{}, dir, "--ca-file", filepath.Join(other, certs.DefaultCAFile))
	wantResults(t, got, map[string]string{"hub-reachable": resultError})
	if !strings.Contains(got["hub-reachable"].Reason, "does not trust") {
		t.Errorf("%+v", got["hub-reachable"])
	}
}
