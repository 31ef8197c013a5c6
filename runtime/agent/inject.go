package agent

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
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
	// EnvMQTTPort is Outpost's own: the MQTT/TLS port of the hub a module's
	// connection string names, given to user modules when edgeHub does not
	// listen on 8883 (the process runtime, where modules share the host's
	// ports, is the usual case), and to edgeHub when its upstream does not
	// (Options.UpstreamPort). Outpost's module SDK and edge hub read it.
	EnvMQTTPort = "OUTPOST_MQTT_PORT"

	// EnvHubServerCertificateFile and EnvHubServerCAChainCertificateFile
	// are, for edgeHub only, its TLS server certificate and the CA that
	// signed it (Azure's agent before the workload API: edge-runtime-behaviour
	// D.1, "Legacy").
	EnvHubServerCertificateFile        = "EdgeModuleHubServerCertificateFile"
	EnvHubServerCAChainCertificateFile = "EdgeModuleHubServerCAChainCertificateFile"
)

// Where Outpost's edge hub (cmd/edgehub) takes its MQTT/TLS listen address
// from: the --tls-addr flag, else the EDGEHUB_TLS_ADDR variable.
const (
	hubTLSAddrFlag = "tls-addr"
	hubTLSAddrEnv  = "EDGEHUB_TLS_ADDR"
)

// HubPort returns the MQTT/TLS port edgeHub listens on according to its
// module settings: --tls-addr in createOptions.Cmd (the command line wins
// in the hub, as here), else EDGEHUB_TLS_ADDR in its final environment
// (Env: manifest env and createOptions.Env). It returns 0 when they do not
// set a fixed port: the hub's default, 8883, or an address such as ":0".
// A hub configured by other means (a configuration file) is not seen; its
// deployment should then set EDGEHUB_TLS_ADDR too.
func HubPort(edgeHub deployment.Module) int {
	addr, ok := flagValue(createOptionsCmd(edgeHub.CreateOptions), hubTLSAddrFlag)
	if !ok {
		for _, e := range Env(edgeHub, nil) {
			if v, found := strings.CutPrefix(e, hubTLSAddrEnv+"="); found {
				addr = v
			}
		}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return 0
	}
	return n
}

// flagValue returns the value of the last --name or -name flag in args
// (as "--name value" or "--name=value"), as Go's flag package reads it.
func flagValue(args []string, name string) (value string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		switch {
		case a == name && i+1 < len(args):
			value, ok = args[i+1], true
			i++
		case strings.HasPrefix(a, name+"="):
			value, ok = a[len(name)+1:], true
		}
	}
	return value, ok
}

// inject computes Desired.Inject for every module of cfg, and returns the
// module keys it used (to be redacted wherever they might be echoed).
func (a *Agent) inject(cfg *deployment.AgentConfig) (map[string]map[string]string, []string, error) {
	if cfg == nil {
		return nil, nil, nil
	}
	out := make(map[string]map[string]string)
	var keys []string
	hubPort := HubPort(cfg.SystemModules.EdgeHub)
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
			// Only a port other than the default, as for user modules: a
			// new variable would recreate edgeHub on the agent's upgrade.
			// The manifest's own value wins (Env).
			if p := a.opts.UpstreamPort; p != 0 && p != moduleclient.DefaultPort {
				env[EnvMQTTPort] = strconv.Itoa(p)
			}
			if dir := a.opts.EdgeHubCertsDir; dir != "" && !setsServerCert(m) {
				env[EnvHubServerCertificateFile] = filepath.Join(dir, certs.DefaultCertFile)
				env[EnvHubServerCAChainCertificateFile] = filepath.Join(dir, certs.DefaultCAFile)
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
			// Only a port other than the default: the environment is part of
			// every module's spec hash, and a new variable would recreate
			// every module of every device on the agent's upgrade.
			if hubPort != 0 && hubPort != moduleclient.DefaultPort {
				env[EnvMQTTPort] = strconv.Itoa(hubPort)
			}
		}
		out[m.Name] = env
	}
	return out, keys, nil
}

// setsServerCert reports whether edgeHub's manifest env or createOptions.Env
// names EdgeModuleHubServerCertificateFile or
// EdgeModuleHubServerCAChainCertificateFile. The deployment's own
// certificate then wins, as it did with Azure's agent, which put the
// module's env after its own; and the agent injects neither file, since the
// two describe one certificate and the edge hub refuses a CA chain from
// another directory than its certificate's.
func setsServerCert(edgeHub deployment.Module) bool {
	names := func(k string) bool {
		return k == EnvHubServerCertificateFile || k == EnvHubServerCAChainCertificateFile
	}
	for k := range edgeHub.Env {
		if names(k) {
			return true
		}
	}
	for _, e := range createOptionsEnv(edgeHub.CreateOptions) {
		if k, _, _ := strings.Cut(e, "="); names(k) {
			return true
		}
	}
	return false
}
