package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// BenchmarkDrainUpstream measures how fast the $upstream pump drains a backlog over the real
// link: a store (bbolt, fsync on) holding backlog messages of 256 bytes from 4 modules, in
// their 4 queues as ingest stores them, the hub's pipelined pump taking turns between them,
// the upstream client over TLS, and the fake IoT Hub capturing every message, all on this
// machine. It reports msg/s (the target is 30,000, peers-and-targets.md)
// for several windows, window 1 being the one-round-trip-per-message baseline; with live
// traffic (1,000 msg/s appended meanwhile, which must keep flowing); and through a proxy
// adding 1 ms each way (a 2 ms round trip, a link to a nearby cloud region), where the
// window is what makes the difference.
//
//	go test -run '^$' -bench DrainUpstream -benchtime 3x ./runtime/hub/
func BenchmarkDrainUpstream(b *testing.B) {
	const backlog = 50_000
	for _, bc := range []struct {
		name   string
		window int
		live   int           // messages per second appended during the drain
		rtt    time.Duration // added round-trip time
		n      int           // backlog
	}{
		{"window=1", 1, 0, 0, 5_000},
		{"window=64", 64, 0, 0, backlog},
		{"window=256", 256, 0, 0, backlog},
		{"window=256/live=1000", 256, 1000, 0, backlog},
		{"rtt=2ms/window=1", 1, 0, 2 * time.Millisecond, 500},
		{"rtt=2ms/window=256", 256, 0, 2 * time.Millisecond, backlog},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := bc.n
			link := benchUplink(b, bc.rtt)
			var rate float64
			for range b.N {
				rate += drainOnce(b, link, n, bc.window, bc.live)
			}
			b.ReportMetric(rate/float64(b.N), "msg/s")
		})
	}
}

var benchSenders = []sas.Identity{
	{DeviceID: "edge1", ModuleID: "m1"}, {DeviceID: "edge1", ModuleID: "m2"},
	{DeviceID: "edge1", ModuleID: "m3"}, {DeviceID: "edge1", ModuleID: "m4"},
}

