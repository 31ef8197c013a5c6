// Command profhub is the edge hub wired as cmd/edgehub wires it (runtime/hub over
// runtime/store and an identity cache), plain MQTT listener only, with a CPU profile and
// optionally a block profile written when it stops. The benchmark harness (scripts/bench)
// runs it in place of bin/edgehub to profile the hub under the durable throughput load,
// because edgehub itself exposes no profiling. It takes edgehub's flags that the harness
// passes (--tls-addr is accepted and ignored) and prints the same "edgehub ready" JSON
// log line.
//
// A few store options can be changed, for experiments that locate a cost (what the hub
// would do with a longer sweep interval, without fsync, ...): --store-batch-delay,
// --store-sweep-interval, --store-nosync. The harness passes them with -hub-args.
//
// Usage:
//
//	profhub --iothub-hostname NAME --edge-device-id ID --data-dir DIR --plain-addr HOST:PORT
//	        --config FILE [--cpuprofile FILE] [--blockprofile FILE]
//	        [--store-batch-delay D] [--store-sweep-interval D] [--store-nosync]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/store"
)

type config struct {
	iotHub, device, dataDir, plainAddr, configFile string
	cpuProfile, blockProfile, allocProfile         string
	batchDelay, sweepInterval                      time.Duration
	noSync                                         bool
}

func main() {
	var c config
	fs := flag.NewFlagSet("profhub", flag.ExitOnError)
	fs.StringVar(&c.iotHub, "iothub-hostname", "", "IoT Hub host name (required)")
	fs.StringVar(&c.device, "edge-device-id", "", "edge device id (required)")
	fs.StringVar(&c.dataDir, "data-dir", "", "directory for the store (required)")
	fs.StringVar(&c.plainAddr, "plain-addr", "127.0.0.1:0", "plain MQTT listen address")
	fs.StringVar(&c.configFile, "config", "", "edgehub --config file: routes and identities (required)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&c.blockProfile, "blockprofile", "", "write a block profile (blocking events of 10 µs and more) to this file")
	fs.StringVar(&c.allocProfile, "allocprofile", "", "write a heap profile (allocations over the whole run, and what is in use at the end) to this file")
	fs.DurationVar(&c.batchDelay, "store-batch-delay", 0, "store.Options.BatchDelay (0: the store's default)")
	fs.DurationVar(&c.sweepInterval, "store-sweep-interval", 0, "store.Options.SweepInterval (0: the store's default)")
	fs.BoolVar(&c.noSync, "store-nosync", false, "store.Options.NoSync: no fsync (experiments only)")
	_ = fs.String("tls-addr", "", "ignored: profhub serves plain MQTT only")
	_ = fs.String("metrics-addr", "", "ignored: profhub serves no metrics")
	_ = fs.String("log-format", "json", "ignored: profhub logs JSON")
	_ = fs.String("log-level", "info", "ignored: profhub logs at info")
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if c.iotHub == "" || c.device == "" || c.dataDir == "" || c.configFile == "" {
		log.Error("profhub: --iothub-hostname, --edge-device-id, --data-dir and --config are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c, log)
	stop()
	if err != nil {
		log.Error("profhub stopped with an error", "err", err)
		os.Exit(1)
	}
}

// initial is edgehub's --config file.
type initial struct {
	EdgeHub    json.RawMessage     `json:"edgeHub"`
	Identities []identities.Record `json:"identities"`
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	raw, err := os.ReadFile(c.configFile)
	if err != nil {
		return err
	}
	var ic initial
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ic); err != nil {
		return fmt.Errorf("%s: %w", c.configFile, err)
	}
	hubCfg, err := deployment.ParseHub(ic.EdgeHub)
	if err != nil {
		return fmt.Errorf("%s: edgeHub: %w", c.configFile, err)
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return err
	}
	ids, err := identities.Open(identities.Options{}) // in memory: the config file is the source
	if err != nil {
		return err
	}
	for _, r := range ic.Identities {
		if err := ids.Put(ctx, r); err != nil {
			return fmt.Errorf("identities: %w", err)
		}
	}
	st, err := store.Open(store.Options{
		Path: filepath.Join(c.dataDir, "store.db"), Logger: log,
		BatchDelay: c.batchDelay, SweepInterval: c.sweepInterval, NoSync: c.noSync,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := hub.New(hub.Options{
		IoTHubHostName: c.iotHub, EdgeDeviceID: c.device, PlainAddr: c.plainAddr,
		Logger: log.With("component", "hub"),
	}, hub.Deps{Store: st, Identities: ids})
	if err != nil {
		return err
	}
	if err := srv.ApplyConfig(hubCfg); err != nil {
		_ = srv.Close()
		return err
	}

	storeCtx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- st.Run(storeCtx) }()
	defer func() {
		stopStore()
		<-storeDone
	}()

	stopProfiles, err := startProfiles(c)
	if err != nil {
		_ = srv.Close()
		return err
	}
	log.Info("edgehub ready", "plain_address", srv.PlainAddr(), "cpu_profile", c.cpuProfile, "block_profile", c.blockProfile)
	runErr := srv.Run(ctx)
	ss := st.Stats()
	log.Info("profhub stopped", "hub", fmt.Sprintf("%+v", srv.Stats()),
		"store_commits", ss.Commits, "store_appends", ss.Appends, "store_acked", ss.Acked, "store_file_bytes", ss.FileBytes)
	return errors.Join(runErr, stopProfiles())
}

// blockRate is the block profile's threshold: blocking events of at least 10 µs are
// sampled (all shorter ones would cost more than they tell).
const blockRate = 10 * time.Microsecond

// startProfiles starts the CPU profile (and the block profile) and returns the function
// that stops them and writes the files.
func startProfiles(c config) (func() error, error) {
	if c.blockProfile != "" {
		runtime.SetBlockProfileRate(int(blockRate))
	}
	if c.cpuProfile == "" {
		return func() error { return writeEndProfiles(c) }, nil
	}
	f, err := os.Create(c.cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return errors.Join(f.Close(), writeEndProfiles(c))
	}, nil
}

// writeEndProfiles writes the profiles taken at the end of the run: block and allocations.
func writeEndProfiles(c config) error {
	var errs []error
	if c.blockProfile != "" {
		errs = append(errs, writeProfile("block", c.blockProfile))
	}
	if c.allocProfile != "" {
		errs = append(errs, writeProfile("allocs", c.allocProfile))
	}
	return errors.Join(errs...)
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
