// Command fakehub runs the fake Azure IoT Hub of package fakehub as a process: the MQTT
// device endpoint (TLS, SAS authentication), the service REST API and the fake-only test
// API, with its registry, twins and certificates kept in a data directory.
//
// Usage:
//
//	fakehub [--data-dir DIR] [--hostname NAME] [--mqtt-addr HOST:PORT] [--http-addr HOST:PORT]
//	        [--plain-mqtt-addr HOST:PORT] [--plain-http-addr HOST:PORT]
//	        [--log-format text|json] [--log-level debug|info|warn|error]
//	        [--device ID]... [--edge-device ID]... [--module DEVICE/MODULE]... [--log-events]
//	        [--config-file FILE] [--print-config]
//
// --device and --edge-device make sure a device identity (an IoT Edge device for the
// second) exists when the hub starts, and write its connection string to
// DATA_DIR/devices/ID.connection-string, so a demo or a test can connect at once.
//
// Every flag can also be set with an environment variable, FAKEHUB_ followed by the flag
// name in upper case with '-' as '_' (FAKEHUB_DATA_DIR, FAKEHUB_HTTP_ADDR, ...), or in the
// TOML file --config-file (or FAKEHUB_CONFIG_FILE) names, whose keys are the flag names
// (docs/config/fakehub.toml lists them all with their defaults). The command line wins over
// the environment, which wins over the file; a repeatable flag takes its values from one
// source only. --print-config prints the effective configuration, with where each value
// came from, and exits. docs/configuration.md has the details.
//
// It logs to stderr (--log-format text or json) and stops cleanly on SIGINT or SIGTERM.
// docs/fakehub.md describes the API and the files in the data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/fakehub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the hub failed to start or stopped with an error
	exitUsage = 2 // bad flags, environment variables or configuration file
)

// serviceConnectionStringFile is the file, in the data directory, where the hub writes
// its iothubowner connection string.
const serviceConnectionStringFile = "service-connection-string"

// run runs the hub until ctx is done and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	c, settings, err := loadConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "fakehub: %v\n", err)
		return exitUsage
	}
	if c.printConfig {
		if err := settings.WriteTOML(os.Stdout, "fakehub configuration"); err != nil {
			fmt.Fprintf(stderr, "fakehub: %v\n", err)
			return exitError
		}
		return exitOK
	}
	logger, err := cli.NewLogger(c.logFormat, c.logLevel, stderr)
	if err != nil { // validated by parseConfig
		fmt.Fprintf(stderr, "fakehub: %v\n", err)
		return exitUsage
	}

	s := &fakehub.Server{
		Hostname:      c.hostname,
		DataDir:       c.dataDir,
		MQTTAddr:      c.mqttAddr,
		PlainMQTTAddr: c.plainMQTTAddr,
		HTTPAddr:      c.httpAddr,
		PlainHTTPAddr: c.plainHTTPAddr,
		Logger:        logger,
	}
	if err := s.Start(ctx); err != nil {
		logger.Error("fakehub failed to start", "err", err)
		return exitError
	}
	if err := ensureDevices(s, c); err != nil {
		logger.Error("fakehub could not register the devices asked for", "err", err)
		_ = s.Close()
		return exitError
	}
	dataDir, _ := filepath.Abs(c.dataDir) // for the log only; a relative path is still right
	if dataDir == "" {
		dataDir = c.dataDir
	}
	logger.Info("fakehub ready",
		"hostname", c.hostname,
		"mqtt_address", s.MQTTAddress(),
		"plain_mqtt_address", s.PlainMQTTAddress(),
		"http_address", s.HTTPAddress(),
		"plain_http_address", s.PlainHTTPAddress(),
		"data_dir", dataDir,
		"ca_file", s.CAFile(),
		"service_connection_string_file", filepath.Join(dataDir, serviceConnectionStringFile),
	)

	for _, id := range append(append([]string{}, c.devices...), c.edgeDevices...) {
		logger.Info("device ready", "device_id", id, "connection_string_file", filepath.Join(dataDir, devicesDir, id+".connection-string"))
	}
	for _, id := range c.modules {
		logger.Info("module ready", "module", id, "connection_string_file", filepath.Join(dataDir, devicesDir, id+".connection-string"))
	}
	if c.logEvents {
		go logEvents(ctx, s, logger)
	}

	<-ctx.Done()
	logger.Info("fakehub stopping")
	if err := s.Close(); err != nil {
		logger.Error("fakehub did not stop cleanly", "err", err)
		return exitError
	}
	logger.Info("fakehub stopped")
	return exitOK
}

