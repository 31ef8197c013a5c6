package fakehub

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
)

// Certificate files kept in DataDir.
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// renewBefore is how long before its expiry a certificate is renewed on Start, so a
// long-lived DataDir keeps working. Lifetimes are package certs' defaults (CA 10 years,
// server 1 year).
const renewBefore = 24 * time.Hour

// pki is the hub's certificate authority and the server certificate it issued.
type pki struct {
	ca     *x509.Certificate
	caPEM  []byte
	server tls.Certificate // leaf, then CA
}

// loadOrCreatePKI reads the CA and server certificate from dir, creating or renewing them
// as package certs does: the CA is kept while valid (and re-signed with its key shortly
// before it expires), the server certificate is reissued when it is missing, expiring,
// issued by another CA or for other names than sans.
func loadOrCreatePKI(dir string, sans []string, now time.Time) (pki, error) {
	b, err := certs.LoadOrCreate(certs.Options{
		Dir:    dir,
		CAFile: caCertFile, CAKeyFile: caKeyFile, CertFile: serverCertFile, KeyFile: serverKeyFile,
		Names:        sans,
		CACommonName: "Outpost fake IoT Hub CA",
		// Room for one intermediate below the CA: certificateAuthority devices may chain
		// through one (mqtt_auth.go).
		CAMaxPathLen: 1,
		RenewBefore:  renewBefore,
		Now:          func() time.Time { return now },
	})
	if err != nil {
		return pki{}, err
	}
	return pki{ca: b.CA, caPEM: b.CAPEM, server: b.Cert}, nil
}

// writeFileAtomic writes data to a temporary file and renames it over path, so a crash never
// leaves a half-written connection string behind.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