// benchUplink starts a fake IoT Hub and a connected upstream client for edge1's $edgeHub,
// through a proxy adding rtt/2 each way when rtt is not 0.
func benchUplink(b *testing.B, rtt time.Duration) *benchLink {
	b.Helper()
	s := fakehubtest.New(b)
	fakehubtest.MustDevice(b, s, "edge1", fakehubtest.Edge())
	for _, id := range benchSenders {
		fakehubtest.MustModule(b, s, id.DeviceID, id.ModuleID)
	}
	csText, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		b.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		b.Fatal(err)
	}
	addr := s.MQTTAddress()
	if rtt > 0 {
		addr = delayProxy(b, addr, rtt/2)
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c, err := upstream.New(upstream.Options{ConnectionString: cs, CAFile: s.CAFile(), Port: p})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !c.Connected() {
		if time.Now().After(deadline) {
			b.Fatal("upstream link not up within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &benchLink{c: c, never: make(chan struct{})}
}

// drainOnce fills a new store with n messages, runs a hub on it until the pump has sent
// them all (and the live messages appended meanwhile), and returns the drain rate.
func drainOnce(b *testing.B, link *benchLink, n, window, live int) float64 {
	b.StopTimer()
	st, err := store.Open(store.Options{Path: filepath.Join(b.TempDir(), "store.db")})
	if err != nil {
		b.Fatal(err)
	}
	sctx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- st.Run(sctx) }()
	defer func() {
		stopStore()
		<-storeDone
		st.Close()
	}()
	fill(b, st, 0, n)

	srv, err := New(Options{IoTHubHostName: "localhost", EdgeDeviceID: "edge1", PlainAddr: "127.0.0.1:0", UpstreamWindow: window},
		Deps{Store: st, Identities: noIdentities{}, Upstream: link})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { done <- srv.Run(ctx) }()

	var appended atomic.Int64
	liveDone := make(chan struct{})
	if live > 0 {
		go func() {
			defer close(liveDone)
			tick := time.NewTicker(time.Second / time.Duration(live))
			defer tick.Stop()
			for i := n; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := st.Append(ctx, benchEnvelope(i), benchTargets(i)); err != nil {
					return
				}
				appended.Add(1)
			}
		}()
	} else {
		close(liveDone)
	}
	for srv.Stats().SentUpstream < int64(n)+appended.Load() {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-liveDone
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if st := srv.Stats(); st.DeadLettered != 0 || st.DeliveryFailures != 0 {
		b.Fatalf("drain: %d dead-lettered, %d failures", st.DeadLettered, st.DeliveryFailures)
	}
	sent := float64(n) + float64(appended.Load())
	b.Logf("window %d: %.0f messages (%d live) in %v: %.0f msg/s", window, sent, appended.Load(), elapsed.Round(time.Millisecond), sent/elapsed.Seconds())
	return sent / elapsed.Seconds()
}

// fill appends messages from..to-1 to their senders' queues, from 16 writers (the store
// group-commits them).
func fill(b *testing.B, st *store.Store, from, to int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := atomic.Int64{}
	next.Store(int64(from))
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := st.Append(context.Background(), benchEnvelope(i), benchTargets(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// benchTargets is where ingest stores message i: its sender's $upstream queue.
func benchTargets(i int) []store.Target {
	return []store.Target{{Queue: upstreamQueue(benchSenders[i%len(benchSenders)])}}
}

// benchEnvelope is message i as ingest stores it: 256 bytes of body, a property, the stamps.
func benchEnvelope(i int) []byte {
	sender := benchSenders[i%len(benchSenders)]
	body := make([]byte, 256)
	copy(body, fmt.Sprintf(`{"seq":%d}`, i))
	e := envelope{Sender: sender, Enqueued: time.Now().UTC(), Message: iothub.Message{
		Body:       body,
		Properties: map[string]string{"seq": strconv.Itoa(i)},
		System: map[string]string{iothub.SysConnDeviceID: sender.DeviceID, iothub.SysConnModuleID: sender.ModuleID,
			iothub.SysMessageID: newMessageID(), iothub.SysOutputName: "out"},
	}}
	return e.encode()
}

// benchLink adapts the upstream client as package uplink does (which this package's tests
// cannot import: it imports this package).
type benchLink struct {
	c     *upstream.Client
	never chan struct{}
}

func (l *benchLink) Send(ctx context.Context, id sas.Identity, m iothub.Message) error {
	return benchError(l.c.Send(ctx, id, m))
}

func (l *benchLink) SendAsync(ctx context.Context, id sas.Identity, m iothub.Message) Outcome {
	return benchOutcome{l.c.SendAsync(ctx, id, m)}
}

func (l *benchLink) LinkState() (bool, <-chan struct{}) { return l.c.Connected(), l.never }

type benchOutcome struct{ s *upstream.Sending }

func (o benchOutcome) Done() <-chan struct{} { return o.s.Done() }
func (o benchOutcome) Err() error            { return benchError(o.s.Err()) }

func benchError(err error) error {
	switch {
	case errors.Is(err, upstream.ErrRejected):
		return fmt.Errorf("%w: %w", ErrRejected, err)
	case errors.Is(err, upstream.ErrOffline):
		return fmt.Errorf("%w: %w", ErrOffline, err)
	}
	return err
}

// delayProxy forwards TCP connections to target, delivering every chunk of bytes delay
// after it was read, in order, in both directions; it returns its own address.
func delayProxy(b *testing.B, target string, delay time.Duration) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			b.Cleanup(func() { in.Close(); out.Close() })
			go delayCopy(out, in, delay)
			go delayCopy(in, out, delay)
		}
	}()
	return ln.Addr().String()
}

func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	q := make(chan chunk, 4096)
	go func() {
		defer dst.Close()
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}()
	defer close(q)
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{time.Now().Add(delay), buf[:n]}
		}
		if err != nil {
			return
		}
	}
}

// noIdentities refuses every client: the benchmark has none.
type noIdentities struct{}

func (noIdentities) Keys(context.Context, sas.Identity) (sas.Keys, error) {
	return sas.Keys{}, errors.New("no clients in this benchmark")
}
