package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directory given to LoadOrCreate.
const (
	CAFile        = "edge-ca.pem"
	CAKeyFile     = "edge-ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// Lifetimes.
const (
	// CAValidity is how long a new edge CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// ServerValidity is how long a new server certificate is valid.
	ServerValidity = 365 * 24 * time.Hour
	// RenewBefore is how long before its expiry a server certificate is reissued.
	RenewBefore = 30 * 24 * time.Hour
	// backdate covers clients whose clock is a little behind ours.
	backdate = time.Hour
)

// Bundle is the edge CA and the server certificate it issued.
type Bundle struct {
	// CA is the edge CA certificate; CAPEM is the same in PEM, as written to CAFile.
	CA    *x509.Certificate
	CAPEM []byte
	// Server is the server certificate chain (leaf, then CA) with its key, ready for
	// tls.Config.Certificates.
	Server tls.Certificate
	// Leaf is the parsed server certificate.
	Leaf *x509.Certificate
}

// Names returns the subject alternative names the hub's server certificate needs: the
// gateway host name (when not empty), "localhost", "127.0.0.1" and "::1", without duplicates.
func Names(gatewayHostName string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if g := strings.TrimSpace(gatewayHostName); g != "" && !slices.Contains(names, g) {
		names = append([]string{g}, names...)
	}
	return names
}

// LoadOrCreate loads the edge CA and server certificate from dir, creating or renewing them
// as the package documentation describes, and returns them. dir must exist. names are the
// server certificate's subject alternative names (see Names); the first one is also its
// common name.
func LoadOrCreate(dir string, names []string, now time.Time) (*Bundle, error) {
	dns, ips, err := splitNames(names)
	if err != nil {
		return nil, err
	}
	ca, caKey, caPEM, err := loadCA(dir, now)
	if err != nil {
		// Missing, unreadable or expired: a new CA (and so a new server certificate).
		if ca, caKey, caPEM, err = createCA(now); err != nil {
			return nil, err
		}
		if err := writePair(dir, CAFile, caPEM, CAKeyFile, caKey); err != nil {
			return nil, err
		}
	}
	b := &Bundle{CA: ca, CAPEM: caPEM}
	server, leaf, err := loadServer(dir, ca, dns, ips, now)
	if err != nil {
		certPEM, key, err := createServer(ca, caKey, names[0], dns, ips, now)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, ServerFile, certPEM, ServerKeyFile, key); err != nil {
			return nil, err
		}
		if server, leaf, err = loadServer(dir, ca, dns, ips, now); err != nil {
			return nil, fmt.Errorf("server certificate just written to %s: %w", dir, err)
		}
	}
	// Send the CA along with the leaf: clients that were given only the CA file still
	// verify, and tools that print the chain show where it comes from.
	server.Certificate = append(server.Certificate, ca.Raw)
	b.Server, b.Leaf = server, leaf
	return b, nil
}

// TLSConfig returns a server configuration presenting the server certificate, TLS 1.2 or
// later (what the Azure SDKs negotiate).
func (b *Bundle) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{b.Server},
		MinVersion:   tls.VersionTLS12,
	}
}

// Pool returns a certificate pool holding only the edge CA, for clients and tests.
func (b *Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.CA)
	return p
}

func loadCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	switch {
	case !ok || !cert.IsCA:
		return nil, nil, nil, errors.New("not an ECDSA CA")
	case !now.Before(cert.NotAfter):
		return nil, nil, nil, errors.New("CA expired")
	}
	return cert, key, certPEM, nil
}

func loadServer(dir string, ca *x509.Certificate, dns []string, ips []net.IP, now time.Time) (tls.Certificate, *x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	switch {
	case !now.Add(RenewBefore).Before(leaf.NotAfter):
		return tls.Certificate{}, nil, errors.New("server certificate expires soon")
	case !bytes.Equal(leaf.RawIssuer, ca.RawSubject) || leaf.CheckSignatureFrom(ca) != nil:
		return tls.Certificate{}, nil, errors.New("server certificate issued by another CA")
	case !sameNames(leaf, dns, ips):
		return tls.Certificate{}, nil, errors.New("server certificate names differ")
	}
	pair.Certificate = pair.Certificate[:1]
	pair.Leaf = leaf
	return pair, leaf, nil
}

// splitNames separates DNS names from IP literals; DNS names are sorted and deduplicated,
// IPs keep their order.
func splitNames(names []string) ([]string, []net.IP, error) {
	if len(names) == 0 {
		return nil, nil, ErrNoNames
	}
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if n == "" || strings.TrimSpace(n) != n || strings.ContainsAny(n, " /\\@:,;") {
			return nil, nil, fmt.Errorf("name %q: %w", n, ErrInvalidName)
		}
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	slices.Sort(dns)
	return dns, ips, nil
}

func sameNames(c *x509.Certificate, dns []string, ips []net.IP) bool {
	have := slices.Clone(c.DNSNames)
	slices.Sort(have)
	if !slices.Equal(have, dns) || len(c.IPAddresses) != len(ips) {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func createCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("edge CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Outpost edge CA", Organization: []string{"Outpost"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("edge CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("edge CA certificate: %w", err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func createServer(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, dns []string, ips []net.IP, now time.Time) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(ServerValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Outpost"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key, nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n, nil
}

// writePair writes a key (0600) and then its certificate (0644), each atomically. The key
// goes first: a crash in between leaves a certificate that does not match its key, which the
// next LoadOrCreate detects and repairs.
func writePair(dir, certName string, certPEM []byte, keyName string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", keyName, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(filepath.Join(dir, keyName), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, certName), certPEM, 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
