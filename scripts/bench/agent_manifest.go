package main

import (
	"encoding/json"
	"fmt"
	"maps"
)

// benchModule is one module of a deployment the agent scenarios make.
type benchModule struct {
	Name          string
	Image         string
	Env           map[string]any
	CreateOptions map[string]any // nil: none
	RestartPolicy string         // "" means always
}

// benchManifest is a deployment: the edge hub as the system module, the modules, and the
// edge hub's routes, as edgectl deploy sends it (applyConfigurationContent).
type benchManifest struct {
	EdgeHub benchModule
	Modules []benchModule
	Routes  map[string]string
}

// content returns the body of POST /devices/{d}/applyConfigurationContent.
func (m benchManifest) content() (map[string]any, error) {
	system, err := moduleEntry(m.EdgeHub, false)
	if err != nil {
		return nil, err
	}
	modules := map[string]any{}
	for _, mod := range m.Modules {
		e, err := moduleEntry(mod, true)
		if err != nil {
			return nil, err
		}
		if _, dup := modules[mod.Name]; dup {
			return nil, fmt.Errorf("module %q twice in the deployment", mod.Name)
		}
		modules[mod.Name] = e
	}
	agent := map[string]any{
		"schemaVersion": "1.1",
		"runtime":       map[string]any{"type": "docker", "settings": map[string]any{"minDockerVersion": "v1.25"}},
		"systemModules": map[string]any{
			"edgeAgent": map[string]any{"type": "docker", "settings": map[string]any{"image": "outpost/edgeagent:dev"}},
			"edgeHub":   system,
		},
		"modules": modules,
	}
	hub := map[string]any{
		"schemaVersion":                "1.1",
		"routes":                       maps.Clone(m.Routes),
		"storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200},
	}
	return map[string]any{"modulesContent": map[string]any{
		"$edgeAgent": map[string]any{"properties.desired": agent},
		"$edgeHub":   map[string]any{"properties.desired": hub},
	}}, nil
}

// moduleEntry is a module's entry in the $edgeAgent desired properties. createOptions is
// a JSON document in a string, as in Azure's manifests.
func moduleEntry(m benchModule, user bool) (map[string]any, error) {
	if m.Name == "" || m.Image == "" {
		return nil, fmt.Errorf("module %q: name and image are required", m.Name)
	}
	policy := m.RestartPolicy
	if policy == "" {
		policy = "always"
	}
	settings := map[string]any{"image": m.Image}
	if m.CreateOptions != nil {
		b, err := json.Marshal(m.CreateOptions)
		if err != nil {
			return nil, fmt.Errorf("module %q: createOptions: %w", m.Name, err)
		}
		settings["createOptions"] = string(b)
	}
	env := map[string]any{}
	for k, v := range m.Env {
		env[k] = map[string]any{"value": v}
	}
	e := map[string]any{"type": "docker", "status": "running", "restartPolicy": policy, "settings": settings, "env": env}
	if user {
		e["version"] = "1.0"
	}
	return e, nil
}
