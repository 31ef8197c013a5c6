package main

// Helpers of the crash and disk-full tests (crash_test.go, diskfull_test.go): the edgehub
// binary built once, a hub process that can be killed with SIGKILL and restarted on the
// same data directory, a fake IoT Hub with an edge device and its senders, publishers that
// record which of their messages were acknowledged, and the check of what reached the cloud.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The edgehub binary is built once per test run into buildDir, removed by TestMain.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// edgehubBinary returns the path of the edgehub command built from this package, building
// it on first use.
func edgehubBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if buildDir, buildErr = os.MkdirTemp("", "edgehub-crash-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "edgehub")
		cmd := exec.Command(goTool, "build", "-o", buildBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// upstreamRoutes is the --config file of every test: everything goes to IoT Hub.
const upstreamRoutes = `{"edgeHub": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"},
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}}`

// cloud is a fake IoT Hub with edge device edge1 and the identities that publish through
// the hub.
type cloud struct {
	s       *fakehub.Server
	senders []sas.ConnectionString // modules m1.., then leaf devices leaf1..
	hubArgs []string               // the edgehub flags that connect it upstream
}

// newCloud starts a fake IoT Hub with edge1, `modules` modules and `leaves` leaf devices,
// and writes the edge hub's connection string and --config into dir.
func newCloud(t *testing.T, dir string, modules, leaves int) *cloud {
	t.Helper()
	s := fakehubtest.New(t)
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	c := &cloud{s: s}
	add := func(text string) {
		cs, err := sas.ParseConnectionString(text)
		if err != nil {
			t.Fatal(err)
		}
		c.senders = append(c.senders, cs)
	}
	for i := 1; i <= modules; i++ {
		_, cs := fakehubtest.MustModule(t, s, "edge1", fmt.Sprintf("m%d", i))
		add(cs)
	}
	for i := 1; i <= leaves; i++ {
		_, cs := fakehubtest.MustDevice(t, s, fmt.Sprintf("leaf%d", i), fakehubtest.Parent(edge))
		add(cs)
	}
	edgeCS, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	csFile, cfg := filepath.Join(dir, "edgehub-connection-string"), filepath.Join(dir, "config.json")
	writeFile(t, csFile, edgeCS)
	writeFile(t, cfg, upstreamRoutes)
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	c.hubArgs = []string{"--config", cfg, "--upstream-connection-string-file", csFile,
		"--upstream-ca-file", s.CAFile(), "--upstream-port", port}
	return c
}

// hubProcess is one run of the edgehub binary.
type hubProcess struct {
	cmd     *exec.Cmd
	plain   string        // its plain MQTT address
	metrics string        // its metrics address, when --metrics-addr enabled it
	exited  chan struct{} // closed once it has exited and been reaped
}

// hubRunner starts, kills and restarts the edgehub binary with the same arguments (so on
// the same data directory), appending its log to one file.
type hubRunner struct {
	t       *testing.T
	bin     string
	args    []string
	logPath string
	cur     atomic.Pointer[hubProcess]
	addr    atomic.Value // string: the current plain address, for publishers
	starts  int
}

// newHubRunner prepares a hub on dataDir with the given extra flags; it is killed on cleanup.
func newHubRunner(t *testing.T, dataDir string, extra ...string) *hubRunner {
	t.Helper()
	h := &hubRunner{
		t:   t,
		bin: edgehubBinary(t),
		args: append([]string{"--data-dir", dataDir, "--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0",
			"--metrics-addr", "", "--log-format", "json"}, extra...),
		logPath: filepath.Join(t.TempDir(), "edgehub.log"),
	}
	h.addr.Store("")
	t.Cleanup(func() {
		h.kill()
		if t.Failed() {
			t.Logf("edgehub log (last lines):\n%s", h.logTail(40))
		}
	})
	return h
}

// start runs the hub and waits until it logs that it is ready.
func (h *hubRunner) start() {
	h.t.Helper()
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		h.t.Fatal(err)
	}
	cmd := exec.Command(h.bin, h.args...)
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // killed as a group
	if err := cmd.Start(); err != nil {
		logf.Close()
		pr.Close()
		pw.Close()
		h.t.Fatal(err)
	}
	pw.Close()
	h.starts++
	p := &hubProcess{cmd: cmd, exited: make(chan struct{})}
	h.cur.Store(p)
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	type readyLine struct {
		Msg     string `json:"msg"`
		Plain   string `json:"plain_address"`
		Metrics string `json:"metrics_address"`
	}
	ready := make(chan readyLine, 1)
	go func() { // copies the log until the process exits, and spots the ready line
		defer pr.Close()
		defer logf.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			logf.Write(append(sc.Bytes(), '\n'))
			if found {
				continue
			}
			var line readyLine
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edgehub ready" {
				found = true
				ready <- line
			}
		}
	}()
	select {
	case line := <-ready:
		p.plain, p.metrics = line.Plain, line.Metrics
		h.addr.Store(p.plain)
	case <-p.exited:
		h.t.Fatalf("edgehub (start %d) exited before it was ready: %v\n%s", h.starts, cmd.ProcessState, h.logTail(20))
	case <-time.After(15 * time.Second):
		h.t.Fatalf("edgehub (start %d) not ready within 15s\n%s", h.starts, h.logTail(20))
	}
}

