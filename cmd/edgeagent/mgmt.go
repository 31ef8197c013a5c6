package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// effectiveConfig is the configuration edgectl config shows: the flags
// after the environment and defaults, with nothing secret in it.
func effectiveConfig(c config, device sas.ConnectionString, serviceURL, version string, now time.Time) agent.EffectiveConfig {
	abs := absPath // options.go
	return agent.EffectiveConfig{
		ConnectionStringFile: abs(c.connectionStringFile),
		DeviceID:             device.DeviceID,
		IoTHubHostName:       device.HostName,
		DataDir:              abs(c.dataDir),
		Runtime:              c.runtime,
		ImageDir:             abs(c.imageDir),
		GatewayHostName:      c.gatewayHostName,
		ParentHostName:       c.parentHostName,
		CAFile:               abs(c.caFile),
		ModuleCAFile:         abs(c.moduleCAFile),
		ServiceURL:           serviceURL,
		MQTTPort:             c.mqttPort,
		ReconcilePeriod:      c.period.String(),
		LogFormat:            c.logFormat,
		LogLevel:             c.logLevel,
		Version:              version,
		WrittenAt:            now.UTC(),
	}
}

// writeConfigFile saves ec as agent.ConfigFile in the data directory
// (atomically, mode 0600), for edgectl while the agent is not running.
func writeConfigFile(dataDir string, ec agent.EffectiveConfig) error {
	b, err := json.MarshalIndent(ec, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, agent.ConfigFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// runManagement serves the management API on the data directory's socket
// until ctx ends. A failure is logged, not fatal: the agent's work does not
// depend on it.
func runManagement(ctx context.Context, ms *agent.ManagementServer, logger *slog.Logger) {
	if err := ms.Run(ctx); err != nil {
		logger.Error("management API unavailable; edgectl will not reach the agent", "err", err)
	}
}
