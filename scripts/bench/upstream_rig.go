package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// upstreamRig is one measured set-up: a fresh fake IoT Hub and, unless the clients publish
// straight to it (the reference), a fresh edge hub connected to it over its one upstream
// link, routing every module message to $upstream.
type upstreamRig struct {
	cloud   *fakeCloud
	hub     *proc // nil for the direct reference
	hubDir  string
	hubAddr string // the hub's plain MQTT listener
	metrics string // the hub's metrics listener, when rigOptions.metrics
	modules []string
	creds   map[string]sas.ConnectionString
	caPool  *x509.CertPool
}

// rigOptions say what a rig runs.
type rigOptions struct {
	modules  []string // the load clients, modules of the edge device
	direct   bool     // no edge hub: the clients connect to the fake hub
	maxBytes int64    // the hub's --store-max-bytes (0: no cap)
	metrics  bool     // serve the hub's metrics on a free port
}

// upstreamRoute sends every module message to IoT Hub.
const upstreamHubConfig = `{"edgeHub": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"},
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}}`

// startRig starts the fake hub, then the edge hub (unless o.direct) and waits for its link.
func startRig(ctx context.Context, s *settings, o rigOptions) (*upstreamRig, error) {
	bin, err := upFakehubBuild.get(ctx, s)
	if err != nil {
		return nil, err
	}
	c, err := startFakeCloud(ctx, bin, s.Workdir, o.modules)
	if err != nil {
		return nil, err
	}
	r := &upstreamRig{cloud: c, modules: o.modules, creds: map[string]sas.ConnectionString{}}
	for _, m := range o.modules {
		if r.creds[m], err = c.moduleCS(m); err != nil {
			_ = r.stop()
			return nil, err
		}
	}
	pem, err := os.ReadFile(c.ca)
	if err != nil {
		_ = r.stop()
		return nil, err
	}
	r.caPool = x509.NewCertPool()
	r.caPool.AppendCertsFromPEM(pem)
	if o.direct {
		return r, nil
	}
	if err := r.startHub(ctx, s, o); err != nil {
		_ = r.stop()
		return nil, err
	}
	if err := c.waitLink(ctx, true); err != nil {
		_ = r.stop()
		return nil, fmt.Errorf("%w; the hub's last lines:\n%s", err, r.hub.lastLines())
	}
	return r, nil
}

