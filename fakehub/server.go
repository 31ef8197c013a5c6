package fakehub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Files written to the data directory besides the certificates.
const (
	registryFile         = "registry.db"
	serviceConnStrFile   = "service-connection-string"
	defaultHostname      = "localhost"
	defaultListenAddress = "127.0.0.1:0"
)

// errNotRunning is returned by operations that need a started server.
var errNotRunning = errors.New("fake hub is not running (call Start first)")

// Start opens (or creates) the registry in DataDir, loads or creates the CA and the server
// certificate, creates the shared access policies on first start, writes ca.pem and
// service-connection-string, binds every listener and serves them. It returns once
// everything is serving. A stopped server may be started again.
func (s *Server) Start(ctx context.Context) error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.running {
		return errors.New("fake hub: already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake hub: start: %w", err)
	}
	s.applyDefaults()
	if err := s.start(); err != nil {
		s.teardown()
		return fmt.Errorf("fake hub: start: %w", err)
	}
	s.running = true
	s.pub.Store(&endpoints{
		mqtt: s.addrMQTT, plainMQTT: s.addrPlainMQTT, http: s.addrHTTP, plainHTTP: s.addrPlainHTTP,
		caFile: filepath.Join(s.dir, caCertFile), caPEM: s.pki.caPEM, clientTLS: s.clientTLS,
	})
	s.log.Info("fake IoT Hub started",
		"hostname", s.Hostname,
		"mqtt_tls", s.addrMQTT, "mqtt_plain", s.addrPlainMQTT,
		"https", s.addrHTTP, "http_plain", s.addrPlainHTTP,
		"ca_file", filepath.Join(s.dir, caCertFile),
		"service_connection_string_file", filepath.Join(s.dir, serviceConnStrFile),
		"data_dir", s.dir)
	return nil
}

// Run starts the server, waits for ctx to be done, then closes it.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Close drops every connection, stops the listeners and closes the registry. The temporary
// data directory, if Start made one, is removed. Close on a stopped server does nothing.
func (s *Server) Close() error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if !s.running {
		return nil
	}
	s.running = false
	err := s.teardown()
	s.log.Info("fake IoT Hub stopped")
	return err
}

func (s *Server) applyDefaults() {
	if s.Hostname == "" {
		s.Hostname = defaultHostname
	}
	if s.MQTTAddr == "" {
		s.MQTTAddr = defaultListenAddress
	}
	if s.HTTPAddr == "" {
		s.HTTPAddr = defaultListenAddress
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.log = s.Logger.With("component", "fakehub")
}

// now returns the injected clock's time in UTC.
func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func (s *Server) start() error {
	s.done = make(chan struct{})
	s.dir = s.DataDir
	if s.dir == "" {
		tmp, err := os.MkdirTemp("", "fakehub-")
		if err != nil {
			return fmt.Errorf("temp data dir: %w", err)
		}
		s.tempDir, s.dir = tmp, tmp
	} else if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	if err := s.openRegistry(); err != nil {
		return err
	}
	p, err := loadOrCreatePKI(s.dir, []string{s.Hostname, "localhost", "127.0.0.1", "::1"}, s.now())
	if err != nil {
		return fmt.Errorf("certificates in %s: %w", s.dir, err)
	}
	s.pki = p
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	s.clientTLS = &tls.Config{RootCAs: pool, ServerName: s.Hostname, MinVersion: tls.VersionTLS12}
	if err := writeFileAtomic(filepath.Join(s.dir, serviceConnStrFile), []byte(s.ServiceConnectionString()+"\n"), 0o600); err != nil {
		return err
	}
	if err := s.startMQTT(); err != nil {
		return err
	}
	return s.startHTTP()
}

// openRegistry opens the bbolt store and loads it into memory, creating the shared access
// policies on first start.
func (s *Server) openRegistry() error {
	db, err := openStore(filepath.Join(s.dir, registryFile))
	if err != nil {
		return err
	}
	snap, err := load(db)
	if err != nil {
		db.Close()
		return err
	}
	var b batch
	policies := map[string]sas.Keys{}
	for name, p := range snap.policies {
		policies[name] = sas.Keys{Primary: p.PrimaryKey, Secondary: p.SecondaryKey}
	}
	for _, name := range policyNames {
		if _, ok := policies[name]; ok {
			continue
		}
		keys, err := newKeys()
		if err != nil {
			db.Close()
			return err
		}
		policies[name] = keys
		b.put(bucketPolicies, name, policyRecord{PrimaryKey: keys.Primary, SecondaryKey: keys.Secondary})
	}
	if err := b.commit(db); err != nil {
		db.Close()
		return err
	}
	for _, d := range snap.devices {
		d.ConnectionState = stateDisconnected
	}
	for _, m := range snap.modules {
		m.ConnectionState = stateDisconnected
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.db = db
	s.policies = policies
	s.devices = snap.devices
	s.modules = snap.modules
	s.twins = snap.twins
	s.configs = snap.configs
	s.authed = map[*mqtt.Client]*conn{}
	s.conns = map[*mqtt.Client]*conn{}
	s.online = map[string]*conn{}
	s.c2d = map[string][]*c2dEntry{}
	s.calls = map[string]*methodCall{}
	s.changed = make(chan struct{})
	return nil
}

func (s *Server) startHTTP() error {
	serve := func(addr string, tlsConf *tls.Config) (string, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("listen %s: %w", addr, err)
		}
		srv := &http.Server{
			Handler:           s.serviceHandler(),
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.With("listener", "http").Handler(), slog.LevelDebug),
		}
		if tlsConf != nil {
			srv.TLSConfig = tlsConf
			ln = tls.NewListener(ln, tlsConf)
		}
		s.httpSrvs = append(s.httpSrvs, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("HTTP listener stopped", "address", ln.Addr().String(), "err", err)
			}
		}()
		return ln.Addr().String(), nil
	}
	var err error
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{s.pki.server},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if s.addrHTTP, err = serve(s.HTTPAddr, tlsConf); err != nil {
		return err
	}
	if s.PlainHTTPAddr != "" {
		if s.addrPlainHTTP, err = serve(s.PlainHTTPAddr, nil); err != nil {
			return err
		}
	}
	return nil
}

