package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// clientSpec is how one load client connects to a broker, and the topic it publishes to
// (a publisher) or the filter it subscribes to (the subscriber).
type clientSpec struct {
	ClientID, Username, Password string
	Topic                        string
}

// broker is a running broker process under test, as the load clients see it.
type broker struct {
	addr string // host:port of its plain MQTT listener
	proc *proc
	dir  string // its scratch directory, removed by stop

	publisher  func(i int) clientSpec // the i-th publisher (0-based)
	subscriber clientSpec             // the one receiving client
}

// stop ends the broker process and removes its scratch directory.
func (b *broker) stop() error {
	err := b.proc.stop(10 * time.Second)
	if rmErr := os.RemoveAll(b.dir); err == nil {
		err = rmErr
	}
	return err
}

// brokerKind is a broker the harness can start: the edge hub or the reference.
type brokerKind struct {
	ID    string // short name used in tables: "hub", "mosquitto"
	Label string // name in the report
	// start starts a fresh instance under workdir, with identities (where it has any) for
	// at least publishers publishers.
	start func(ctx context.Context, workdir string, publishers int) (*broker, error)
}

// Identities and names the hub runs with. Every publisher is a module of the edge device
// with output "o1", routed to input "input1" of the sink module.
const (
	benchIoTHub    = "bench.azure-devices.net"
	benchDevice    = "edge1"
	benchSink      = "sink"
	benchOutput    = "o1"
	benchInput     = "input1"
	mosquittoTopic = "bench/in"
)

func publisherModule(i int) string { return fmt.Sprintf("pub%03d", i) }

// hubKind starts bin (cmd/edgehub, or scripts/bench/profhub which takes the same flags)
// with the extra arguments extra(dir), dir being the instance's scratch directory.
func hubKind(label, bin string, extra func(dir string) []string) brokerKind {
	return brokerKind{ID: "hub", Label: label, start: func(ctx context.Context, workdir string, publishers int) (*broker, error) {
		return startHub(ctx, label, bin, workdir, publishers, extra)
	}}
}

func startHub(ctx context.Context, label, bin, workdir string, publishers int, extra func(dir string) []string) (*broker, error) {
	dir, err := os.MkdirTemp(workdir, "hub-")
	if err != nil {
		return nil, err
	}
	key, err := sas.NewKey()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, hubConfig(publishers, key), 0o600); err != nil {
		return nil, err
	}
	args := []string{
		"--iothub-hostname", benchIoTHub, "--edge-device-id", benchDevice,
		"--data-dir", filepath.Join(dir, "data"), "--config", cfgPath,
		"--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0",
		// No metrics listener: its fixed default port may be taken by a running demo.
		"--metrics-addr", "",
		"--log-format", "json", "--log-level", "info",
	}
	if extra != nil {
		args = append(args, extra(dir)...)
	}
	var addr string
	p, err := startProc(label, bin, args, func(line string) bool {
		var l struct {
			Msg   string `json:"msg"`
			Plain string `json:"plain_address"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "edgehub ready" {
			return false
		}
		addr = l.Plain
		return true
	}, 30*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b := &broker{addr: addr, proc: p, dir: dir}
	expiry := time.Now().Add(24 * time.Hour)
	spec := func(module, topic string) clientSpec {
		tok, _ := sas.Sign(benchIoTHub+"/devices/"+benchDevice+"/modules/"+module, key, "", expiry) // key is valid: sas.NewKey made it
		return clientSpec{
			ClientID: iothub.ClientID(benchDevice, module),
			Username: iothub.FormatUsername(benchIoTHub, benchDevice, module, nil),
			Password: tok, Topic: topic,
		}
	}
	b.publisher = func(i int) clientSpec {
		m := publisherModule(i)
		return spec(m, iothub.TelemetryTopic(benchDevice, m, iothub.Bag{{Key: "$.on", Value: benchOutput}}))
	}
	b.subscriber = spec(benchSink, iothub.InputFilter(benchDevice, benchSink))
	return b, nil
}

// hubConfig is the edgehub --config file: publishers identities pub000... and the sink,
// all with key, and one route per publisher from its output o1 to the sink's input1.
func hubConfig(publishers int, key string) []byte {
	type record struct {
		DeviceID string            `json:"deviceId"`
		ModuleID string            `json:"moduleId"`
		Keys     map[string]string `json:"keys"`
	}
	ids := []record{{benchDevice, benchSink, map[string]string{"primary": key}}}
	routes := map[string]string{}
	for i := range publishers {
		m := publisherModule(i)
		ids = append(ids, record{benchDevice, m, map[string]string{"primary": key}})
		routes[m] = fmt.Sprintf(`FROM /messages/modules/%s/outputs/%s INTO BrokeredEndpoint("/modules/%s/inputs/%s")`,
			m, benchOutput, benchSink, benchInput)
	}
	cfg := map[string]any{
		"edgeHub": map[string]any{
			"schemaVersion":                "1.1",
			"routes":                       routes,
			"storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200},
		},
		"identities": ids,
	}
	b, _ := json.MarshalIndent(cfg, "", "  ") // maps, strings and ints always marshal
	return b
}

// mosquittoKind starts Mosquitto as the reference broker: no persistence, anonymous
// clients, one listener on a free loopback port. Two settings differ from Mosquitto's
// defaults, both to measure the same thing as for the hub: max_queued_messages 0 (no
// limit; with the default 1000, QoS 1 messages beyond it are dropped for a slow
// subscriber, where the hub stores them) and set_tcp_nodelay true (Go sockets, the
// hub's included, disable Nagle's algorithm).
func mosquittoKind(bin string) brokerKind {
	return brokerKind{ID: "mosquitto", Label: "Mosquitto", start: func(ctx context.Context, workdir string, _ int) (*broker, error) {
		var err error
		for range 3 { // the free port may be taken between freePort and bind
			var b *broker
			if b, err = startMosquitto(ctx, bin, workdir); err == nil {
				return b, nil
			}
		}
		return nil, err
	}}
}

func startMosquitto(ctx context.Context, bin, workdir string) (*broker, error) {
	dir, err := os.MkdirTemp(workdir, "mosquitto-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := strings.Join([]string{
		"persistence false",
		"allow_anonymous true",
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"max_queued_messages 0",
		"set_tcp_nodelay true",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil { // read by mosquitto before it drops root
		return nil, err
	}
	p, err := startProc("mosquitto", bin, []string{"-c", confPath}, nil, 0)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.done: // exited (port taken, bad config): stop waiting at once
			cancel()
		case <-dctx.Done():
		}
	}()
	if err := waitDial(dctx, addr); err != nil {
		_ = p.stop(5 * time.Second)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mosquitto: %w; its last lines:\n%s", err, p.lastLines())
	}
	b := &broker{addr: addr, proc: p, dir: dir}
	b.publisher = func(i int) clientSpec {
		return clientSpec{ClientID: publisherModule(i), Topic: mosquittoTopic}
	}
	b.subscriber = clientSpec{ClientID: benchSink, Topic: mosquittoTopic}
	return b, nil
}

// mosquittoVersion returns the first line of `mosquitto -h` ("mosquitto version 2.0.11").
func mosquittoVersion(bin string) string {
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