// kill sends SIGKILL to the hub's process group and waits until it is reaped. It does
// nothing when no hub is running.
func (h *hubRunner) kill() {
	p := h.cur.Load()
	if p == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		h.t.Errorf("edgehub pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
	h.cur.Store(nil)
}

// stop sends SIGTERM to the hub and waits until it has exited (SIGKILL after 15 s, which
// fails the test: the hub must stop cleanly). It does nothing when no hub is running.
func (h *hubRunner) stop() {
	p := h.cur.Load()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		h.t.Errorf("edgehub pid %d did not stop within 15s of SIGTERM", p.cmd.Process.Pid)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	h.cur.Store(nil)
}

// current is the hub process last started, nil when none runs.
func (h *hubRunner) current() *hubProcess { return h.cur.Load() }

// alive reports whether the current hub process is running.
func (h *hubRunner) alive() bool {
	p := h.cur.Load()
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// currentAddr is the plain address of the hub last started.
func (h *hubRunner) currentAddr() string { return h.addr.Load().(string) }

// logLines returns the hub's log lines (all runs) whose msg contains msg.
func (h *hubRunner) logLines(msg string) []map[string]any {
	b, _ := os.ReadFile(h.logPath)
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil {
			if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
				out = append(out, rec)
			}
		}
	}
	return out
}