// teardown releases whatever start acquired; it is safe on a half-started server.
func (s *Server) teardown() error {
	var errs []error
	if s.done != nil {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	for _, srv := range s.httpSrvs {
		if err := srv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.httpSrvs = nil
	s.stopMQTT()
	s.wg.Wait()

	s.mu.Lock()
	db := s.db
	s.db = nil
	s.mu.Unlock()
	if db != nil {
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close registry: %w", err))
		}
	}
	if s.tempDir != "" {
		if err := os.RemoveAll(s.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("remove temp data dir: %w", err))
		}
		s.tempDir = ""
	}
	return errors.Join(errs...)
}

// endpoints is what the accessors report; Start publishes it once everything serves, so
// other goroutines may read it while Start or Close run.
type endpoints struct {
	mqtt, plainMQTT, http, plainHTTP string
	caFile                           string
	caPEM                            []byte
	clientTLS                        *tls.Config
}

func (s *Server) endpoints() endpoints {
	if e := s.pub.Load(); e != nil {
		return *e
	}
	return endpoints{}
}

// MQTTAddress returns the bound host:port of the MQTT over TLS listener ("" before Start).
func (s *Server) MQTTAddress() string { return s.endpoints().mqtt }

// PlainMQTTAddress returns the bound host:port of the plain MQTT listener, or "" when off.
func (s *Server) PlainMQTTAddress() string { return s.endpoints().plainMQTT }

// HTTPAddress returns the bound host:port of the HTTPS service API.
func (s *Server) HTTPAddress() string { return s.endpoints().http }

// PlainHTTPAddress returns the bound host:port of the plain HTTP service API, or "" when off.
func (s *Server) PlainHTTPAddress() string { return s.endpoints().plainHTTP }

// CAFile returns the path of the CA certificate (PEM) that clients must trust, DataDir/ca.pem.
func (s *Server) CAFile() string { return s.endpoints().caFile }

// CAPEM returns the CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.endpoints().caPEM...) }

// TLSConfig returns a client configuration that trusts the hub's CA, with ServerName set to
// Hostname. The caller may modify the copy it gets.
func (s *Server) TLSConfig() *tls.Config {
	c := s.endpoints().clientTLS
	if c == nil {
		return nil
	}
	return c.Clone()
}
