package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/agent"
)

// The lifecycle tests deploy the real edge hub and the sample temperature
// sensor (cmd/tempsensor), routed to $upstream, and check that nothing the
// edge hub acknowledged is lost across the agent's death, edgectl stop and
// edgectl start.
//
// Why the sensor can prove it: every message carries the application
// properties batchId (random per run of the module) and sequenceNumber
// (1, 2, ... within the run), and the sensor sends message n+1 only once
// edgeHub has acknowledged message n (SendOutput returns at the PUBACK; a
// failed send ends the run). With MessageCount=N the sensor logs "done
// sending" with messages=N once edgeHub has acknowledged all N: from then
// on the fake hub must receive sequence numbers 1..N of that batch, each at
// least once, whatever happens to the runtime meanwhile.
const (
	// sensorMessages is the sensor's MessageCount: enough, at
	// sensorInterval, to outlast the agent being killed and brought back
	// before the upstream is cut (about 12 s).
	sensorMessages = 60
	sensorInterval = "200ms"
	// sensorModule is the sensor's module name, as in the demo deployment.
	sensorModule = "tempSensor"
	// noLossWait bounds the wait for the messages after the start.
	noLossWait = 30 * time.Second
)

// lifecycleDeployment is what differs between the runtimes in the
// deployment of edgeHub and tempSensor.
type lifecycleDeployment struct {
	hubImage, sensorImage string
	// hubEnv is edgeHub's environment: its store, listen addresses.
	hubEnv map[string]string
	// hubCreate and sensorCreate are the modules' createOptions; nil for
	// none.
	hubCreate, sensorCreate map[string]any
	// pullNever sets imagePullPolicy never: the images are on the engine
	// already (built by the test), as in the demo deployment.
	pullNever bool
}

