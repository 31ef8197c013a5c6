package moduleclient

import (
	"fmt"
	"os"
	"strings"
)

// Environment variables read by NewFromEnvironment (protocol notes 1.6,
// edge-runtime-behaviour D.1 and D.2).
const (
	// EnvEdgeHubConnectionString holds the module connection string, normally with
	// GatewayHostName naming the edge hub. It takes precedence over EnvIotHubConnectionString.
	EnvEdgeHubConnectionString = "EdgeHubConnectionString"
	// EnvIotHubConnectionString is the alternative name the Azure SDKs also accept.
	EnvIotHubConnectionString = "IotHubConnectionString"
	// EnvCACertificateFile names a PEM file with the root CA of the edge hub's certificate.
	EnvCACertificateFile = "EdgeModuleCACertificateFile"
	// EnvWorkloadURI is the IoT Edge workload API socket. Its presence without a connection
	// string means the module expects to sign tokens through the workload API, which this
	// SDK does not do.
	EnvWorkloadURI = "IOTEDGE_WORKLOADURI"
)

// workloadVariables are the variables the Azure SDKs need for workload-API authentication
// (D.2 step 2); an error message lists the ones that are present to explain the situation.
var workloadVariables = []string{
	EnvWorkloadURI, "IOTEDGE_DEVICEID", "IOTEDGE_MODULEID", "IOTEDGE_MODULEGENERATIONID",
	"IOTEDGE_IOTHUBHOSTNAME", "IOTEDGE_GATEWAYHOSTNAME", "IOTEDGE_AUTHSCHEME",
}

// environment is what NewFromEnvironment takes from the process environment.
type environment struct {
	// connString is the raw connection string and connVar the variable it came from.
	connString, connVar string
	// caFile is EdgeModuleCACertificateFile, possibly empty.
	caFile string
}

// readEnvironment applies the SDKs' rules (D.2 step 1) to the variables seen through lookup:
// EdgeHubConnectionString, else IotHubConnectionString, plus EdgeModuleCACertificateFile.
// A variable set to an empty or blank value counts as unset. Without a connection string it
// fails with ErrUnsupported when the workload variables are present (IOTEDGE_WORKLOADURI; the
// workload API is not implemented) and with ErrEnvironment otherwise; both messages name
// what is missing.
func readEnvironment(lookup func(string) (string, bool)) (environment, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	env := environment{caFile: get(EnvCACertificateFile)}
	for _, name := range []string{EnvEdgeHubConnectionString, EnvIotHubConnectionString} {
		if v := get(name); v != "" {
			env.connString, env.connVar = v, name
			return env, nil
		}
	}
	var present []string
	for _, name := range workloadVariables {
		if get(name) != "" {
			present = append(present, name)
		}
	}
	if get(EnvWorkloadURI) != "" {
		return environment{}, fmt.Errorf("%w: the environment has %s but neither %s nor %s: "+
			"authenticating through the IoT Edge workload API is not implemented; give the module %s (and %s)",
			ErrUnsupported, strings.Join(present, ", "), EnvEdgeHubConnectionString, EnvIotHubConnectionString,
			EnvEdgeHubConnectionString, EnvCACertificateFile)
	}
	return environment{}, fmt.Errorf("%w: neither %s nor %s is set", ErrEnvironment,
		EnvEdgeHubConnectionString, EnvIotHubConnectionString)
}

// NewFromEnvironment creates a client the way ModuleClient.CreateFromEnvironment does in the
// Azure SDKs when the edge runtime injects a connection string (protocol notes 1.6, D.2):
//
//   - the connection string comes from EdgeHubConnectionString, or else from
//     IotHubConnectionString;
//   - EdgeModuleCACertificateFile, when set, becomes opts.CAFile, unless opts already has a
//     CAFile or a TLSConfig (explicit options win over the environment).
//
// The IOTEDGE_* workload variables (IOTEDGE_WORKLOADURI, IOTEDGE_MODULEGENERATIONID, ...) are
// NOT supported: a module that only has those fails with an error wrapping ErrUnsupported that
// says so. A module with neither fails with ErrEnvironment naming the missing variables. This
// is the only function of the package that reads the process environment.
func NewFromEnvironment(opts Options) (*Client, error) {
	env, err := readEnvironment(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if opts.CAFile == "" && opts.TLSConfig == nil {
		opts.CAFile = env.caFile
	}
	c, err := NewFromConnectionString(env.connString, opts)
	if err != nil {
		return nil, fmt.Errorf("environment variable %s: %w", env.connVar, err)
	}
	return c, nil
}
