package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

func TestIntegration_MethodsFromIoTHubToAModule(t *testing.T) {
	e := newCloudEnv(t)
	release := make(chan struct{})
	defer close(release)
	sdkModule(t, e.relayEnv, modA, func(c *moduleclient.Client) {
		c.HandleMethod("echo", func(_ context.Context, p []byte) (int, []byte) {
			return 200, append(append([]byte(`{"echo":`), p...), '}')
		})
		c.HandleMethod("stuck", func(ctx context.Context, _ []byte) (int, []byte) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return 500, nil
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// connectTimeout covers the attach that follows the module's subscription.
	res, err := e.iot.InvokeMethod(ctx, modA.DeviceID, modA.ModuleID, fakehub.MethodRequest{
		MethodName: "echo", Payload: json.RawMessage(`{"n":1}`), ConnectTimeoutInSeconds: 10})
	if err != nil {
		t.Fatalf("InvokeMethod: %v", err)
	}
	if res.Status != 200 || canon(t, res.Payload) != `{"echo":{"n":1}}` {
		t.Fatalf("answer %d %s", res.Status, res.Payload)
	}
	if len(e.iot.Connections()) != 1 {
		t.Fatalf("connections %+v: the call must come over the hub's one connection", e.iot.Connections())
	}
	// A module that does not answer: IoT Hub times the caller out.
	_, err = e.iot.InvokeMethod(ctx, modA.DeviceID, modA.ModuleID, fakehub.MethodRequest{MethodName: "stuck", ResponseTimeoutInSeconds: 5})
	if !errors.Is(err, fakehub.ErrTimeout) {
		t.Fatalf("InvokeMethod of a stuck method = %v, want ErrTimeout", err)
	}
}

func TestIntegration_ModuleToModuleOverTheMethodAPI(t *testing.T) {
	e := newCloudEnv(t)
	r, hc, base := methodAPIOn(t, e.relayEnv)
	sdkModule(t, r, modA, func(c *moduleclient.Client) {
		c.HandleMethod("add", func(_ context.Context, p []byte) (int, []byte) {
			var in struct{ A, B int }
			if json.Unmarshal(p, &in) != nil {
				return 400, []byte(`"bad"`)
			}
			b, _ := json.Marshal(in.A + in.B)
			return 200, b
		})
	})
	tok := r.token(hubHost, modB, keyModB, r.clock.Now().Add(time.Hour))
	status, body := callMethod(t, hc, base, modA, "edge1/modB", tok, `{"methodName":"add","payload":{"a":2,"b":3}}`)
	if status != 200 || canon(t, []byte(body)) != `{"payload":5,"status":200}` {
		t.Fatalf("status %d body %s", status, body)
	}
	status, _ = callMethod(t, hc, base, modA, "edge1/modB", r.token(hubHost, modB, keyBad, r.clock.Now().Add(time.Hour)), `{"methodName":"add"}`)
	if status != 401 {
		t.Fatalf("a wrong token got %d, want 401", status)
	}
}
