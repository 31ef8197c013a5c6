package main

import (
	"log/slog"
	"path/filepath"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// agentOptions are the agent's options that come from the settings and the
// device's connection string; serve adds the clock-, host- and
// binary-dependent ones (BootTime, RegistryLogins, Info).
//
// The agent tells edgeHub what it knows itself: the hub's MQTT port
// (--mqtt-port, as OUTPOST_MQTT_PORT when not 8883), its CA (--ca-file, as
// EdgeModuleCACertificateFile) and the certificates of --certs-dir (as
// EdgeModuleHubServerCertificateFile and
// EdgeModuleHubServerCAChainCertificateFile), so that a deployment need not
// repeat them. The certificates directory is made absolute: the modules do
// not run in the agent's working directory.
func agentOptions(c config, device sas.ConnectionString) agent.Options {
	return agent.Options{
		DeviceID:        device.DeviceID,
		IoTHubHostName:  device.HostName,
		GatewayHostName: c.gatewayHostName,
		ParentHostName:  c.parentHostName,
		ModuleCAFile:    c.moduleCAFile,
		UpstreamCAFile:  c.caFile,
		UpstreamPort:    c.mqttPort,
		EdgeHubCertsDir: absPath(c.certsDir),
		RuntimeLogLevel: runtimeLogLevel(c.logLevel),
		Period:          c.period,
		Backoff:         c.backoff,
	}
}

// absPath is p made absolute, "" for "", p itself when the working
// directory is unknown.
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// dockerOptions are the Docker runtime's options from the settings: the
// modules' network (--network, which edgectl setup writes to edge.json and
// edgectl start creates and uninstall removes) and the digest policy
// (--require-digest).
func dockerOptions(c config, logger *slog.Logger) docker.Options {
	return docker.Options{
		Network:         c.network,
		GatewayHostName: c.gatewayHostName,
		RequireDigest:   c.requireDigest,
		Logger:          logger,
	}
}
