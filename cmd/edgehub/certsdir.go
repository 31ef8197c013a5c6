package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
)

// How the hub follows the certificates of --certs-dir, which another process renews.
const (
	// certsReloadInterval is how often the files are read again. Renewals happen weeks
	// before expiry (the agent's --cert-renew-before), so a minute is plenty, and reading
	// three small files a minute costs nothing.
	certsReloadInterval = time.Minute
	// certsReloadMin bounds the interval from below: a certificate that expires within ten
	// minutes (short lifetimes, for tests or demos: the agent's --cert-server-lifetime) is
	// read again every tenth of its remaining validity, so that its renewal, due before
	// that, is served in time; but not more often than every second.
	certsReloadMin = time.Second
	// certsStartWait bounds how long the hub waits at start for usable files: the agent
	// may be creating them (its first pass runs while it starts the modules).
	certsStartWait = 10 * time.Second
	// certsStartRetry is the pause between attempts during certsStartWait.
	certsStartRetry = 200 * time.Millisecond
)

// errCertsMismatch reports a server certificate that the CA file did not sign: a renewal
// seen half-way (the renewer writes the CA, then the server key, then the certificate).
var errCertsMismatch = errors.New("the server certificate is not signed by the CA")

// serverCerts is where the hub's TLS certificate comes from: its own certificates in the
// data directory (created and renewed by the hub), or those of --certs-dir (read only).
type serverCerts struct {
	tls    *tls.Config                     // hands the current certificate to new handshakes
	run    func(ctx context.Context) error // follows renewals until ctx is done
	caPath string                          // the CA file clients must trust
}

// newServerCerts sets up the hub's certificates. Without --certs-dir the hub keeps its own
// in the data directory, as package certs does: created when missing, renewed when due.
// With --certs-dir it only reads the edge CA and the server certificate there, which
// edgectl setup creates and the edge agent (edgeagent --certs-dir) renews: one process
// renews, the hub follows, so the two never race on the same files.
func newServerCerts(ctx context.Context, c config, logger *slog.Logger) (serverCerts, error) {
	if c.certsDir == "" {
		opts := certs.Options{Dir: c.dataDir, Names: certs.Names(c.gatewayHostName), Logger: logger}
		m, err := certs.New(opts)
		if err != nil {
			return serverCerts{}, fmt.Errorf("certificates: %w", err)
		}
		return serverCerts{tls: m.TLSConfig(), run: m.Run, caPath: opts.CAPath()}, nil
	}
	d, err := openCertsDir(ctx, c.certsDir, certsStartWait, logger)
	if err != nil {
		return serverCerts{}, err
	}
	if err := d.current().Leaf.VerifyHostname(c.gatewayHostName); err != nil {
		// Not fatal: clients dialling another name (localhost, 127.0.0.1) still verify.
		logger.Warn("the server certificate of --certs-dir does not cover --gateway-hostname; clients dialling that name will refuse it",
			"dir", c.certsDir, "gateway_hostname", c.gatewayHostName, "names", d.current().Leaf.DNSNames)
	}
	return serverCerts{tls: d.tlsConfig(), run: d.Run, caPath: d.caPath()}, nil
}

// certsDir serves the server certificate of a directory it never writes, reading the files
// again every certsReloadInterval (more often for a short-lived certificate, see
// reloadInterval) so that a renewal reaches new handshakes without a
// restart (connected clients keep theirs until they reconnect).
type certsDir struct {
	dir    string
	logger *slog.Logger
	cur    atomic.Pointer[loadedCerts]
}

// loadedCerts is one consistent reading of the files.
type loadedCerts struct {
	raw  []byte // the three files' contents, to notice a change
	cert tls.Certificate
}

