package modulemain

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// EnvPort names the MQTT/TLS port of the hub when it is not 8883: the connection string has
// no place for a port, and an Outpost edge hub run as a plain process, or a fake hub in
// tests, listens elsewhere. Azure's runtime never sets it.
const EnvPort = "OUTPOST_MQTT_PORT"

// NewClient creates the module client from the environment the edge agent injects, with the
// rules moduleclient.NewFromEnvironment applies to the process environment, read here through
// getenv so that tests need no real environment:
//
//   - the connection string is EdgeHubConnectionString, else IotHubConnectionString, and must
//     name a module (ModuleId);
//   - EdgeModuleCACertificateFile, when set, is the CA that signed the hub's certificate;
//   - OUTPOST_MQTT_PORT, when set, replaces port 8883.
//
// Every configuration problem (nothing set, only the workload API variables set, a malformed
// string, an unreadable CA file) is an error wrapping ErrConfig that names the variable.
func NewClient(getenv func(string) string, logger *slog.Logger) (*moduleclient.Client, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	name := moduleclient.EnvEdgeHubConnectionString
	cs := get(name)
	if cs == "" {
		name = moduleclient.EnvIotHubConnectionString
		cs = get(name)
	}
	if cs == "" {
		if get(moduleclient.EnvWorkloadURI) != "" {
			return nil, fmt.Errorf("%w: %s is set but %s is not: authenticating through the IoT Edge workload API is not supported; give the module %s (and %s)",
				ErrConfig, moduleclient.EnvWorkloadURI, moduleclient.EnvEdgeHubConnectionString,
				moduleclient.EnvEdgeHubConnectionString, moduleclient.EnvCACertificateFile)
		}
		return nil, fmt.Errorf("%w: neither %s nor %s is set", ErrConfig,
			moduleclient.EnvEdgeHubConnectionString, moduleclient.EnvIotHubConnectionString)
	}
	opts := moduleclient.Options{CAFile: get(moduleclient.EnvCACertificateFile), Logger: logger}
	if p := get(EnvPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: environment variable %s=%q: want a TCP port (1-65535)", ErrConfig, EnvPort, p)
		}
		opts.Port = n
	}
	c, err := moduleclient.NewFromConnectionString(cs, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: environment variable %s: %w", ErrConfig, name, err)
	}
	if _, module := c.Identity(); module == "" {
		c.Close()
		return nil, fmt.Errorf("%w: environment variable %s names a device, not a module (no ModuleId)", ErrConfig, name)
	}
	return c, nil
}

// retryPolicy bounds the attempts Connect makes and the back-off between them.
type retryPolicy struct {
	attempts int
	min, max time.Duration
}

// connectRetry is Azure's module start-up retry, roughly: a handful of attempts over half a
// minute (their ModuleUtil retries 5 times with exponential back-off). A hub that is still
// starting gets the time to come up; a wrong key or an unknown identity ends the module
// with ExitFailure, and the agent's restart policy takes it from there.
var connectRetry = retryPolicy{attempts: 6, min: time.Second, max: 16 * time.Second}

// Connect opens the client's first connection, retrying failed attempts with exponential
// back-off (1 s, 2 s, ... 16 s; six attempts in all). It returns ctx.Err() as soon as ctx is
// done, and the last attempt's error when all failed. After this first connection the
// client reconnects by itself.
func Connect(ctx context.Context, c *moduleclient.Client, logger *slog.Logger) error {
	return connect(ctx, c.Connect, logger, connectRetry)
}

// connect is Connect with the dial and the policy injected.
func connect(ctx context.Context, dial func(context.Context) error, logger *slog.Logger, p retryPolicy) error {
	wait := p.min
	for attempt := 1; ; attempt++ {
		err := dial(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= p.attempts {
			return fmt.Errorf("connect: giving up after %d attempts: %w", attempt, err)
		}
		logger.Warn("connection attempt failed; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, p.max)
	}
}

// Stopped reports whether err only says that the module was asked to stop (ctx cancelled,
// client closed): such an error ends run with ExitOK.
func Stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, moduleclient.ErrClosed))
}

// NewBatchID returns a random UUID (version 4), the batchId Azure's test modules put on
// every message so that a run's messages can be told from an earlier run's.
func NewBatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