func (h *hubRunner) logTail(n int) string {
	b, _ := os.ReadFile(h.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// publisher sends sequence-numbered QoS 1 telemetry as one identity, over plain MQTT to
// whatever address addr returns, one message at a time, and records which were
// acknowledged. After a failure it connects again and goes on with the next sequence
// number: an unacknowledged message is not sent again, so only acknowledged ones are owed.
type publisher struct {
	cs       sas.ConnectionString
	bodySize int
	addr     func() string
	interval time.Duration // pause after each acknowledged publish; 0: as fast as acknowledged

	mu        sync.Mutex
	next      int
	acked     []int // in order
	noAck     int   // publishes that got no PUBACK: the connection closed (refused, killed)...
	timedOut  int   // ...or no answer within publishTimeout (counted in noAck too)
	connFails int
	sessions  int // successful connections
}

// sender is "{device}" or "{device}/{module}", as the cloud attributes events.
func (p *publisher) sender() string {
	return sas.Identity{DeviceID: p.cs.DeviceID, ModuleID: p.cs.ModuleID}.String()
}

// messageBody is the body of seq sent by sender: a header then a filler derived from
// both, so that a damaged body is recognised.
func messageBody(sender string, seq, size int) []byte {
	b := []byte(fmt.Sprintf("%s#%d#", sender, seq))
	for i := 0; len(b) < size; i++ {
		b = append(b, 'a'+byte((seq+i)%26))
	}
	return b
}

// parseBody returns the sender and seq of a body made by messageBody.
func parseBody(b []byte) (string, int, bool) {
	parts := strings.SplitN(string(b), "#", 3)
	if len(parts) != 3 {
		return "", 0, false
	}
	seq, err := strconv.Atoi(parts[1])
	return parts[0], seq, err == nil
}

const publishTimeout = 15 * time.Second // beyond the hub's store timeout (10 s)

// run publishes until ctx ends.
func (p *publisher) run(ctx context.Context) {
	for ctx.Err() == nil {
		c, err := p.connect(ctx, p.addr())
		if err != nil {
			p.mu.Lock()
			p.connFails++
			p.mu.Unlock()
			sleepCtx(ctx, 20*time.Millisecond)
			continue
		}
		p.mu.Lock()
		p.sessions++
		p.mu.Unlock()
		p.publishLoop(ctx, c)
		c.Disconnect(0)
		sleepCtx(ctx, 20*time.Millisecond) // a little back-off, as SDKs do
	}
}

// publishLoop publishes on c until a publish is not acknowledged or ctx ends.
func (p *publisher) publishLoop(ctx context.Context, c paho.Client) {
	topic := iothub.TelemetryTopic(p.cs.DeviceID, p.cs.ModuleID, nil)
	for ctx.Err() == nil {
		p.mu.Lock()
		p.next++
		seq := p.next
		p.mu.Unlock()
		tok := c.Publish(topic, 1, false, messageBody(p.sender(), seq, p.bodySize))
		// The outcome is awaited even when ctx ends, so that once stopped, a publisher has
		// nothing on its way that the hub may have stored: its last message is either
		// acknowledged or refused.
		ok, timedOut := false, false
		select {
		case <-tok.Done():
			ok = tok.Error() == nil
		case <-time.After(publishTimeout):
			timedOut = true
		}
		p.mu.Lock()
		if ok {
			p.acked = append(p.acked, seq)
		} else {
			p.noAck++
			if timedOut {
				p.timedOut++
			}
		}
		p.mu.Unlock()
		if !ok {
			return
		}
		if p.interval > 0 {
			sleepCtx(ctx, p.interval)
		}
	}
}

// connect opens a paho connection as the publisher's identity, without auto-reconnect and
// with a clean session.
func (p *publisher) connect(ctx context.Context, addr string) (paho.Client, error) {
	if addr == "" {
		return nil, errors.New("no hub address")
	}
	return connectAs(ctx, p.cs, addr)
}

// connectAs connects to the hub at addr as the identity of cs.
func connectAs(ctx context.Context, cs sas.ConnectionString, addr string) (paho.Client, error) {
	resource := cs.HostName + "/devices/" + cs.DeviceID
	clientID := cs.DeviceID
	if cs.ModuleID != "" {
		resource += "/modules/" + cs.ModuleID
		clientID += "/" + cs.ModuleID
	}
	tok, err := sas.Sign(resource, cs.SharedAccessKey, "", time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetUsername(iothub.FormatUsername(cs.HostName, cs.DeviceID, cs.ModuleID, nil)).
		SetPassword(tok).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second))
	ct := c.Connect()
	select {
	case <-ct.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, errors.New("CONNECT timed out")
	}
	if ct.Error() != nil {
		return nil, ct.Error()
	}
	return c, nil
}

// ackedCount is how many of its messages were acknowledged.
func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// counts returns acked, noAck, connFails and sessions.
func (p *publisher) counts() (acked, noAck, connFails, sessions int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked), p.noAck, p.connFails, p.sessions
}

func (p *publisher) ackedSeqs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked)
}

