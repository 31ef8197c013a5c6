package main

import (
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
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// tokenTTL is the life of each request's SAS token: one per request, so never stale.
const tokenTTL = time.Hour

// hub calls the fake hub's HTTPS API with a service token.
type hub struct {
	base   string
	cs     sas.ConnectionString
	client *http.Client
}

func newHub(c config) (*hub, error) {
	pemData, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate", c.caFile)
	}
	b, err := os.ReadFile(c.serviceCS)
	if err != nil {
		return nil, fmt.Errorf("--service-connection-string-file: %w", err)
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("--service-connection-string-file %s: %w", c.serviceCS, err)
	}
	if !cs.IsService() {
		return nil, fmt.Errorf("--service-connection-string-file %s: not a service connection string", c.serviceCS)
	}
	if _, err := url.Parse(c.url); err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	return &hub{
		base:   strings.TrimRight(c.url, "/"),
		cs:     cs,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}},
	}, nil
}

// get decodes the JSON answer of GET path into v.
func (h *hub) get(ctx context.Context, path string, v any) error {
	tok, err := h.cs.Token(time.Now(), tokenTTL)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// event is a captured device-to-cloud message (docs/fakehub.md, "Captured device-to-cloud
// messages").
type event struct {
	Seq              int64             `json:"seq"`
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId"`
	Body             []byte            `json:"body"`
	Properties       map[string]string `json:"properties"`
	SystemProperties map[string]string `json:"systemProperties"`
	EnqueuedTime     time.Time         `json:"enqueuedTime"`
}

// events long-polls for the events after seq, waiting up to wait for one.
func (h *hub) events(ctx context.Context, after int64, wait time.Duration) ([]event, error) {
	var evs []event
	path := fmt.Sprintf("/fake/events?after=%d&limit=1000&wait=%s", after, wait.Round(time.Millisecond))
	return evs, h.get(ctx, path, &evs)
}

// agentReported returns the $edgeAgent twin's reported properties of device.
func (h *hub) agentReported(ctx context.Context, device string) (reportedAgent, error) {
	var twin struct {
		Properties struct {
			Reported reportedAgent `json:"reported"`
		} `json:"properties"`
	}
	err := h.get(ctx, "/twins/"+url.PathEscape(device)+"/modules/"+url.PathEscape("$edgeAgent")+"?api-version=2021-04-12", &twin)
	if err != nil {
		return reportedAgent{}, err
	}
	return twin.Properties.Reported, nil
}

// reportedAgent is the part of the $edgeAgent reported properties the status line shows.
type reportedAgent struct {
	LastDesiredStatus *struct {
		Code int `json:"code"`
	} `json:"lastDesiredStatus"`
	SystemModules map[string]reportedModule `json:"systemModules"`
	Modules       map[string]reportedModule `json:"modules"`
}

type reportedModule struct {
	RuntimeStatus     string `json:"runtimeStatus"`
	StatusDescription string `json:"statusDescription"`
}

// errNoReport is returned before the agent has reported any module.
var errNoReport = errors.New("the edge agent has not reported its modules yet")
