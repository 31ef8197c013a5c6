package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // registers the "htpasswd" access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // registers the "inmemory" storage driver
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"
)

// Registry is an image registry (registry API v2) served in-process on a
// random loopback port, storing images in memory. Start it with
// StartRegistry; it stops when the test ends.
type Registry struct {
	addr           string
	user, password string
	http           *http.Client
}

// StartRegistry starts a registry on 127.0.0.1:0. With a user, every
// request needs HTTP basic authentication as user with password (htpasswd,
// bcrypt); with user "" the registry is open.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	// The registry logs through logrus's global logger: every request at
	// info level, every authentication challenge (the normal first step of
	// a client) as a warning, every 404 as an error. The tests see the
	// registry's answers through the engine; keep their output readable.
	logrus.SetLevel(logrus.FatalLevel)
	secret := make([]byte, 16)
	rand.Read(secret)
	config := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}},
	}
	config.HTTP.Secret = hex.EncodeToString(secret)
	config.Log.AccessLog.Disabled = true
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("dockertest: hash registry password: %v", err)
		}
		file := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(file, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
			t.Fatal(err)
		}
		config.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "dockertest", "path": file}}
	}

	ctx, cancel := context.WithCancel(context.Background())
	app, err := newApp(ctx, config)
	if err != nil {
		cancel()
		t.Fatalf("dockertest: registry: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("dockertest: registry listener: %v", err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("dockertest: registry: %v", err)
		}
		app.Shutdown()
		cancel()
	})
	return &Registry{
		addr:     ln.Addr().String(),
		user:     user,
		password: password,
		http:     &http.Client{Timeout: time.Minute},
	}
}

// newApp builds the registry application; handlers.NewApp panics on a
// configuration it cannot use.
func newApp(ctx context.Context, config *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("configuration refused: %v", p)
		}
	}()
	return handlers.NewApp(ctx, config), nil
}

// Addr is the registry's host:port, "127.0.0.1:<port>": the registry part
// of the image references it serves, and the address of registry
// credentials for it.
func (r *Registry) Addr() string { return r.addr }
