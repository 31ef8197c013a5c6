package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// BenchmarkDrainInput measures how fast a module input's pump drains a backlog to the
// module over loopback: a store holding 20,000 messages of 1 KB for
// /modules/modB/inputs/in1, as ingest stores them (NoSync: the pump is measured, not the
// disk), the hub, and a paho subscriber that acknowledges each message after its handler,
// in order, as the SDKs and scripts/bench's subscriber do. It reports msg/s and the pump's
// writes per message delivered, for several windows, window=1 being stop-and-wait.
//
//	go test -run '^$' -bench DrainInput -benchtime 3x ./runtime/hub/
func BenchmarkDrainInput(b *testing.B) {
	const n = 20_000
	for _, window := range []int{1, 20, 32, 64, 128} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			var rate, writes float64
			for range b.N {
				r, w := drainInputOnce(b, n, window)
				rate += r
				writes += w
			}
			b.ReportMetric(rate/float64(b.N), "msg/s")
			b.ReportMetric(writes/float64(b.N), "writes/msg")
		})
	}
}

// drainInputOnce fills a new store with n messages for modB's input, runs a hub on it
// until modB received them all, and returns the rate and the writes per message.
func drainInputOnce(b *testing.B, n, window int) (rate, writesPerMsg float64) {
	b.StopTimer()
	dir := b.TempDir()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "store.db"), NoSync: true})
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
	fillInput(b, st, n)

	ids, err := identities.Open(identities.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := ids.Put(context.Background(), identities.Record{DeviceID: edgeID, ModuleID: "modB", Keys: sas.Keys{Primary: keyModB}}); err != nil {
		b.Fatal(err)
	}
	srv, err := hub.New(hub.Options{IoTHubHostName: hubHost, EdgeDeviceID: edgeID, PlainAddr: "127.0.0.1:0", InputWindow: window},
		hub.Deps{Store: st, Identities: ids})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	token, err := sas.Sign(hubHost+"/devices/"+edgeID+"/modules/modB", keyModB, "", time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + srv.PlainAddr()).
		SetClientID(iothub.ClientID(edgeID, "modB")).SetUsername(iothub.FormatUsername(hubHost, edgeID, "modB", nil)).
		SetPassword(token).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	var got atomic.Int64
	all := make(chan struct{})
	b.StartTimer()
	start := time.Now()
	tok := c.Subscribe(iothub.InputFilter(edgeID, "modB"), 1, func(paho.Client, paho.Message) {
		if got.Add(1) == int64(n) {
			close(all)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("received %d of %d messages within 2 minutes", got.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	return float64(n) / elapsed.Seconds(), float64(hub.InputWrites(srv)) / float64(n)
}

// fillInput appends n messages of 1 KB for modB's input from 8 writers (the store commits
// them in groups).
func fillInput(b *testing.B, st *store.Store, n int) {
	b.Helper()
	body := hub.StoredMessage(modA, strings.Repeat("x", 1024))
	targets := []store.Target{{Queue: "/modules/modB/inputs/in1"}}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := st.Append(context.Background(), body, targets); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
