package conformance

import (
	"maps"
	"strconv"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// EnvPort is the variable that tells Outpost's modules the edge hub's MQTT/TLS port when
// it is not 8883 (see cmd/internal/modulemain); the harness's hub listens on a random
// loopback port. Modules built on other SDKs ignore it and dial 8883, which the harness
// does not offer.
const EnvPort = "OUTPOST_MQTT_PORT"

// injected are the variables the harness sets, as the edge agent does (runtime/agent's
// inject.go), which a spec may not override.
var injected = map[string]bool{
	agent.EnvEdgeHubConnectionString: true,
	agent.EnvModuleCACertificateFile: true,
	agent.EnvModuleID:                true,
	agent.EnvDeviceID:                true,
	agent.EnvIoTHubHostName:          true,
	agent.EnvGatewayHostName:         true,
	agent.EnvAuthScheme:              true,
	agent.EnvModuleGenerationID:      true,
	EnvPort:                          true,
}

// moduleEnv is what the module is given: the agent's injected variables for a module
// (connection string through the gateway, the edge CA file, IOTEDGE_*), the hub's port,
// RuntimeLogLevel=info unless extra sets it, then extra.
func moduleEnv(cs sas.ConnectionString, generationID, caFile string, port int, extra map[string]string) map[string]string {
	env := map[string]string{agent.EnvRuntimeLogLevel: "info"}
	maps.Copy(env, extra)
	maps.Copy(env, map[string]string{
		agent.EnvEdgeHubConnectionString: cs.String(),
		agent.EnvModuleCACertificateFile: caFile,
		agent.EnvModuleID:                cs.ModuleID,
		agent.EnvDeviceID:                cs.DeviceID,
		agent.EnvIoTHubHostName:          cs.HostName,
		agent.EnvGatewayHostName:         cs.GatewayHostName,
		agent.EnvAuthScheme:              agent.DefaultAuthScheme,
		EnvPort:                          strconv.Itoa(port),
	})
	if generationID != "" {
		env[agent.EnvModuleGenerationID] = generationID
	}
	return env
}
