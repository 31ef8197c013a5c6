package conformance

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// IoT Hub's bounds on a direct method's response timeout (protocol notes 6.2).
const (
	minMethodTimeout = 5
	maxMethodTimeout = 300
)

// checkMethods calls each declared method through the fake IoT Hub's service API (so
// through the upstream link and the edge hub, as a cloud application would) and checks
// the status and that the answer came within the method's timeout.
func (h *harness) checkMethods() []Result {
	if len(h.spec.Methods) == 0 {
		return []Result{{Name: CheckMethod, Verdict: Skip, Evidence: "no direct methods declared in the spec"}}
	}
	var out []Result
	for _, m := range h.spec.Methods {
		out = append(out, h.checkMethod(m))
	}
	return out
}

func (h *harness) checkMethod(m Method) Result {
	res := Result{Name: CheckMethod + "/" + m.Name}
	status, payload, took, err := h.invoke(m)
	res.Duration = took
	timeout := duration(m.TimeoutSeconds)
	switch {
	case err != nil:
		res.Verdict, res.Evidence = Fail, fmt.Sprintf("no answer: %v", err)
		if exited := h.moduleExited(); exited != "" {
			res.Details = append(res.Details, exited)
		}
	case status != m.ExpectStatus:
		res.Verdict, res.Evidence = Fail, fmt.Sprintf("answered %d, want %d (payload %s)", status, m.ExpectStatus, truncate(string(payload), 200))
	case took > timeout:
		res.Verdict, res.Evidence = Fail, fmt.Sprintf("answered %d after %v, over the timeout of %v", status, ms(took), timeout)
	default:
		res.Verdict, res.Evidence = Pass, fmt.Sprintf("answered %d in %v (timeout %v): %s", status, ms(took), timeout, truncate(string(payload), 200))
	}
	return res
}

// invoke calls method m and returns the module's status and payload and how long the
// call took. The call waits up to the method's timeout for the module to be connected
// and subscribed (connectTimeoutInSeconds), then up to the same timeout for its answer
// (responseTimeoutInSeconds, at least IoT Hub's minimum of 5 s).
func (h *harness) invoke(m Method) (int, []byte, time.Duration, error) {
	secs := int(math.Ceil(m.TimeoutSeconds))
	req := fakehub.MethodRequest{
		MethodName: m.Name, Payload: m.Payload,
		ResponseTimeoutInSeconds: min(max(secs, minMethodTimeout), maxMethodTimeout),
		ConnectTimeoutInSeconds:  min(secs, maxMethodTimeout),
	}
	ctx, cancel := context.WithTimeout(h.alive, time.Duration(req.ResponseTimeoutInSeconds+req.ConnectTimeoutInSeconds+5)*time.Second)
	defer cancel()
	start := h.now()
	resp, err := h.fake.InvokeMethod(ctx, EdgeDeviceID, h.spec.Module, req)
	took := h.now().Sub(start)
	if err != nil {
		return 0, nil, took, err
	}
	if resp.Status == iothub.StatusGatewayTimeout {
		return resp.Status, resp.Payload, took, fmt.Errorf("the edge hub answered %d: the module did not answer in time", resp.Status)
	}
	return resp.Status, resp.Payload, took, nil
}