// fleet is the publishers of a test and the goroutines running them.
type fleet struct {
	pubs   []*publisher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startFleet starts one publisher per sender; stop (also on cleanup) ends them.
func startFleet(t *testing.T, senders []sas.ConnectionString, bodySize int, addr func() string) *fleet {
	return startPacedFleet(t, senders, bodySize, 0, addr)
}

// startPacedFleet is startFleet with publishers pausing interval after each acknowledged
// publish.
func startPacedFleet(t *testing.T, senders []sas.ConnectionString, bodySize int, interval time.Duration, addr func() string) *fleet {
	f := &fleet{}
	for _, cs := range senders {
		f.pubs = append(f.pubs, &publisher{cs: cs, bodySize: bodySize, addr: addr, interval: interval})
	}
	f.resume()
	t.Cleanup(f.stop)
	return f
}

// resume starts the publishers again after stop; they go on with their next seq.
func (f *fleet) resume() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, p := range f.pubs {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			p.run(ctx)
		}()
	}
}

// stop ends the publishers and waits for them.
func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// noAcks returns how many publishes got no PUBACK and, of them, how many timed out.
func (f *fleet) noAcks() (noAck, timedOut int) {
	for _, p := range f.pubs {
		p.mu.Lock()
		noAck += p.noAck
		timedOut += p.timedOut
		p.mu.Unlock()
	}
	return noAck, timedOut
}

// totalAcked is the number of acknowledged messages over all publishers.
func (f *fleet) totalAcked() int {
	n := 0
	for _, p := range f.pubs {
		n += p.ackedCount()
	}
	return n
}

// eachAckedAtLeast reports whether every publisher has at least n acknowledged messages
// more than in base (nil: none).
func (f *fleet) eachAckedAtLeast(base []int, n int) bool {
	for i, p := range f.pubs {
		b := 0
		if base != nil {
			b = base[i]
		}
		if p.ackedCount() < b+n {
			return false
		}
	}
	return true
}

// ackedCounts returns each publisher's acknowledged count.
func (f *fleet) ackedCounts() []int {
	out := make([]int, len(f.pubs))
	for i, p := range f.pubs {
		out[i] = p.ackedCount()
	}
	return out
}

// delivery is what the cloud received from the fleet, compared with what was acknowledged.
type delivery struct {
	acked, delivered, duplicates, unackedDelivered int
	missing                                        map[string][]int // acknowledged, never received
	outOfOrder                                     []string         // first receptions out of seq order
	corrupt                                        []string         // bodies not as sent
}

func (d delivery) String() string {
	return fmt.Sprintf("acked %d, delivered %d (events), duplicates %d, delivered but never acked %d, missing %d, out of order %d, corrupt %d",
		d.acked, d.delivered, d.duplicates, d.unackedDelivered, d.missingCount(), len(d.outOfOrder), len(d.corrupt))
}

func (d delivery) missingCount() int {
	n := 0
	for _, m := range d.missing {
		n += len(m)
	}
	return n
}

// check compares the cloud's events with the fleet's acknowledged messages.
func (f *fleet) check(s *fakehub.Server) delivery {
	events := s.Events(0, 0)
	if len(events) > 0 && events[0].Seq != 1 {
		// The fake hub keeps the last 100,000 events; the tests stay well below that, or
		// collect the events as they come (soak_test.go) and call compare.
		return delivery{corrupt: []string{fmt.Sprintf("test bug: IoT Hub's event ring overflowed (it starts at event %d), the comparison is void", events[0].Seq)}}
	}
	return f.compare(events)
}

