package main

import (
	"testing"

	"github.com/outpost-edge/outpost/fakehub"
)

func fakehubMethod(name string) fakehub.MethodRequest {
	return fakehub.MethodRequest{MethodName: name, ResponseTimeoutInSeconds: 5}
}

func patchDesired(t *testing.T, s *fakehub.Server, deviceID, moduleID string, desired map[string]any) {
	t.Helper()
	var p fakehub.TwinPatch
	p.Properties.Desired = desired
	if _, err := s.PatchTwin(deviceID, moduleID, p, ""); err != nil {
		t.Fatal(err)
	}
}