// devicesDir is the folder, in the data directory, that holds the connection strings of
// the devices named by --device and --edge-device.
const devicesDir = "devices"

// ensureDevices creates the devices the flags name when they do not exist yet and writes
// each one's connection string (mode 0600: it holds the key) into the data directory.
func ensureDevices(s *fakehub.Server, c config) error {
	want := map[string]bool{}
	for _, id := range c.devices {
		want[id] = false
	}
	for _, id := range c.edgeDevices {
		want[id] = true
	}
	if len(want) == 0 && len(c.modules) == 0 {
		return nil
	}
	dir := filepath.Join(c.dataDir, devicesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devices folder: %w", err)
	}
	for id, edge := range want {
		d, err := s.GetDevice(id)
		switch {
		case errors.Is(err, fakehub.ErrNotFound):
			d.DeviceID = id
			d.Capabilities.IoTEdge = edge
			if _, err := s.PutDevice(d, ""); err != nil {
				return fmt.Errorf("device %q: %w", id, err)
			}
		case err != nil:
			return fmt.Errorf("device %q: %w", id, err)
		case d.Capabilities.IoTEdge != edge:
			return fmt.Errorf("device %q exists with iotEdge=%v; the flags ask for iotEdge=%v", id, d.Capabilities.IoTEdge, edge)
		}
		cs, err := s.DeviceConnectionString(id)
		if err != nil {
			return fmt.Errorf("device %q: %w", id, err)
		}
		if err := os.WriteFile(filepath.Join(dir, id+".connection-string"), []byte(cs+"\n"), 0o600); err != nil {
			return fmt.Errorf("device %q: %w", id, err)
		}
	}
	for _, id := range c.modules {
		deviceID, moduleID, ok := strings.Cut(id, "/")
		if !ok || deviceID == "" || moduleID == "" {
			return fmt.Errorf("--module %q: want DEVICE/MODULE", id)
		}
		if _, err := s.GetModule(deviceID, moduleID); errors.Is(err, fakehub.ErrNotFound) {
			if _, err := s.PutModule(fakehub.Module{DeviceID: deviceID, ModuleID: moduleID}, ""); err != nil {
				return fmt.Errorf("module %q: %w", id, err)
			}
		} else if err != nil {
			return fmt.Errorf("module %q: %w", id, err)
		}
		cs, err := s.ModuleConnectionString(deviceID, moduleID)
		if err != nil {
			return fmt.Errorf("module %q: %w", id, err)
		}
		if err := os.MkdirAll(filepath.Join(dir, deviceID), 0o700); err != nil {
			return fmt.Errorf("module %q: %w", id, err)
		}
		if err := os.WriteFile(filepath.Join(dir, deviceID, moduleID+".connection-string"), []byte(cs+"\n"), 0o600); err != nil {
			return fmt.Errorf("module %q: %w", id, err)
		}
	}
	return nil
}

// logEvents logs every device-to-cloud message the hub captures until ctx is done, so a
// demo shows the traffic in the terminal.
func logEvents(ctx context.Context, s *fakehub.Server, logger *slog.Logger) {
	for e := range s.SubscribeEvents(ctx, 1024) {
		sender := e.DeviceID
		if e.ModuleID != "" {
			sender += "/" + e.ModuleID
		}
		body := string(e.Body)
		if len(body) > 512 {
			body = body[:512] + "..."
		}
		logger.Info("device-to-cloud message", "seq", e.Seq, "from", sender, "properties", e.Properties, "body", body)
	}
}
