package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// dialTimeout bounds connecting to the management socket: it is local, so
// a slow connect means nobody is there.
const dialTimeout = 2 * time.Second

// requestTimeout bounds a management request that is not a log stream.
const requestTimeout = 30 * time.Second

// unavailableError says the agent cannot be reached on its socket, why, and
// what to do (exit code 4).
type unavailableError struct {
	socket string
	// state is STOPPED (nobody answers) or UNAVAILABLE (the socket cannot be
	// used, or answers something else).
	state  string
	reason string
	err    error
}

func (e *unavailableError) Error() string { return e.reason }
func (e *unavailableError) Unwrap() error { return e.err }

// agentClient talks to the management API.
type agentClient struct {
	socket string
	http   *http.Client
	// startHint says how to start the agent, for error messages.
	startHint string
}

func newAgentClient(socket, startHint string) *agentClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	return &agentClient{socket: socket, http: &http.Client{Transport: tr}, startHint: startHint}
}

// client returns the management client for this run.
func (a *app) client() *agentClient {
	return newAgentClient(a.socketPath(), a.startHint())
}

// startHint is the command that starts the agent with this data directory.
func (a *app) startHint() string {
	if _, err := readSetup(a.dataDir); err == nil {
		return fmt.Sprintf("edgectl --data-dir %s start (or start its service)", a.dataDir)
	}
	csFile := "FILE"
	if ec, err := readConfigFile(a.dataDir); err == nil && ec.ConnectionStringFile != "" {
		csFile = ec.ConnectionStringFile
	}
	return fmt.Sprintf("edgeagent --data-dir %s --connection-string-file %s (or start its service)", a.dataDir, csFile)
}

// classify turns a failure to talk to the socket into an unavailableError.
func (c *agentClient) classify(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return &unavailableError{socket: c.socket, state: stateStopped, err: err,
			reason: fmt.Sprintf("the agent is not running (nothing answers on %s): start it with %s", c.socket, c.startHint)}
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &unavailableError{socket: c.socket, state: stateUnavailable, err: err,
			reason: fmt.Sprintf("permission denied on %s: run edgectl as the agent's user, or with sudo", c.socket)}
	}
	return &unavailableError{socket: c.socket, state: stateUnavailable, err: err,
		reason: fmt.Sprintf("cannot talk to the agent on %s: %v", c.socket, err)}
}

// do sends a request and returns the answer when its status is 2xx; other
// answers become an error carrying the agent's message.
func (c *agentClient) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	u := "http://agent" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.classify(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var me agent.ManagementError
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &me) == nil && me.Message != "" {
		msg = me.Message
	}
	return nil, &apiError{status: resp.StatusCode, message: msg}
}

// apiError is an error answer of the management API.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return e.message }

// getJSON GETs path and decodes the JSON answer into v.
func (c *agentClient) getJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return &unavailableError{socket: c.socket, state: stateUnavailable, err: err,
			reason: fmt.Sprintf("the agent on %s answered %s with something that is not its API: %v", c.socket, path, err)}
	}
	return nil
}

// Modules is GET /modules.
func (c *agentClient) Modules(ctx context.Context) ([]agent.ModuleInfo, error) {
	var mods []agent.ModuleInfo
	return mods, c.getJSON(ctx, "/modules", &mods)
}

// Status is GET /status.
func (c *agentClient) Status(ctx context.Context) (agent.AgentStatus, error) {
	var st agent.AgentStatus
	return st, c.getJSON(ctx, "/status", &st)
}

// Config is GET /config.
func (c *agentClient) Config(ctx context.Context) (agent.EffectiveConfig, error) {
	var ec agent.EffectiveConfig
	return ec, c.getJSON(ctx, "/config", &ec)
}

// Restart is POST /modules/{name}/restart.
func (c *agentClient) Restart(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a stop may take its grace period
	defer cancel()
	resp, err := c.do(ctx, http.MethodPost, "/modules/"+url.PathEscape(name)+"/restart", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Logs is GET /modules/{name}/logs; the caller closes the stream, which
// ends with ctx when following.
func (c *agentClient) Logs(ctx context.Context, name string, q url.Values) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, "/modules/"+url.PathEscape(name)+"/logs", q)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