// openCertsDir reads dir, waiting up to wait for usable files.
func openCertsDir(ctx context.Context, dir string, wait time.Duration, logger *slog.Logger) (*certsDir, error) {
	d := &certsDir{dir: dir, logger: logger}
	deadline := time.Now().Add(wait)
	for {
		l, err := readCertsDir(dir)
		if err == nil {
			d.cur.Store(l)
			logger.Info("server certificate from --certs-dir (renewed by the edge agent, not by the hub)",
				"dir", dir, "expires", l.cert.Leaf.NotAfter)
			return d, nil
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("--certs-dir %q: %w (edgectl setup creates these files, the edge agent renews them)", dir, err)
		}
		t := time.NewTimer(certsStartRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("--certs-dir %q: %w", dir, err)
		case <-t.C:
		}
	}
}

func (d *certsDir) current() *tls.Certificate { return &d.cur.Load().cert }

func (d *certsDir) caPath() string { return filepath.Join(d.dir, certs.DefaultCAFile) }

// tlsConfig is a server configuration presenting the current certificate, with the same
// settings as certs.Manager.TLSConfig.
func (d *certsDir) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return d.current(), nil },
		MinVersion:     tls.VersionTLS12,
	}
}

// reload reads the files again and makes them current when they changed and are
// consistent. It reports whether the certificate changed; on error the current one stays.
func (d *certsDir) reload() (bool, error) {
	l, err := readCertsDir(d.dir)
	if err != nil {
		return false, err
	}
	if bytes.Equal(l.raw, d.cur.Load().raw) {
		return false, nil
	}
	d.cur.Store(l)
	return true, nil
}

// reloadInterval is how long to wait before reading the files again, at now, while serving
// a certificate that expires at notAfter: certsReloadInterval, or a tenth of the remaining
// validity when that is shorter, but at least certsReloadMin.
func reloadInterval(now, notAfter time.Time) time.Duration {
	return min(certsReloadInterval, max(notAfter.Sub(now)/10, certsReloadMin))
}

// Run reloads the files every reloadInterval until ctx is done, then returns nil. A failed
// reading is logged (the current certificate keeps serving) and tried again at the next
// tick: a renewal seen half-way is complete by then.
func (d *certsDir) Run(ctx context.Context) error {
	for {
		wait := reloadInterval(time.Now(), d.current().Leaf.NotAfter)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		changed, err := d.reload()
		switch {
		case err != nil:
			d.logger.Warn("cannot read the certificates of --certs-dir; the current certificate keeps serving",
				"dir", d.dir, "retry_in", reloadInterval(time.Now(), d.current().Leaf.NotAfter), "err", err)
		case changed:
			d.logger.Info("renewed server certificate from --certs-dir now serving", "dir", d.dir,
				"expires", d.current().Leaf.NotAfter)
		}
	}
}

// readCertsDir reads the CA certificate, the server certificate and its key in dir (package
// certs' default names) and returns the chain to serve: the server certificate, then the CA.
func readCertsDir(dir string) (*loadedCerts, error) {
	var files [3][]byte
	for i, name := range []string{certs.DefaultCAFile, certs.DefaultCertFile, certs.DefaultKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files[i] = b
	}
	caPEM, certPEM, keyPEM := files[0], files[1], files[2]
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certs.DefaultCertFile, certs.DefaultKeyFile, err)
	}
	ca, err := parseFirstCert(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certs.DefaultCAFile, err)
	}
	if err := cert.Leaf.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", certs.DefaultCertFile, errCertsMismatch, err)
	}
	// Send the CA along with the leaf, as certs.Manager does.
	cert.Certificate = append(cert.Certificate[:1:1], ca.Raw)
	return &loadedCerts{raw: bytes.Join(files[:], nil), cert: cert}, nil
}

// parseFirstCert parses the first CERTIFICATE block of a PEM file.
func parseFirstCert(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		switch {
		case block == nil:
			return nil, certs.ErrNoCertificate
		case block.Type == "CERTIFICATE":
			return x509.ParseCertificate(block.Bytes)
		}
	}
}
