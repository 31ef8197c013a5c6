package main

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

// serviceAPIVersion is the api-version edgectl sends.
const serviceAPIVersion = "2021-04-12"

// tokenTTL is the lifetime of each service token edgectl signs.
const tokenTTL = time.Hour

// serviceClient calls IoT Hub's service REST API with a shared access
// policy (iothubowner, or one with RegistryWrite and ServiceConnect).
type serviceClient struct {
	base string // https://host[:port], no trailing slash
	cs   sas.ConnectionString
	http *http.Client
	now  func() time.Time
}

// hubError is an error answer of the service API.
type hubError struct {
	Status  int
	Code    string // iothub-errorcode, e.g. DeviceNotFound
	Message string
}

func (e *hubError) Error() string {
	s := fmt.Sprintf("the hub answered %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// readServiceConnectionString reads and checks a service connection string
// file. Errors never quote the key.
func readServiceConnectionString(path string) (sas.ConnectionString, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("--service-connection-string-file: %w", err)
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("--service-connection-string-file %s: %w", path, err)
	}
	if !cs.IsService() {
		return sas.ConnectionString{}, fmt.Errorf("--service-connection-string-file %s: want a service connection string (HostName, SharedAccessKeyName, SharedAccessKey), got %s", path, cs.Redacted())
	}
	return cs, nil
}

// newServiceClient builds the client; caFile is trusted when set (a fake
// hub's ca.pem), else the system roots.
func newServiceClient(base string, cs sas.ConnectionString, caFile string, now func() time.Time) (*serviceClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--service-url %q: want https://host[:port]", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &serviceClient{base: strings.TrimRight(base, "/"), cs: cs, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, now: now}, nil
}

// do sends a request with a fresh token and decodes a 2xx JSON answer into
// out (when not nil).
func (c *serviceClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path+"?api-version="+serviceAPIVersion, rd)
	if err != nil {
		return err
	}
	tok, err := c.cs.Token(c.now(), tokenTTL)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return parseHubError(resp.StatusCode, resp.Header.Get("iothub-errorcode"), b)
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("%s %s: undecodable answer: %w", method, path, err)
		}
	}
	return nil
}

// parseHubError reads IoT Hub's error shape: {"Message": "<JSON with
// message>", "ExceptionMessage": "..."}.
func parseHubError(status int, code string, body []byte) error {
	e := &hubError{Status: status, Code: code}
	var outer struct {
		Message          string
		ExceptionMessage string
	}
	if json.Unmarshal(body, &outer) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal([]byte(outer.Message), &inner) == nil && inner.Message != "":
			e.Message = inner.Message
		case outer.Message != "":
			e.Message = outer.Message
		default:
			e.Message = outer.ExceptionMessage
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}

// ApplyConfiguration is POST /devices/{d}/applyConfigurationContent.
func (c *serviceClient) ApplyConfiguration(ctx context.Context, device string, modulesContent map[string]json.RawMessage) error {
	content := make(map[string]any, len(modulesContent))
	for name, desired := range modulesContent {
		content[name] = map[string]json.RawMessage{"properties.desired": desired}
	}
	return c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(device)+"/applyConfigurationContent",
		map[string]any{"modulesContent": content}, nil)
}

// moduleTwin is the part of a service-side module twin deploy reads.
type moduleTwin struct {
	Properties struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	} `json:"properties"`
}

// ModuleTwin is GET /twins/{d}/modules/{m}.
func (c *serviceClient) ModuleTwin(ctx context.Context, device, module string) (moduleTwin, error) {
	var t moduleTwin
	err := c.do(ctx, http.MethodGet, "/twins/"+url.PathEscape(device)+"/modules/"+url.PathEscape(module), nil, &t)
	return t, err
}