func (r *upstreamRig) startHub(ctx context.Context, s *settings, o rigOptions) error {
	dir, err := os.MkdirTemp(s.Workdir, "uphub-")
	if err != nil {
		return err
	}
	r.hubDir = dir
	edgeCS, err := r.cloud.moduleCS(cloudEdgeHub)
	if err != nil {
		return err
	}
	csFile, cfg := filepath.Join(dir, "connection-string"), filepath.Join(dir, "config.json")
	if err := os.WriteFile(csFile, []byte(edgeCS.String()), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(cfg, []byte(upstreamHubConfig), 0o600); err != nil {
		return err
	}
	metrics := ""
	if o.metrics {
		metrics = "127.0.0.1:0"
	}
	args := []string{
		"--data-dir", filepath.Join(dir, "data"), "--config", cfg,
		"--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0", "--metrics-addr", metrics,
		"--log-format", "json", "--log-level", "info",
		"--upstream-connection-string-file", csFile, "--upstream-ca-file", r.cloud.ca,
		"--upstream-port", r.cloud.mqttPort(),
	}
	if o.maxBytes > 0 {
		args = append(args, "--store-max-bytes", strconv.FormatInt(o.maxBytes, 10), "--store-full-policy", "reject-new")
	}
	args = append(args, s.HubArgs...)
	p, err := startProc("edgehub", s.Hub, args, func(line string) bool {
		var l struct {
			Msg     string `json:"msg"`
			Plain   string `json:"plain_address"`
			Metrics string `json:"metrics_address"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "edgehub ready" {
			return false
		}
		r.hubAddr, r.metrics = l.Plain, l.Metrics
		return true
	}, 30*time.Second)
	if err != nil {
		return err
	}
	r.hub = p
	return nil
}

// stop ends both processes and removes their directories.
func (r *upstreamRig) stop() error {
	var err error
	if r.hub != nil {
		err = r.hub.stop(10 * time.Second)
	}
	if r.hubDir != "" {
		if rmErr := os.RemoveAll(r.hubDir); err == nil {
			err = rmErr
		}
	}
	if cErr := r.cloud.stop(); err == nil {
		err = cErr
	}
	return err
}

// storeFile is the hub's message store.
func (r *upstreamRig) storeFile() string { return filepath.Join(r.hubDir, "data", "store.db") }

// connectModule connects the load client of module i: to the edge hub's plain listener, or
// over TLS straight to the fake hub for the direct reference. It authenticates with a SAS
// token of the module's own key, as a module does; the edge hub checks it with IoT Hub on
// the first connection (on-behalf-of authentication) and caches it. lost is called if the
// connection drops.
func (r *upstreamRig) connectModule(i int, lost func(error)) (paho.Client, string, error) {
	m := r.modules[i]
	cs := r.creds[m]
	tok, err := cs.Token(time.Now(), 24*time.Hour)
	if err != nil {
		return nil, "", err
	}
	o := paho.NewClientOptions().
		SetClientID(iothub.ClientID(cloudEdge, m)).
		SetUsername(iothub.FormatUsername(cloudHostname, cloudEdge, m, nil)).SetPassword(tok).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(connectTimeout).SetOrderMatters(true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			if lost != nil {
				lost(fmt.Errorf("%s: %w: %w", m, errLost, err))
			}
		})
	if r.hub == nil {
		o.AddBroker("ssl://" + r.cloud.mqtt).SetTLSConfig(&tls.Config{RootCAs: r.caPool, ServerName: cloudHostname, MinVersion: tls.VersionTLS12})
	} else {
		o.AddBroker("tcp://" + r.hubAddr)
	}
	c := paho.NewClient(o)
	ct := c.Connect()
	if !ct.WaitTimeout(connectTimeout) {
		return nil, "", fmt.Errorf("connect %s: no CONNACK within %v", m, connectTimeout)
	}
	if err := ct.Error(); err != nil {
		return nil, "", fmt.Errorf("connect %s: %w", m, err)
	}
	return c, iothub.TelemetryTopic(cloudEdge, m, nil), nil
}

// connectPublishersTo connects publishers for the modules from..to-1 (window publishes in
// flight each).
func (r *upstreamRig) connectPublishersTo(from, to, window int, fail *failure) ([]*publisher, error) {
	var pubs []*publisher
	for i := from; i < to; i++ {
		c, topic, err := r.connectModule(i, fail.set)
		if err != nil {
			disconnectAll(nil, pubs)
			return nil, err
		}
		pubs = append(pubs, &publisher{client: c, topic: topic, window: window})
	}
	return pubs, nil
}

// hubMetrics reads series of the hub's Prometheus metrics. Each query is a metric name,
// optionally followed by one label that the series must carry, as in
// `messages_refused_total{reason="store_full"}`; the hub's constant labels (edge device,
// hub) are ignored. Series not found are absent from the answer.
func (r *upstreamRig) hubMetrics(ctx context.Context, queries ...string) (map[string]float64, error) {
	if r.metrics == "" {
		return nil, fmt.Errorf("the hub serves no metrics")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if name, labels, v, ok := parseMetricLine(sc.Text()); ok {
			for _, q := range queries {
				qname, qlabel, _ := strings.Cut(strings.TrimSuffix(q, "}"), "{")
				if name == qname && (qlabel == "" || strings.Contains(","+labels+",", ","+qlabel+",")) {
					out[q] = v
				}
			}
		}
	}
	return out, sc.Err()
}

// parseMetricLine splits a line of the Prometheus text format, `name{labels} value`.
func parseMetricLine(line string) (name, labels string, v float64, ok bool) {
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", 0, false
	}
	series, val, found := strings.Cut(line, " ")
	if !found {
		return "", "", 0, false
	}
	name, labels, _ = strings.Cut(series, "{")
	labels = strings.TrimSuffix(labels, "}")
	v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
	return name, labels, v, err == nil
}

// The bodies of the upstream scenarios: a marker byte that makes them invalid UTF-8 (so
// the fake hub's API returns them base64 only, not twice), the sender's index, its
// message number and the send time (Unix nanoseconds: the fake hub stamps arrivals with
// the same machine's wall clock), then zero padding up to the size.
const (
	upBodyMarker = 0xff
	upHeaderSize = 1 + 2 + 8 + 8
)

func upBody(size, sender int, seq uint64, sent time.Time) []byte {
	b := make([]byte, max(size, upHeaderSize))
	b[0] = upBodyMarker
	binary.BigEndian.PutUint16(b[1:3], uint16(sender))
	binary.BigEndian.PutUint64(b[3:11], seq)
	binary.BigEndian.PutUint64(b[11:19], uint64(sent.UnixNano()))
	return b
}

func parseUpBody(b []byte) (sender int, seq uint64, sent time.Time, ok bool) {
	if len(b) < upHeaderSize || b[0] != upBodyMarker {
		return 0, 0, time.Time{}, false
	}
	return int(binary.BigEndian.Uint16(b[1:3])), binary.BigEndian.Uint64(b[3:11]),
		time.Unix(0, int64(binary.BigEndian.Uint64(b[11:19]))), true
}

// arrivals is what reached the fake hub compared with what the publishers had
// acknowledged.
type arrivals struct {
	Unique, Dups, Missing, OutOfOrder, Unknown int
}

// checkArrivals compares captured events with acked[i], the number of messages sender i
// had acknowledged (its messages 0..acked[i]-1): each sender's messages must first arrive
// in order, every acknowledged one must arrive, duplicates are counted.
func checkArrivals(evs []cloudEvent, acked []int) arrivals {
	var a arrivals
	seen := make([]map[uint64]bool, len(acked))
	next := make([]uint64, len(acked)) // the highest new message number + 1, per sender
	for i := range seen {
		seen[i] = map[uint64]bool{}
	}
	for _, e := range evs {
		sender, seq, _, ok := parseUpBody(e.Body)
		if !ok || sender >= len(acked) {
			a.Unknown++
			continue
		}
		switch {
		case seen[sender][seq]:
			a.Dups++
		default:
			seen[sender][seq] = true
			a.Unique++
			if seq < next[sender] {
				a.OutOfOrder++
			}
			next[sender] = max(next[sender], seq+1)
		}
	}
	for i, n := range acked {
		for k := range uint64(n) {
			if !seen[i][k] {
				a.Missing++
			}
		}
	}
	return a
}

func (a arrivals) String() string {
	return fmt.Sprintf("%d distinct, %d duplicates, %d missing, %d out of order, %d unknown", a.Unique, a.Dups, a.Missing, a.OutOfOrder, a.Unknown)
}

// upModules names n load clients: prefix000, prefix001, ...
func upModules(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// procCPU is the CPU time of one process at one moment (0 for none).
func procCPU(p *proc) time.Duration {
	if p == nil {
		return 0
	}
	d, _ := readCPU(p.pid()) // a process that exited meanwhile fails the run elsewhere
	return d
}

// cpuSpan measures the CPU use of the rig's processes, this harness and the rest of the
// machine between start and end, in % of one core.
type cpuSpan struct {
	at                  time.Time
	hub, cloud, harness time.Duration
	busy                time.Duration
}

func (r *upstreamRig) sampleCPU() cpuSpan {
	c := cpuSpan{at: time.Now(), hub: procCPU(r.hub), cloud: procCPU(r.cloud.proc)}
	c.harness, _ = readCPU(os.Getpid())
	c.busy, _ = machineBusy()
	return c
}

// rigCPU is CPU use over a span, in % of one core.
type rigCPU struct{ Hub, Cloud, Clients, Other float64 }

func (a cpuSpan) to(b cpuSpan) rigCPU {
	wall := float64(b.at.Sub(a.at))
	if wall <= 0 {
		return rigCPU{}
	}
	hub, cl, h := float64(b.hub-a.hub), float64(b.cloud-a.cloud), float64(b.harness-a.harness)
	other := max(0, float64(b.busy-a.busy)-hub-cl-h)
	return rigCPU{Hub: 100 * hub / wall, Cloud: 100 * cl / wall, Clients: 100 * h / wall, Other: 100 * other / wall}
}
