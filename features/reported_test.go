package features

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// reported reads the $edgeAgent reported properties through the service
// API, as a solution back end (or the Azure portal) does.
func (w *world) reported(ctx context.Context) (map[string]any, error) {
	t, err := w.api.moduleTwin(ctx, edgeDevice, "$edgeAgent")
	if err != nil {
		return nil, err
	}
	return t.Properties.Reported, nil
}

// lastDesiredStatus returns lastDesiredStatus.code and .description.
func lastDesiredStatus(r map[string]any) (code int64, description string, ok bool) {
	s, _ := r["lastDesiredStatus"].(map[string]any)
	if s == nil {
		return 0, "", false
	}
	code, ok = number(s["code"])
	description, _ = s["description"].(string)
	return code, description, ok
}

// reportedModule returns the reported entry of a module: edgeHub and
// edgeAgent under systemModules, the others under modules.
func reportedModule(r map[string]any, name string) (map[string]any, bool) {
	section := "modules"
	if name == "edgeHub" || name == "edgeAgent" {
		section = "systemModules"
	}
	mods, _ := r[section].(map[string]any)
	m, ok := mods[name].(map[string]any)
	return m, ok
}

// reportedModules returns every reported module entry by name, edgeHub
// included.
func reportedModules(r map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	if m, ok := reportedModule(r, "edgeHub"); ok {
		out["edgeHub"] = m
	}
	mods, _ := r["modules"].(map[string]any)
	for name, v := range mods {
		if m, ok := v.(map[string]any); ok {
			out[name] = m
		}
	}
	return out
}

// number reads a JSON number decoded with UseNumber (or as a float64).
func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), float64(int64(n)) == n
	}
	return 0, false
}

// field returns a string field of a reported entry ("" when absent).
func field(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// timeField parses a reported time ("lastStartTimeUtc"); zero when absent.
func timeField(m map[string]any, key string) (time.Time, error) {
	s := field(m, key)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: %w", key, s, err)
	}
	return t, nil
}

// compactJSON renders v on one line for messages.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
