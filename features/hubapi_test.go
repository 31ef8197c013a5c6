package features

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// hubAPI is a client of the fake hub's service REST API (docs/fakehub.md),
// the way a solution back end talks to IoT Hub: a service connection string,
// SAS tokens, HTTPS trusting the hub's CA.
type hubAPI struct {
	base    string // https://localhost:<port>
	service sas.ConnectionString
	http    *http.Client
}

// newHubAPI builds the client from the hub's HTTPS address, its CA file and
// its service connection string file.
func newHubAPI(httpAddr, caFile, serviceCSFile string) (*hubAPI, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("fake hub CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("fake hub CA %s: no PEM certificate", caFile)
	}
	raw, err := os.ReadFile(serviceCSFile)
	if err != nil {
		return nil, fmt.Errorf("fake hub service connection string: %w", err)
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("fake hub service connection string: %w", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &hubAPI{
		base:    "https://" + httpAddr,
		service: cs,
		http:    &http.Client{Transport: tr, Timeout: 15 * time.Second},
	}, nil
}

// do sends one request and decodes a JSON answer into out (when not nil).
// Any status but 2xx is an error quoting the hub's answer.
func (h *hubAPI) do(ctx context.Context, method, path string, body, out any) error {
	return h.doHeader(ctx, method, path, body, out, nil)
}

// doHeader is do with extra request headers.
func (h *hubAPI) doHeader(ctx context.Context, method, path string, body, out any, header map[string]string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return err
	}
	tok, err := h.service.Token(time.Now(), time.Hour)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, &httpError{status: resp.StatusCode, body: string(bytes.TrimSpace(b))})
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// applyConfigurationContent sets the device's deployment: each entry of
// modulesContent replaces that module twin's desired properties, as
// `az iot edge set-modules` does.
func (h *hubAPI) applyConfigurationContent(ctx context.Context, device string, modulesContent map[string]any) error {
	return h.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(device)+"/applyConfigurationContent?api-version=2021-04-12",
		map[string]any{"modulesContent": modulesContent}, nil)
}

// moduleTwin is the service-side shape of a module twin, the parts the
// scenarios read.
type moduleTwin struct {
	Properties struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	} `json:"properties"`
}

// moduleTwin reads a module twin ("$edgeAgent", "$edgeHub", or a module).
func (h *hubAPI) moduleTwin(ctx context.Context, device, module string) (moduleTwin, error) {
	var t moduleTwin
	err := h.do(ctx, http.MethodGet, "/twins/"+url.PathEscape(device)+"/modules/"+url.PathEscape(module)+"?api-version=2021-04-12", nil, &t)
	return t, err
}
