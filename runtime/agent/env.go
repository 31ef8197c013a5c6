package agent

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// softInjected are injected variables that the manifest may set itself: the
// agent adds them only when the module's env does not (edge-runtime-behaviour
// D.1: RuntimeLogLevel and UpstreamProtocol; and Outpost's OUTPOST_MQTT_PORT,
// which a module may point elsewhere, at a proxy for instance).
var softInjected = map[string]bool{EnvRuntimeLogLevel: true, EnvUpstreamProtocol: true, EnvMQTTPort: true}

// Env composes a module's final environment, "NAME=value" sorted by name,
// with Azure's precedence (edge-runtime-behaviour D.1):
//
//  1. the manifest's env;
//  2. the variables the agent injects (IOTEDGE_*, EdgeHubConnectionString,
//     …), which override the manifest, except RuntimeLogLevel,
//     UpstreamProtocol and OUTPOST_MQTT_PORT, which are only added when the
//     manifest lacks them;
//  3. createOptions.Env, which overrides both. An entry without "=" there
//     removes the variable (Docker gives such a container no value for it).
//
// Azure gets the same result by appending in that order and letting the
// later duplicate win; Env removes the duplicates. A createOptions whose Env
// is not a list of strings is ignored here: the runtime's Create rejects it
// with Docker's own message.
func Env(module deployment.Module, inject map[string]string) []string {
	vars := make(map[string]string, len(module.Env)+len(inject))
	for k, v := range module.Env {
		vars[k] = v
	}
	for k, v := range inject {
		if _, set := vars[k]; set && softInjected[k] {
			continue
		}
		vars[k] = v
	}
	for _, e := range createOptionsEnv(module.CreateOptions) {
		k, v, ok := strings.Cut(e, "=")
		switch {
		case k == "":
		case !ok:
			delete(vars, k)
		default:
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// createOptionsEnv returns createOptions.Env ("Env" matched
// case-insensitively, as the Docker Engine does), nil when absent or
// malformed.
func createOptionsEnv(createOptions string) []string {
	var opts struct{ Env []string }
	if json.Unmarshal([]byte(createOptions), &opts) != nil {
		return nil
	}
	return opts.Env
}

// createOptionsCmd returns createOptions.Cmd, a list of arguments or one
// string (one argument, as the process runtime and Docker's JSON take it);
// nil when absent or malformed.
func createOptionsCmd(createOptions string) []string {
	var opts struct{ Cmd json.RawMessage }
	if json.Unmarshal([]byte(createOptions), &opts) != nil || len(opts.Cmd) == 0 {
		return nil
	}
	var list []string
	if json.Unmarshal(opts.Cmd, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(opts.Cmd, &one) == nil {
		return []string{one}
	}
	return nil
}