// manifest renders the deployment as edgectl deploy reads it
// (modulesContent).
func (l lifecycleDeployment) manifest(t *testing.T) []byte {
	t.Helper()
	module := func(image string, env map[string]string, create map[string]any) map[string]any {
		settings := map[string]any{"image": image}
		if create != nil {
			b, err := json.Marshal(create)
			if err != nil {
				t.Fatal(err)
			}
			settings["createOptions"] = string(b)
		}
		envJSON := map[string]any{}
		for k, v := range env {
			envJSON[k] = map[string]any{"value": v}
		}
		m := map[string]any{"type": "docker", "status": "running", "restartPolicy": "always", "settings": settings, "env": envJSON}
		if l.pullNever {
			m["imagePullPolicy"] = "never"
		}
		return m
	}
	hub := module(l.hubImage, l.hubEnv, l.hubCreate)
	sensor := module(l.sensorImage, map[string]string{
		"MessageCount": strconv.Itoa(sensorMessages),
		"SendInterval": sensorInterval,
	}, l.sensorCreate)
	sensor["version"] = "1.0"
	content := map[string]any{"modulesContent": map[string]any{
		"$edgeAgent": map[string]any{"properties.desired": map[string]any{
			"schemaVersion": "1.1",
			"runtime":       map[string]any{"type": "docker", "settings": map[string]any{}},
			"systemModules": map[string]any{
				"edgeAgent": map[string]any{"type": "docker", "settings": map[string]any{"image": "outpost/edgeagent:dev"}},
				"edgeHub":   hub,
			},
			"modules": map[string]any{sensorModule: sensor},
		}},
		"$edgeHub": map[string]any{"properties.desired": map[string]any{
			"schemaVersion": "1.1",
			"routes": map[string]any{
				"sensorToCloud": "FROM /messages/modules/" + sensorModule + "/outputs/temperatureOutput INTO $upstream",
			},
			"storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200},
		}},
	}}
	b, err := json.MarshalIndent(content, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// write saves the manifest and the hub's service connection string
// (iothubowner) in a temporary directory, for edgectl deploy.
func (l lifecycleDeployment) write(t *testing.T, hub *fakehub.Server) (manifest, serviceCS string) {
	t.Helper()
	dir := t.TempDir()
	manifest = filepath.Join(dir, "deployment.json")
	serviceCS = filepath.Join(dir, "service-connection-string")
	if err := os.WriteFile(manifest, l.manifest(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serviceCS, []byte(hub.ServiceConnectionString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return manifest, serviceCS
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for edgeHub's MQTT listener.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sensorTally is what the fake hub received from the sensor, by batch.
type sensorTally struct {
	// batches are the batch ids in the order of their first message.
	batches []string
	// seqs counts the messages of each batch by sequence number.
	seqs map[string]map[int]int
}

// tallySensor reads the sensor's messages among every event the fake hub
// captured from device.
func tallySensor(t *testing.T, hub *fakehub.Server, device string) sensorTally {
	t.Helper()
	s := sensorTally{seqs: map[string]map[int]int{}}
	for _, ev := range hub.Events(0, 0) {
		batch, seqText := ev.Properties["batchId"], ev.Properties["sequenceNumber"]
		if ev.DeviceID != device || batch == "" || seqText == "" {
			continue
		}
		seq, err := strconv.Atoi(seqText)
		if err != nil || seq < 1 {
			t.Fatalf("sensor message with sequenceNumber %q", seqText)
		}
		if s.seqs[batch] == nil {
			s.seqs[batch] = map[int]int{}
			s.batches = append(s.batches, batch)
		}
		s.seqs[batch][seq]++
	}
	return s
}

// distinct is how many sequence numbers of batch arrived.
func (s sensorTally) distinct(batch string) int { return len(s.seqs[batch]) }

// max is the highest sequence number of batch that arrived (0: none).
func (s sensorTally) max(batch string) int {
	m := 0
	for seq := range s.seqs[batch] {
		m = max(m, seq)
	}
	return m
}

// missing lists the sequence numbers of 1..upTo that did not arrive.
func (s sensorTally) missing(batch string, upTo int) []int {
	var out []int
	for seq := 1; seq <= upTo; seq++ {
		if s.seqs[batch][seq] == 0 {
			out = append(out, seq)
		}
	}
	return out
}

// duplicates is how many messages of batch arrived more than once (allowed:
// delivery is at-least-once).
func (s sensorTally) duplicates(batch string) int {
	n := 0
	for _, c := range s.seqs[batch] {
		n += c - 1
	}
	return n
}

func (s sensorTally) String() string {
	var b strings.Builder
	for _, id := range s.batches {
		fmt.Fprintf(&b, "batch %s: %d distinct, max %d, %d duplicate(s); ", id, s.distinct(id), s.max(id), s.duplicates(id))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// Lines of the sensor's log (slog text): its start, with its batch id,
// and the end of its sending, with how many messages edgeHub acknowledged.
var (
	sensorStartedRE = regexp.MustCompile(`msg="tempsensor started".* batch_id=(\S+)`)
	sensorDoneRE    = regexp.MustCompile(`msg="done sending; waiting to be stopped".* messages=(\d+)`)
)

// sensorRun is one run of the sensor, as its log tells.
type sensorRun struct {
	batch string
	// acked is how many messages edgeHub acknowledged, once the run is done
	// sending; -1 before.
	acked int
}

// sensorRuns reads the runs of the sensor from its log.
func sensorRuns(log string) []sensorRun {
	var runs []sensorRun
	for _, line := range strings.Split(log, "\n") {
		if m := sensorStartedRE.FindStringSubmatch(line); m != nil {
			runs = append(runs, sensorRun{batch: m[1], acked: -1})
		} else if m := sensorDoneRE.FindStringSubmatch(line); m != nil && len(runs) > 0 {
			runs[len(runs)-1].acked, _ = strconv.Atoi(m[1])
		}
	}
	return runs
}

// moduleList is edgectl -o json list's output, by module name.
func moduleList(t *testing.T, out string) map[string]agent.ModuleInfo {
	t.Helper()
	var mods []agent.ModuleInfo
	if err := json.Unmarshal([]byte(out), &mods); err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	m := map[string]agent.ModuleInfo{}
	for _, mod := range mods {
		m[mod.Name] = mod
	}
	return m
}

// checkAdopted fails t unless list shows every module in names running,
// never restarted by the agent.
func checkAdopted(t *testing.T, list string, names ...string) {
	t.Helper()
	mods := moduleList(t, list)
	for _, name := range names {
		if m, ok := mods[name]; !ok || m.RuntimeStatus != "running" || m.RestartCount != 0 {
			t.Errorf("%s not listed as running without restarts (%+v): %s", name, m, list)
		}
	}
}

// lifecycleModules are the deployed modules, sorted, as stop lists them.
var lifecycleModules = []string{"edgeHub", sensorModule}

// checkStopOutput fails t unless stop's output names the agent's end and
// every deployed module.
func checkStopOutput(t *testing.T, out string) {
	t.Helper()
	want := "Stopped " + strconv.Itoa(len(lifecycleModules)) + " module(s): " + strings.Join(slices.Sorted(slices.Values(lifecycleModules)), ", ")
	if !strings.Contains(out, "Runtime stopped.") || !strings.Contains(out, want) {
		t.Errorf("stop output lacks %q:\n%s", want, out)
	}
}

// noLoss is the end of both tests' story: the fake hub receives every
// message of the sensor's run before the stop (before.acked of them:
// as many as edgeHub acknowledged), and messages of one new run, the
// sensor's after the start, without a gap.
func noLoss(t *testing.T, hub *fakehub.Server, device string, before sensorRun) {
	t.Helper()
	var s sensorTally
	var after []string
	// Not waitLong: on a time-out, what is missing is the news.
	deadline := time.Now().Add(noLossWait)
	for {
		s = tallySensor(t, hub, device)
		after = slices.DeleteFunc(slices.Clone(s.batches), func(b string) bool { return b == before.batch })
		if s.distinct(before.batch) >= before.acked && len(after) > 0 && s.distinct(after[0]) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s, not every message edgeHub acknowledged before the stop, or not 5 since the start, at the hub", noLossWait)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if miss := s.missing(before.batch, before.acked); len(miss) > 0 || s.max(before.batch) != before.acked {
		t.Errorf("batch %s: missing %v of the %d edgeHub acknowledged (max %d): %s", before.batch, miss, before.acked, s.max(before.batch), s)
	}
	if len(after) != 1 {
		t.Errorf("%d runs of the sensor after the start, want 1: %s", len(after), s)
	}
	for _, b := range after {
		if miss := s.missing(b, s.max(b)); len(miss) > 0 {
			t.Errorf("batch %s after the start: missing %v: %s", b, miss, s)
		}
	}
	t.Logf("at the hub: %s", s)
}

// cutUntilDone cuts the fake hub's network, so that edgeHub must keep what
// the sensor sends from then on in its store, and waits until the sensor
// has sent its last message (logs reads its log). It returns the sensor's
// run, and fails t unless the hub lacks some of the messages edgeHub
// acknowledged: those the stop and start must not lose.
func cutUntilDone(t *testing.T, hub *fakehub.Server, device string, logs func() string) sensorRun {
	t.Helper()
	hub.CutNetwork()
	var runs []sensorRun
	waitLong(t, "the sensor done sending", func() bool {
		runs = sensorRuns(logs())
		return len(runs) != 1 || runs[0].acked >= 0
	})
	if len(runs) != 1 || runs[0].acked != sensorMessages {
		t.Fatalf("sensor runs %+v, want one that sent %d messages; its log:\n%s", runs, sensorMessages, logs())
	}
	s := tallySensor(t, hub, device)
	if len(s.batches) != 1 || s.batches[0] != runs[0].batch {
		t.Fatalf("at the hub: %s; want batch %s only", s, runs[0].batch)
	}
	if s.distinct(runs[0].batch) >= runs[0].acked {
		t.Fatalf("the hub received every message before the network was cut (%s): nothing for edgeHub to keep across the stop; the sensor is too quick (sensorMessages, sensorInterval)", s)
	}
	t.Logf("network cut: the hub has %d of the %d messages edgeHub acknowledged", s.distinct(runs[0].batch), runs[0].acked)
	return runs[0]
}

// waitReconciled waits until the agent that status (edgectl -o json
// status) describes has applied its deployment: the code it reports is 0
// until its own first reconcile, so a new agent that answers 200 has
// looked at the modules and decided what to do with them.
func waitReconciled(t *testing.T, status func() statusOutput) {
	t.Helper()
	var st statusOutput
	waitLong(t, "the agent's first reconcile", func() bool {
		st = status()
		if st.Agent == nil {
			return false
		}
		d := st.Agent.Deployment
		return d.Code == 200 && d.DesiredVersion > 0 && d.LastDesiredVersion == d.DesiredVersion
	})
}
