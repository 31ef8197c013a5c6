package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // registers the "inmemory" storage driver
	"github.com/sirupsen/logrus"
)

// benchRegistry is an image registry (distribution/v3, in memory, no authentication)
// served by the harness on a random loopback port, as runtime/agent/docker/dockertest
// serves one to the tests: the Docker Engine trusts 127.0.0.0/8 registries over plain
// HTTP, so the agent's pulls reach it with no configuration. The agent scenarios push the
// images of scripts/images.sh there and deploy them from it, so that a deployment pulls
// (with imagePullPolicy on-create) as it would from a real registry.
type benchRegistry struct {
	addr   string
	srv    *http.Server
	done   chan error
	app    *handlers.App
	cancel context.CancelFunc
}

// startRegistry serves a registry on 127.0.0.1:0 until close.
func startRegistry() (*benchRegistry, error) {
	// The registry logs every request through logrus's global logger; the harness reports
	// what matters itself.
	logrus.SetLevel(logrus.FatalLevel)
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	config := &configuration.Configuration{Storage: configuration.Storage{"inmemory": configuration.Parameters{}}}
	config.HTTP.Secret = hex.EncodeToString(secret)
	config.Log.AccessLog.Disabled = true
	ctx, cancel := context.WithCancel(context.Background())
	app, err := newRegistryApp(ctx, config)
	if err != nil {
		cancel()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("registry listener: %w", err)
	}
	r := &benchRegistry{
		addr:   ln.Addr().String(),
		srv:    &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan error, 1),
		app:    app,
		cancel: cancel,
	}
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// newRegistryApp builds the registry application; handlers.NewApp panics on a
// configuration it cannot use.
func newRegistryApp(ctx context.Context, config *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry configuration refused: %v", p)
		}
	}()
	return handlers.NewApp(ctx, config), nil
}

// close stops serving.
func (r *benchRegistry) close() error {
	err := r.srv.Close()
	if serveErr := <-r.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	err = errors.Join(err, r.app.Shutdown())
	r.cancel()
	return err
}
