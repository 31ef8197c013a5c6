package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// TestRun_ServesMetrics runs the command with --metrics-addr, publishes a message and
// scrapes /metrics over HTTP before and after: the received counter moves, the hub's
// metrics carry Azure's iothub and edge_device labels, and the Go and process metrics
// are there. The port is closed when the command returns.
func TestRun_ServesMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	writeFile(t, cfg, `{
	  "edgeHub": {"schemaVersion": "1.1", "routes": {"aToB": "FROM /messages/modules/a/outputs/o INTO BrokeredEndpoint(\"/modules/b/inputs/i\")"},
	              "storeAndForwardConfiguration": {"timeToLiveSecs": 60}},
	  "identities": [{"deviceId": "edge1", "moduleId": "a", "keys": {"primary": "`+keyA+`"}}]
	}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, logw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--iothub-hostname", "h.azure-devices.net", "--edge-device-id", "edge1",
			"--data-dir", filepath.Join(dir, "data"), "--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0",
			"--metrics-addr", "127.0.0.1:0", "--store-max-bytes", "1000000",
			"--config", cfg, "--log-format", "json"}, func(string) string { return "" }, logw)
		logw.Close()
	}()
	plain, metrics := readyAddresses(t, logs)
	go io.Copy(io.Discard, logs)
	url := "http://" + metrics + "/metrics"

	const received = `
# HELP outpost_edgehub_messages_received_total Telemetry messages received from clients, by sender kind (device or module).
# TYPE outpost_edgehub_messages_received_total counter
outpost_edgehub_messages_received_total{edge_device="edge1",iothub="h.azure-devices.net",source="device"} 0
outpost_edgehub_messages_received_total{edge_device="edge1",iothub="h.azure-devices.net",source="module"} %s
# HELP outpost_edgehub_store_max_bytes The store's byte cap (absent when there is none).
# TYPE outpost_edgehub_store_max_bytes gauge
outpost_edgehub_store_max_bytes{edge_device="edge1",iothub="h.azure-devices.net"} 1e+06
`
	names := []string{"outpost_edgehub_messages_received_total", "outpost_edgehub_store_max_bytes"}
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(strings.Replace(received, "%s", "0", 1)), names...); err != nil {
		t.Fatalf("before publishing: %v", err)
	}

	a := connect(t, plain, "a", keyA)
	topic := iothub.TelemetryTopic("edge1", "a", iothub.Bag{{Key: "$.on", Value: "o"}})
	if tok := a.Publish(topic, 1, false, "hello"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	a.Disconnect(0)
	// The counter moved before the PUBACK was sent.
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(strings.Replace(received, "%s", "1", 1)), names...); err != nil {
		t.Fatalf("after publishing: %v", err)
	}

	body := scrape(t, url)
	for _, want := range []string{
		`outpost_edgehub_queue_length{edge_device="edge1",endpoint="/modules/b/inputs/i",iothub="h.azure-devices.net",priority="2000000000"} 1`,
		"go_goroutines ", "process_start_time_seconds ", "promhttp_metric_handler_requests_total{code=\"200\"} ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if c, err := net.Dial("tcp", metrics); err == nil {
		c.Close()
		t.Fatal("the metrics port is still open after run returned")
	}
}

// TestRun_MetricsAddressInUse: a metrics address that cannot be bound stops the command
// at start, as a bad MQTT address does.
func TestRun_MetricsAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var logs strings.Builder
	code := run(context.Background(), []string{"--iothub-hostname", "h", "--edge-device-id", "edge1",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--tls-addr", "127.0.0.1:0",
		"--metrics-addr", l.Addr().String()}, func(string) string { return "" }, &logs)
	if code != exitError || !strings.Contains(logs.String(), "--metrics-addr") {
		t.Fatalf("exit code %d, logs:\n%s\nwant %d and an error naming --metrics-addr", code, logs.String(), exitError)
	}
}

// readyAddresses reads JSON log lines until "edgehub ready" and returns its plain and
// metrics addresses.
func readyAddresses(t *testing.T, r io.Reader) (plain, metrics string) {
	t.Helper()
	type addrs struct{ plain, metrics string }
	found := make(chan addrs, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var line struct {
				Msg     string `json:"msg"`
				Plain   string `json:"plain_address"`
				Metrics string `json:"metrics_address"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edgehub ready" {
				found <- addrs{line.Plain, line.Metrics}
				return
			}
		}
		close(found)
	}()
	select {
	case a, ok := <-found:
		if !ok {
			t.Fatal("edgehub exited before it was ready")
		}
		if a.metrics == "" {
			t.Fatal("edgehub ready without a metrics address")
		}
		return a.plain, a.metrics
	case <-time.After(10 * time.Second):
		t.Fatal("edgehub not ready within 10s")
		return "", ""
	}
}

// scrape returns the body of a GET of url.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}