// compare compares events (every event IoT Hub received, oldest first) with the fleet's
// acknowledged messages.
func (f *fleet) compare(events []fakehub.Event) delivery {
	d := delivery{missing: map[string][]int{}}
	bySender := map[string]*publisher{}
	for _, p := range f.pubs {
		bySender[p.sender()] = p
		d.acked += p.ackedCount()
	}
	seen := map[string]map[int]int{}
	maxSeq := map[string]int{}
	for _, ev := range events {
		from := sas.Identity{DeviceID: ev.DeviceID, ModuleID: ev.ModuleID}.String()
		p := bySender[from]
		if p == nil {
			continue
		}
		d.delivered++
		sender, seq, ok := parseBody(ev.Body)
		if !ok || sender != from || string(ev.Body) != string(messageBody(sender, seq, p.bodySize)) {
			d.corrupt = append(d.corrupt, fmt.Sprintf("event %d from %s: %.60q", ev.Seq, from, ev.Body))
			continue
		}
		if seen[from] == nil {
			seen[from] = map[int]int{}
		}
		seen[from][seq]++
		if seen[from][seq] > 1 {
			d.duplicates++
			continue
		}
		if seq < maxSeq[from] {
			d.outOfOrder = append(d.outOfOrder, fmt.Sprintf("%s #%d after #%d (event %d)", from, seq, maxSeq[from], ev.Seq))
		}
		maxSeq[from] = max(maxSeq[from], seq)
	}
	for _, p := range f.pubs {
		acked := map[int]bool{}
		for _, seq := range p.ackedSeqs() {
			acked[seq] = true
			if seen[p.sender()][seq] == 0 {
				d.missing[p.sender()] = append(d.missing[p.sender()], seq)
			}
		}
		for seq := range seen[p.sender()] {
			if !acked[seq] {
				d.unackedDelivered++
			}
		}
	}
	return d
}

// cutQuietly cuts the network between IoT Hub and the hub h while nothing is on its way
// over the link: it stops the publishers, waits until everything acknowledged reached IoT
// Hub, cuts, waits until the hub has noticed, and starts the publishers again. A cut under
// load can stall the upstream pump for 30 s (see TestCrash_LinkDropUnderLoad); the tests
// that use this one are about something else.
func (f *fleet) cutQuietly(t *testing.T, s *fakehub.Server, h *hubRunner) {
	t.Helper()
	f.stop()
	if d := f.waitDelivered(s, 20*time.Second); d.missingCount() > 0 {
		d.report(t, f)
		t.FailNow()
	}
	lost := len(h.logLines(linkLostMsg))
	s.CutNetwork()
	waitUntil(t, 10*time.Second, "the hub to notice that the link is down", func() bool { return len(h.logLines(linkLostMsg)) > lost })
	f.resume()
}

// linkLostMsg is the hub's log line when its link to IoT Hub drops.
const linkLostMsg = "link to IoT Hub lost"

// waitDelivered waits (up to timeout) until every acknowledged message reached the cloud
// and returns the final comparison.
func (f *fleet) waitDelivered(s *fakehub.Server, timeout time.Duration) delivery {
	deadline := time.Now().Add(timeout)
	for {
		d := f.check(s)
		if d.missingCount() == 0 || time.Now().After(deadline) {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// report logs the comparison and fails the test on any loss, reordering or damage.
func (d delivery) report(t *testing.T, f *fleet) {
	t.Helper()
	t.Logf("delivery: %s", d)
	for _, p := range f.pubs {
		acked, noAck, connFails, sessions := p.counts()
		t.Logf("  %-12s acked %5d, no PUBACK %3d, connections %3d, refused connects %3d", p.sender(), acked, noAck, sessions, connFails)
	}
	if d.acked == 0 {
		t.Error("nothing was acknowledged: the test proved nothing")
	}
	for sender, seqs := range d.missing {
		if len(seqs) > 10 {
			seqs = seqs[:10]
		}
		t.Errorf("LOSS: %s: %d acknowledged messages never reached IoT Hub, first: %v", sender, len(d.missing[sender]), seqs)
	}
	for _, o := range firstN(d.outOfOrder, 10) {
		t.Errorf("out of order: %s", o)
	}
	for _, c := range firstN(d.corrupt, 10) {
		t.Errorf("corrupt body: %s", c)
	}
}

func firstN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// waitUntil polls cond until it holds or timeout passes, then fails the test naming what.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}
