package deployment

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// Twin names of the system modules in modulesContent.
const (
	EdgeAgentTwin = "$edgeAgent"
	EdgeHubTwin   = "$edgeHub"
)

// desiredKey is the key under each modulesContent entry holding the desired
// properties that IoT Hub writes into that module's twin.
const desiredKey = "properties.desired"

// Manifest is a parsed deployment manifest.
type Manifest struct {
	Agent *AgentConfig
	Hub   *HubConfig
	// Desired holds properties.desired (compacted) of every module in
	// modulesContent, including $edgeAgent and $edgeHub, keyed by module name.
	Desired map[string]json.RawMessage
}

// ParseManifest parses a deployment manifest:
//
//	{"modulesContent": {"$edgeAgent": {"properties.desired": {…}}, "$edgeHub": {…}, "<module>": {…}}}
//
// It also accepts the az CLI / ARM layout {"content": {"modulesContent": …}}
// and the 2018 preview spelling "moduleContent". $edgeAgent and $edgeHub are
// required, every entry must hold a "properties.desired" object, and the two
// system documents must pass ParseAgent and ParseHub. Errors carry the full
// path from the document root, e.g.
// modulesContent.$edgeAgent["properties.desired"].modules.x.status.
func ParseManifest(data []byte) (*Manifest, error) {
	m, err := parseManifest(data)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parseManifest(data []byte) (*Manifest, *Error) {
	// Validate syntax and depth with the same parser as the desired documents.
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	if root.kind != kindObject {
		return nil, wrongType(nil, "a JSON object", root)
	}
	top, _ := rawObject(data)

	var base path
	content, key := findModulesContent(top)
	if content == nil {
		if c, ok := top["content"]; ok {
			inner, ok := rawObject(c)
			if !ok {
				return nil, invalidf(path{"content"}, "must be an object")
			}
			base = path{"content"}
			content, key = findModulesContent(inner)
		}
	}
	if content == nil {
		return nil, invalidf(base.child("modulesContent"), "required")
	}
	cp := base.child(key)
	entries, ok := rawObject(content)
	if !ok {
		return nil, invalidf(cp, "must be an object")
	}
	for _, name := range []string{EdgeAgentTwin, EdgeHubTwin} {
		if _, ok := entries[name]; !ok {
			return nil, invalidf(cp.child(name), "required")
		}
	}

	m := &Manifest{Desired: make(map[string]json.RawMessage, len(entries))}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ep := cp.child(name)
		if err := checkModuleName(name, ep); err != nil {
			return nil, err
		}
		entry, ok := rawObject(entries[name])
		if !ok {
			return nil, invalidf(ep, "must be an object")
		}
		desired, ok := entry[desiredKey]
		if !ok {
			for k := range entry {
				if strings.HasPrefix(k, desiredKey+".") {
					return nil, invalidf(ep.child(desiredKey), "required; dotted keys such as %s belong to layered deployments, which are not full manifests", quoteValue(k))
				}
			}
			return nil, invalidf(ep.child(desiredKey), "required")
		}
		if _, ok := rawObject(desired); !ok {
			return nil, invalidf(ep.child(desiredKey), "must be an object")
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, desired); err != nil {
			return nil, invalidf(ep.child(desiredKey), "invalid JSON: %v", err)
		}
		m.Desired[name] = json.RawMessage(compact.Bytes())
	}

	dp := cp.child(EdgeAgentTwin).child(desiredKey)
	if m.Agent, err = parseAgent(m.Desired[EdgeAgentTwin]); err != nil {
		return nil, err.withPrefix(dp)
	}
	hp := cp.child(EdgeHubTwin).child(desiredKey)
	if m.Hub, err = parseHub(m.Desired[EdgeHubTwin]); err != nil {
		return nil, err.withPrefix(hp)
	}
	return m, nil
}

// findModulesContent returns the modulesContent member of obj and the key it
// was found under; "moduleContent" is the 2018 preview spelling.
func findModulesContent(obj map[string]json.RawMessage) (json.RawMessage, string) {
	for _, k := range []string{"modulesContent", "moduleContent"} {
		if v, ok := obj[k]; ok {
			return v, k
		}
	}
	return nil, ""
}

// rawObject decodes data as a JSON object of raw members (the last of
// duplicate keys wins); ok is false when data is not an object.
func rawObject(data json.RawMessage) (map[string]json.RawMessage, bool) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, false
	}
	return obj, true
}
