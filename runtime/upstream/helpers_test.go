package upstream_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// These tests run the client against the fake IoT Hub over real TLS sockets on loopback.

var (
	leaf1 = sas.Identity{DeviceID: "leaf1"}
	leaf2 = sas.Identity{DeviceID: "leaf2"}
	m1    = sas.Identity{DeviceID: "edge1", ModuleID: "m1"}
	m2    = sas.Identity{DeviceID: "edge1", ModuleID: "m2"}
	other = sas.Identity{DeviceID: "other"}
	ghost = sas.Identity{DeviceID: "ghost"}
)

// world registers edge1 (an edge device, with $edgeHub), its modules m1 and m2, the leaves
// leaf1 and leaf2 (children of edge1) and other (a device of nobody's).
func world(t *testing.T) *fakehub.Server {
	t.Helper()
	s := fakehubtest.New(t)
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	fakehubtest.MustModule(t, s, "edge1", "m1")
	fakehubtest.MustModule(t, s, "edge1", "m2")
	fakehubtest.MustDevice(t, s, "leaf1", fakehubtest.Parent(edge))
	fakehubtest.MustDevice(t, s, "leaf2", fakehubtest.Parent(edge))
	fakehubtest.MustDevice(t, s, "other")
	return s
}

// options returns client options for edge1's $edgeHub on s: the MQTT/TLS port and CA (the
// server certificate is really verified), a 1 s keep-alive, fast back-off and timeouts, and
// a logger that writes to the test log.
func options(t *testing.T, s *fakehub.Server) upstream.Options {
	t.Helper()
	csText, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(s.MQTTAddress())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return upstream.Options{
		ConnectionString: cs,
		CAFile:           s.CAFile(),
		Port:             p,
		KeepAlive:        time.Second,
		ReconnectMin:     20 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
		RequestTimeout:   5 * time.Second,
		Logger:           slog.New(&testHandler{t: t, counts: &logCounts{n: map[string]int{}}}),
	}
}

// start creates a client with opts, lets setup register handlers, runs it until the test
// ends and waits until it is connected.
func start(t *testing.T, opts upstream.Options, setup func(*upstream.Client)) *upstream.Client {
	t.Helper()
	c, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context ending")
		}
	})
	waitFor(t, "the link to come up", c.Connected)
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or 10 s pass (no bare sleeps).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// carried returns the identities each physical connection carries.
func carried(s *fakehub.Server) [][]string {
	var out [][]string
	for _, c := range s.Connections() {
		out = append(out, c.Identities)
	}
	return out
}

// testHandler is a slog handler that writes to the test log and counts messages.
type testHandler struct {
	t      *testing.T
	attrs  []slog.Attr
	counts *logCounts
}

type logCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *testHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		sb.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		sb.WriteString(" " + a.String())
		return true
	})
	h.counts.mu.Lock()
	h.counts.n[r.Message]++
	h.counts.mu.Unlock()
	h.t.Log(sb.String())
	return nil
}

func (h *testHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testHandler{t: h.t, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), counts: h.counts}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }

// logged returns how often a message was logged through opts.Logger.
func logged(opts upstream.Options, msg string) int {
	h := opts.Logger.Handler().(*testHandler)
	h.counts.mu.Lock()
	defer h.counts.mu.Unlock()
	return h.counts.n[msg]
}

// proxy forwards TCP connections to a target; blackhole(true) makes it swallow everything in
// both directions while keeping the sockets open, as a dead route without a FIN looks;
// stall(true) makes it stop reading what the client sends, so that the client's socket
// buffers fill up and its writes block, as on a congested route.
type proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	dead    bool
	stalled chan struct{} // non-nil while stalled; closed when the stall ends
	conns   []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go p.serve()
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead = on
}

func (p *proxy) stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.stalled == nil:
		p.stalled = make(chan struct{})
	case !on && p.stalled != nil:
		close(p.stalled)
		p.stalled = nil
	}
}

// waitUnstalled returns once the proxy is not stalled.
func (p *proxy) waitUnstalled() {
	p.mu.Lock()
	ch := p.stalled
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *proxy) isDead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead
}

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go p.pipe(in, out, true)
		go p.pipe(out, in, false)
	}
}

// pipe copies src to dst, dropping what it reads while the proxy is a black hole and, for
// the client's side (fromClient), not reading while it is stalled.
func (p *proxy) pipe(src, dst net.Conn, fromClient bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32*1024)
	for {
		if fromClient {
			p.waitUnstalled()
		}
		n, err := src.Read(buf)
		if n > 0 && !p.isDead() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
