package features

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Module behaviours, as the feature files write them after "that": the test
// module's environment (features/testmodule) for each.
var behaviours = []struct {
	re    *regexp.Regexp
	build func(m []string) behaviour
}{
	{regexp.MustCompile(`^keeps running$`), func([]string) behaviour { return behaviour{} }},
	{regexp.MustCompile(`^keeps running with a health check$`), func([]string) behaviour { return behaviour{health: true} }},
	{regexp.MustCompile(`^exits with code (\d+) after (\S+)$`), func(m []string) behaviour {
		return behaviour{env: map[string]string{"TESTMODULE_EXIT_CODE": m[1], "TESTMODULE_EXIT_AFTER": m[2]}, trigger: evExit, after: m[2]}
	}},
	{regexp.MustCompile(`^becomes unhealthy after (\S+)$`), func(m []string) behaviour {
		return behaviour{env: map[string]string{"TESTMODULE_UNHEALTHY_AFTER": m[1]}, health: true, trigger: evUnhealthy, after: m[1]}
	}},
	{regexp.MustCompile(`^fails its first (\d+) starts$`), func(m []string) behaviour {
		return behaviour{env: map[string]string{"TESTMODULE_FAIL_STARTS": m[1]}}
	}},
}

// behaviour is what a test module does, and what it needs for that.
type behaviour struct {
	env    map[string]string // TESTMODULE_* variables
	health bool              // needs a Healthcheck in createOptions
	// trigger is the journal event after which the restart policy has
	// something to decide ("exit", "unhealthy"); "" for none.
	trigger string
	after   string // when the trigger comes, as written ("1s")
}

// parseBehaviour reads a behaviour phrase of a feature file.
func parseBehaviour(s string) (behaviour, error) {
	for _, p := range behaviours {
		m := p.re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		b := p.build(m)
		if b.after != "" {
			if _, err := time.ParseDuration(b.after); err != nil {
				return behaviour{}, fmt.Errorf("behaviour %q: %q is not a duration such as 1s", s, b.after)
			}
		}
		return b, nil
	}
	return behaviour{}, fmt.Errorf("unknown module behaviour %q; known: keeps running [with a health check], exits with code N after D, becomes unhealthy after D, fails its first N starts", s)
}

// healthCheck is the Healthcheck the test module gets when its behaviour
// involves health: a check every 250 ms, unhealthy at the first failure.
// Durations are in nanoseconds, as in Docker's create JSON.
func healthCheck(test []string) map[string]any {
	return map[string]any{
		"Test":     test,
		"Interval": int64(250 * time.Millisecond),
		"Timeout":  int64(2 * time.Second),
		"Retries":  1,
	}
}

// moduleImage is the test module's image repository.
const moduleImage = "testmodule"

// module is one module of a deployment under construction.
type module struct {
	name          string
	version       string // also the image tag
	restartPolicy string // "" leaves it out (Azure's default applies)
	status        string // desired status, "running" or "stopped"
	startupOrder  *int
	behaviour     behaviour
	missingImage  bool // an image that is in no registry
}

// newModule returns a module running the test module with behaviour.
func newModule(name string, b behaviour) *module {
	return &module{name: name, version: "1.0", status: "running", behaviour: b}
}

// deployment is the deployment a scenario builds and applies: the
// $edgeAgent and $edgeHub desired properties. By default edgeHub is a
// stand-in, the test module, for the scenarios about the agent alone (it
// starts in a blink and keeps a journal); hub, when set, makes it Outpost's
// edge hub (edgehub_test.go) with that configuration.
type deployment struct {
	schemaVersion string
	edgeHub       *module
	hub           *hubSettings
	modules       map[string]*module
	// credentials are runtime.settings.registryCredentials.
	credentials map[string]registryCredential
}

func newDeployment(creds map[string]registryCredential) *deployment {
	hub := newModule("edgeHub", behaviour{})
	hub.restartPolicy = "always"
	return &deployment{
		schemaVersion: "1.1",
		edgeHub:       hub,
		modules:       map[string]*module{},
		credentials:   maps.Clone(creds),
	}
}

// names returns the user modules' names, sorted.
func (d *deployment) names() []string {
	return slices.Sorted(maps.Keys(d.modules))
}

// all returns edgeHub and the user modules.
func (d *deployment) all() []*module {
	out := []*module{d.edgeHub}
	for _, n := range d.names() {
		out = append(out, d.modules[n])
	}
	return out
}

