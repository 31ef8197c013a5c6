package conformance

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/outpost-edge/outpost/fakehub"
)

// checkTwin patches the declared desired properties into the module's twin through the
// fake IoT Hub's service API, as an operator would, and waits for the module to report
// the expected properties, read back from the fake IoT Hub (so through the whole path:
// module, edge hub twin relay, upstream link).
func (h *harness) checkTwin() Result {
	res := Result{Name: CheckTwin}
	if h.spec.Twin == nil {
		res.Verdict, res.Evidence = Skip, "no twin behaviour declared in the spec"
		return res
	}
	start := h.now()
	var patch fakehub.TwinPatch
	patch.Properties.Desired = h.spec.Twin.Desired
	tw, err := h.fake.PatchTwin(EdgeDeviceID, h.spec.Module, patch, "")
	if err != nil {
		res.Verdict, res.Evidence = Fail, fmt.Sprintf("the harness could not patch the desired properties: %v", err)
		return res
	}
	want := normalize(h.spec.Twin.ExpectReported)
	var reported map[string]any
	timeout := duration(h.spec.Twin.TimeoutSeconds)
	ok := h.poll(timeout, func() bool {
		t, err := h.fake.GetTwin(EdgeDeviceID, h.spec.Module)
		if err != nil {
			return false
		}
		reported = t.Properties.Reported
		return contains(normalize(reported), want)
	})
	res.Duration = h.now().Sub(start)
	wantJSON, _ := json.Marshal(h.spec.Twin.ExpectReported) // came from JSON
	if ok {
		res.Verdict = Pass
		res.Evidence = fmt.Sprintf("reported %s %v after the desired patch (twin version %d)", wantJSON, ms(res.Duration), tw.Version)
		return res
	}
	delete(reported, "$metadata")
	gotJSON, _ := json.Marshal(reported) // came from JSON
	res.Verdict = Fail
	res.Evidence = fmt.Sprintf("did not report %s within %v of the desired patch; reported %s", wantJSON, timeout, truncate(string(gotJSON), 300))
	if exited := h.moduleExited(); exited != "" {
		res.Details = append(res.Details, exited)
	}
	return res
}

// normalize gives v the types encoding/json decodes to (float64 numbers, map[string]any),
// so that a spec's 30 equals a twin's 30.0.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// contains reports whether got has every property of want with the same value; objects
// are compared property by property, recursively, so got may hold more.
func contains(got, want any) bool {
	wm, ok := want.(map[string]any)
	if !ok {
		return reflect.DeepEqual(got, want)
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range wm {
		gv, ok := gm[k]
		if !ok || !contains(gv, wv) {
			return false
		}
	}
	return true
}
