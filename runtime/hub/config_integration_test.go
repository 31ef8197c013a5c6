package hub_test

import (
	"strings"
	"testing"
)

// hubStatus returns lastDesiredVersion and lastDesiredStatus from the hub's twin in IoT Hub.
func (c *cloudEnv) hubStatus(t *testing.T) (version, code float64, desc string) {
	t.Helper()
	rep := c.reported(t, edgeHubID)
	if v, ok := rep["lastDesiredVersion"]; ok {
		version = number(t, v)
	}
	st, _ := rep["lastDesiredStatus"].(map[string]any)
	if v, ok := st["code"]; ok {
		code = number(t, v)
	}
	desc, _ = st["description"].(string)
	return version, code, desc
}

func TestIntegration_EdgeHubConfigurationFromItsTwin(t *testing.T) {
	e := newCloudEnv(t) // no routes of its own
	e.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{"aToB":"`+routeAToB+`"},"storeAndForwardConfiguration":{"timeToLiveSecs":7200}}`)
	waitFor(t, "lastDesiredStatus 200", func() bool { v, code, _ := e.hubStatus(t); return v == 2 && code == 200 })

	b := e.connect(modB)
	b.subscribeInputs(t)
	a := e.connect(modA)
	routed(t, a, b, "routed by the twin's routes")

	e.patchDesired(t, edgeHubID, `{"routes":{"aToB":"FROM /messages/* WHERE temp > 3 INTO $upstream"}}`)
	waitFor(t, "lastDesiredStatus 400", func() bool { v, code, _ := e.hubStatus(t); return v == 3 && code == 400 })
	if _, _, desc := e.hubStatus(t); !strings.Contains(desc, "aToB") {
		t.Errorf("description %q does not name the route", desc)
	}
	routed(t, a, b, "still routed by the previous routes")

	rep := e.reported(t, edgeHubID)
	clients, _ := rep["clients"].(map[string]any)
	if c, _ := clients["edge1/modA"].(map[string]any); c["status"] != "Connected" {
		t.Errorf("reported clients %v", clients)
	}
	if rep["schemaVersion"] != "1.0" {
		t.Errorf("schemaVersion %v", rep["schemaVersion"])
	}
}