// clone returns a deep enough copy to change modules without touching d.
func (d *deployment) clone() *deployment {
	c := *d
	hub := *d.edgeHub
	c.edgeHub = &hub
	c.modules = make(map[string]*module, len(d.modules))
	for n, m := range d.modules {
		mc := *m
		c.modules[n] = &mc
	}
	c.credentials = maps.Clone(d.credentials)
	if d.hub != nil {
		c.hub = d.hub.clone()
	}
	return &c
}

// modulesContent renders the deployment for applyConfigurationContent.
func (d *deployment) modulesContent(w *world) (map[string]any, error) {
	sys := map[string]any{
		"edgeAgent": map[string]any{
			"type":     "docker",
			"settings": map[string]any{"image": w.s.be.agentImage(), "createOptions": "{}"},
		},
	}
	var hub map[string]any
	var err error
	if d.hub != nil {
		hub = w.edgeHubEntry(d.hub)
	} else if hub, err = w.moduleEntry(d.edgeHub); err != nil {
		return nil, err
	}
	sys["edgeHub"] = hub
	modules := map[string]any{}
	for _, n := range d.names() {
		if modules[n], err = w.moduleEntry(d.modules[n]); err != nil {
			return nil, err
		}
	}
	creds := map[string]any{}
	for k, c := range d.credentials {
		creds[k] = map[string]any{"address": c.Address, "username": c.Username, "password": c.Password}
	}
	agent := map[string]any{
		"schemaVersion": d.schemaVersion,
		"runtime": map[string]any{
			"type": "docker",
			"settings": map[string]any{
				"minDockerVersion":    "v1.25",
				"loggingOptions":      "",
				"registryCredentials": creds,
			},
		},
		"systemModules": sys,
		"modules":       modules,
	}
	hubDesired := map[string]any{
		"schemaVersion":                "1.1",
		"routes":                       map[string]any{},
		"storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200},
	}
	if d.hub != nil {
		hubDesired = d.hub.desired()
	}
	return map[string]any{
		"$edgeAgent": map[string]any{"properties.desired": agent},
		"$edgeHub":   map[string]any{"properties.desired": hubDesired},
	}, nil
}

// moduleEntry renders one module of $edgeAgent's desired properties. The
// environment holds the behaviour, the module's name for its journal, and
// what the backend adds; createOptions the health check and what the
// backend adds.
func (w *world) moduleEntry(m *module) (map[string]any, error) {
	env := map[string]string{"TESTMODULE_NAME": m.name}
	maps.Copy(env, m.behaviour.env)
	opts := map[string]any{}
	if m.behaviour.health {
		opts["Healthcheck"] = healthCheck(w.s.be.healthCommand())
	}
	w.s.be.decorate(w.sc, env, opts)

	image := w.s.be.image(moduleImage, m.version)
	if m.missingImage {
		image = w.s.be.image("no-such-module", m.version)
	}
	settings := map[string]any{"image": image}
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	for k, v := range chunkCreateOptions(string(b)) {
		settings[k] = v
	}
	envOut := map[string]any{}
	for k, v := range env {
		envOut[k] = map[string]any{"value": v}
	}
	e := map[string]any{
		"type":     "docker",
		"status":   m.status,
		"settings": settings,
		"env":      envOut,
	}
	if m.name != "edgeHub" {
		e["version"] = m.version
	}
	if m.restartPolicy != "" {
		e["restartPolicy"] = m.restartPolicy
	}
	if m.startupOrder != nil {
		e["startupOrder"] = *m.startupOrder
	}
	return e, nil
}

// createOptionsChunk is the longest value of a twin property IoT Edge puts
// in one createOptions field; longer ones go on in createOptions01…99.
const createOptionsChunk = 512

// chunkCreateOptions splits createOptions as IoT Edge tooling does.
func chunkCreateOptions(s string) map[string]string {
	out := map[string]string{}
	for i := 0; len(s) > 0; i++ {
		n := min(len(s), createOptionsChunk)
		key := "createOptions"
		if i > 0 {
			key += fmt.Sprintf("%02d", i)
		}
		out[key], s = s[:n], s[n:]
	}
	if len(out) == 0 {
		out["createOptions"] = "{}"
	}
	return out
}

// parseStartupOrder reads a startupOrder cell.
func parseStartupOrder(s string) (*int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("startup order %q: want a non-negative integer", s)
	}
	return &n, nil
}
