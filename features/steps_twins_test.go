package features

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/cucumber/godog"
)

// registerTwinSteps: desired properties set by the solution, reported
// properties set by modules.
func registerTwinSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^the solution sets the desired property "([^"]*)" of "([^"]*)" to (.+)$`, w.setDesired)
	sc.Step(`^"([^"]*)" receives the desired property "([^"]*)" = (.+)$`, w.receivesDesired)
	sc.Step(`^"([^"]*)" reports the property "([^"]*)" = (.+)$`, w.reportProperty)
	sc.Step(`^IoT Hub shows the reported property "([^"]*)" of "([^"]*)" = (.+)$`, w.hubShowsReported)
}

// jsonValue reads a step's JSON value (21, "1.2.0", true, {"a":1}).
func jsonValue(text string) (any, error) {
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, fmt.Errorf("%s: not a JSON value: %w", text, err)
	}
	return v, nil
}

// sameJSON compares two decoded JSON values, numbers by value.
func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var na, nb any
	json.Unmarshal(ja, &na)
	json.Unmarshal(jb, &nb)
	return reflect.DeepEqual(na, nb)
}

func (w *world) setDesired(ctx context.Context, prop, name, value string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	v, err := jsonValue(value)
	if err != nil {
		return err
	}
	if !c.module {
		return fmt.Errorf("the scenarios set desired properties of modules only")
	}
	return w.api.patchModuleDesired(ctx, edgeDevice, c.name, map[string]any{prop: v})
}

func (w *world) receivesDesired(ctx context.Context, name, prop, value string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	want, err := jsonValue(value)
	if err != nil {
		return err
	}
	return eventually(ctx, deliveryTimeout, fmt.Sprintf("%q receives desired %s = %s", name, prop, value), func(context.Context) error {
		c.mu.Lock()
		got, ok := c.desired[prop]
		c.mu.Unlock()
		if !ok || !sameJSON(got, want) {
			return fmt.Errorf("its desired properties hold %s = %s", prop, compactJSON(got))
		}
		return nil
	})
}

// reportProperty sends a reported patch; edgeHub must accept it (it answers
// 204 once the patch is queued on disk, whether IoT Hub is reachable or
// not).
func (w *world) reportProperty(ctx context.Context, name, prop, value string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if c.c == nil {
		return fmt.Errorf("%s is not connected", c.kind())
	}
	v, err := jsonValue(value)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	if _, err := c.c.UpdateReported(rctx, map[string]any{prop: v}); err != nil {
		return fmt.Errorf("edgeHub did not accept the reported patch of %s: %w", c.kind(), err)
	}
	return nil
}

func (w *world) hubShowsReported(ctx context.Context, prop, name, value string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	want, err := jsonValue(value)
	if err != nil {
		return err
	}
	return eventually(ctx, deliveryTimeout, fmt.Sprintf("IoT Hub shows %q reporting %s = %s", name, prop, value), func(ctx context.Context) error {
		t, err := w.api.moduleTwin(ctx, edgeDevice, c.name)
		if err != nil {
			return err
		}
		if got := t.Properties.Reported[prop]; !sameJSON(got, want) {
			return fmt.Errorf("its reported %s is %s", prop, compactJSON(got))
		}
		return nil
	})
}
