package moduleclient_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// A filter module: it reads messages on its "input" input, forwards the ones marked as
// alerts to its "alerts" output, takes its threshold from the module twin and answers a
// "ping" direct method. The edge runtime gives it EdgeHubConnectionString and
// EdgeModuleCACertificateFile.
func Example_module() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c, err := moduleclient.NewFromEnvironment(moduleclient.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Register handlers before Connect so that nothing arrives unhandled.
	c.OnInput(func(input string, m iothub.Message) {
		if m.Properties["alert"] != "true" {
			return // acknowledged and dropped
		}
		// Callbacks run on their own goroutine and may block: the message is acknowledged
		// only after this returns, so a failed forward is redelivered.
		if err := c.SendOutput(ctx, "alerts", m); err != nil {
			log.Printf("forward from %s: %v", input, err)
		}
	})
	c.OnDesired(func(patch map[string]any, version int64) {
		// The first call carries the whole desired document; later calls carry changes.
		log.Printf("desired properties v%d: %v", version, patch)
		if _, err := c.UpdateReported(ctx, map[string]any{"appliedVersion": version}); err != nil {
			log.Printf("report: %v", err)
		}
	})
	c.HandleMethod("ping", func(ctx context.Context, payload []byte) (int, []byte) {
		return 200, []byte(`{"pong":true}`)
	})
	c.OnConnectionChange(func(connected bool, err error) {
		log.Printf("connected=%v err=%v", connected, err)
	})

	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
}

// Sending telemetry from a device with properties and system properties.
func ExampleClient_SendEvent() {
	c, err := moduleclient.NewFromConnectionString(
		"HostName=myhub.azure-devices.net;DeviceId=thermostat;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		moduleclient.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	err = c.SendEvent(ctx, iothub.Message{
		Body:       []byte(`{"temperature":21.5}`),
		Properties: map[string]string{"alert": "false"},
		System: map[string]string{
			iothub.SysContentType:     "application/json",
			iothub.SysContentEncoding: "utf-8",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// NewFromEnvironment names what is missing when the module was started without a
// connection string.
func ExampleNewFromEnvironment() {
	os.Unsetenv(moduleclient.EnvEdgeHubConnectionString)
	os.Unsetenv(moduleclient.EnvIotHubConnectionString)
	os.Unsetenv(moduleclient.EnvWorkloadURI)
	_, err := moduleclient.NewFromEnvironment(moduleclient.Options{})
	fmt.Println(strings.Contains(err.Error(), "EdgeHubConnectionString"))
	// Output: true
}
