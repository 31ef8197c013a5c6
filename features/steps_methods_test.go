package features

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cucumber/godog"
)

// registerMethodSteps: direct methods from the cloud and between modules.
func registerMethodSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^"([^"]*)" answers direct method "([^"]*)"$`, w.answersMethod)
	sc.Step(`^the solution invokes method "([^"]*)" on "([^"]*)" with payload (.+)$`, w.cloudInvokes)
	sc.Step(`^"([^"]*)" invokes method "([^"]*)" on "([^"]*)" with payload (.+)$`, w.moduleInvokes)
	sc.Step(`^"([^"]*)" answers with status 200, echoing the payload$`, w.answeredBy)
	sc.Step(`^the call fails with HTTP status (\d+)$`, w.callFails)
}

// methodTimeout is the response timeout of the scenarios' method calls
// (the shortest IoT Hub accepts is 5 s).
const methodTimeout = 5 * time.Second

// methodCall is the last direct method call, for "echoing the payload".
type methodCall struct {
	payload any
}

// answersMethod registers a handler for method on a module: it answers 200
// with who answered and the request's payload.
func (w *world) answersMethod(name, method string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if c.c == nil {
		return fmt.Errorf("%s is not connected", c.kind())
	}
	c.c.HandleMethod(method, func(_ context.Context, payload []byte) (int, []byte) {
		b, _ := json.Marshal(map[string]any{"answeredBy": c.identity(), "method": method, "request": json.RawMessage(payload)})
		return 200, b
	})
	return nil
}

// httpError is a call the server answered with an error status.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// cloudInvokes invokes a direct method through IoT Hub's service API, as a
// solution back end does; edgeHub forwards it over its connection.
func (w *world) cloudInvokes(ctx context.Context, method, name, payload string) error {
	c := w.clients[name] // nil for a module that is not one of the scenario's
	p, err := jsonValue(payload)
	if err != nil {
		return err
	}
	w.call = methodCall{payload: p}
	// The module's method subscription reaches IoT Hub a moment after the
	// module connected (edgeHub attaches it): a call answered "not online"
	// is made again until that is done.
	err = eventually(ctx, reportTimeout, fmt.Sprintf("IoT Hub forwards method %q to %q", method, name), func(ctx context.Context) error {
		w.answer, w.answerErr = w.api.invokeModuleMethod(ctx, edgeDevice, name, method, p, methodTimeout)
		var he *httpError
		if errors.As(w.answerErr, &he) && strings.Contains(he.body, "DeviceNotOnline") && c != nil && c.c != nil {
			return w.answerErr
		}
		return nil
	})
	if err != nil {
		return err
	}
	return nil
}

// moduleInvokes invokes a direct method from one module on another
// through edgeHub's method API (HTTPS, as Azure's module SDKs'
// InvokeMethodAsync does): the caller's token, its id in
// x-ms-edge-moduleId, the edge CA.
func (w *world) moduleInvokes(ctx context.Context, caller, method, target, payload string) error {
	from, err := w.client(caller)
	if err != nil {
		return err
	}
	if !from.module {
		return fmt.Errorf("only modules call methods through edgeHub; %s is not one", from.kind())
	}
	p, err := jsonValue(payload)
	if err != nil {
		return err
	}
	w.call = methodCall{payload: p}
	h, err := w.hubSettings()
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(h.caFile())
	if err != nil {
		return fmt.Errorf("the edge CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: gatewayHost, MinVersion: tls.VersionTLS12}},
		Timeout:   methodTimeout + 5*time.Second,
	}
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(map[string]any{"methodName": method, "payload": p, "responseTimeoutInSeconds": int(methodTimeout / time.Second)})
	u := "https://" + gatewayHost + ":" + strconv.Itoa(h.httpsPort) + "/twins/" + url.PathEscape(edgeDevice) + "/modules/" + url.PathEscape(target) + "/methods?api-version=2021-04-12"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	tok, err := from.cs.Token(time.Now(), time.Hour)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-ms-edge-moduleId", from.identity())
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("edgeHub's method API: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	w.answer, w.answerErr = methodResult{}, nil
	if resp.StatusCode != http.StatusOK {
		w.answerErr = &httpError{status: resp.StatusCode, body: string(bytes.TrimSpace(b))}
		return nil
	}
	if err := json.Unmarshal(b, &w.answer); err != nil {
		return fmt.Errorf("edgeHub's method API answered %s: %w", b, err)
	}
	return nil
}

// answeredBy checks the last answer: status 200 from the module's handler,
// which names the module and echoes the request's payload.
func (w *world) answeredBy(name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if w.answerErr != nil {
		return fmt.Errorf("the call failed: %w", w.answerErr)
	}
	var got struct {
		AnsweredBy string `json:"answeredBy"`
		Request    any    `json:"request"`
	}
	if err := json.Unmarshal(w.answer.Payload, &got); err != nil {
		return fmt.Errorf("the answer's payload %s: %w", w.answer.Payload, err)
	}
	switch {
	case w.answer.Status != 200:
		return fmt.Errorf("the answer has status %d, payload %s", w.answer.Status, w.answer.Payload)
	case got.AnsweredBy != c.identity():
		return fmt.Errorf("the answer comes from %q, not %q", got.AnsweredBy, c.identity())
	case !sameJSON(got.Request, w.call.payload):
		return fmt.Errorf("the answer echoes %s, not the payload sent, %s", compactJSON(got.Request), compactJSON(w.call.payload))
	}
	return nil
}

// callFails checks that the last call failed with an HTTP status: from
// the service API (the fake hub's error) or edgeHub's method API.
func (w *world) callFails(want int) error {
	if w.answerErr == nil {
		return fmt.Errorf("the call succeeded with status %d, payload %s", w.answer.Status, w.answer.Payload)
	}
	var he *httpError
	if !errors.As(w.answerErr, &he) || he.status != want {
		return fmt.Errorf("the call failed with %v, want HTTP %d", w.answerErr, want)
	}
	return nil
}
