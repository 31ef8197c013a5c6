package agent

import (
	"fmt"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Variables the agent injects (edge-runtime-behaviour D.1). The connection
// string variables carry the module's key: they are secrets, never logged
// nor reported (Report shows the manifest's env only).
const (
	EnvEdgeHubConnectionString = "EdgeHubConnectionString" // user modules: where and how to connect to edgeHub
	EnvIotHubConnectionString  = "IotHubConnectionString"  // edgeHub: its own $edgeHub identity, upstream
	EnvModuleCACertificateFile = "EdgeModuleCACertificateFile"
	EnvEdgeDeviceHostName      = "EdgeDeviceHostName" // edgeHub only
	EnvModuleID                = "IOTEDGE_MODULEID"
	EnvDeviceID                = "IOTEDGE_DEVICEID"
	EnvIoTHubHostName          = "IOTEDGE_IOTHUBHOSTNAME"
	EnvGatewayHostName         = "IOTEDGE_GATEWAYHOSTNAME"
	EnvParentHostName          = "IOTEDGE_PARENTHOSTNAME"
	EnvAuthScheme              = "IOTEDGE_AUTHSCHEME"
	EnvModuleGenerationID      = "IOTEDGE_MODULEGENERATIONID"
	EnvRuntimeLogLevel         = "RuntimeLogLevel"
	EnvUpstreamProtocol        = "UpstreamProtocol"
)

// inject computes Desired.Inject for every module of cfg, and returns the
// module keys it used (to be redacted wherever they might be echoed).
func (a *Agent) inject(cfg *deployment.AgentConfig) (map[string]map[string]string, []string, error) {
	if cfg == nil {
		return nil, nil, nil
	}
	out := make(map[string]map[string]string)
	var keys []string
	for _, m := range (Desired{Config: cfg}).Modules() {
		id := IdentityOf(m.Name)
		key, err := a.deps.Identities.ModuleKey(id)
		if err != nil {
			return nil, nil, fmt.Errorf("module %q: key of identity %q: %w", m.Name, id, err)
		}
		keys = append(keys, key)
		cs := sas.ConnectionString{HostName: a.opts.IoTHubHostName, DeviceID: a.opts.DeviceID, ModuleID: id, SharedAccessKey: key}
		env := map[string]string{
			EnvModuleID:        id,
			EnvDeviceID:        a.opts.DeviceID,
			EnvIoTHubHostName:  a.opts.IoTHubHostName,
			EnvAuthScheme:      DefaultAuthScheme,
			EnvRuntimeLogLevel: a.opts.RuntimeLogLevel,
		}
		if gen := a.identities[id].GenerationID; gen != "" {
			env[EnvModuleGenerationID] = gen
		}
		if a.opts.UpstreamProtocol != "" {
			env[EnvUpstreamProtocol] = a.opts.UpstreamProtocol
		}
		if m.Name == deployment.EdgeHubName {
			// edgeHub connects upstream: to the parent on a nested device,
			// else straight to the hub.
			cs.GatewayHostName = a.opts.ParentHostName
			env[EnvIotHubConnectionString] = cs.String()
			env[EnvEdgeDeviceHostName] = a.opts.GatewayHostName
			if a.opts.ParentHostName != "" {
				env[EnvGatewayHostName] = a.opts.ParentHostName
			}
			if a.opts.UpstreamCAFile != "" {
				env[EnvModuleCACertificateFile] = a.opts.UpstreamCAFile
			}
		} else {
			cs.GatewayHostName = a.opts.GatewayHostName
			env[EnvEdgeHubConnectionString] = cs.String()
			env[EnvGatewayHostName] = a.opts.GatewayHostName
			if a.opts.ParentHostName != "" {
				env[EnvParentHostName] = a.opts.ParentHostName
			}
			if a.opts.ModuleCAFile != "" {
				env[EnvModuleCACertificateFile] = a.opts.ModuleCAFile
			}
		}
		out[m.Name] = env
	}
	return out, keys, nil
}
