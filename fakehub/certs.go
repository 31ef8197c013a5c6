package fakehub

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
	"time"
)

// Certificate files kept in DataDir.
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// Certificate lifetimes. The server certificate is renewed on Start once it has expired (or
// expires within renewBefore), so a long-lived DataDir keeps working.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
	renewBefore    = 24 * time.Hour
	// backdate covers clients whose clock is a little behind ours.
	backdate = time.Hour
)

// pki is the hub's certificate authority and the server certificate it issued.
type pki struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	server tls.Certificate
}

// loadOrCreatePKI reads the CA and server certificate from dir, creating or renewing them
// when they are missing, unreadable, expired, or (server only) issued for other names or by
// another CA. The CA is only regenerated when it is missing, unreadable or expired, since
// every client that trusts it would have to be given the new one.
func loadOrCreatePKI(dir string, sans []string, now time.Time) (pki, error) {
	var p pki
	ca, caKey, caPEM, err := loadCA(dir, now)
	if err != nil {
		ca, caKey, caPEM, err = createCA(now)
		if err != nil {
			return pki{}, err
		}
		if err := writePEMFiles(dir, caCertFile, caPEM, caKeyFile, caKey); err != nil {
			return pki{}, err
		}
	}
	p.ca, p.caKey, p.caPEM = ca, caKey, caPEM

	server, err := loadServerCert(dir, ca, sans, now)
	if err != nil {
		var certPEM []byte
		var key *ecdsa.PrivateKey
		certPEM, key, err = createServerCert(ca, caKey, sans, now)
		if err != nil {
			return pki{}, err
		}
		if err := writePEMFiles(dir, serverCertFile, certPEM, serverKeyFile, key); err != nil {
			return pki{}, err
		}
		keyPEM, err := keyToPEM(key)
		if err != nil {
			return pki{}, err
		}
		server, err = tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return pki{}, fmt.Errorf("server certificate: %w", err)
		}
	}
	p.server = server
	return p, nil
}

func loadCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
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
	if !ok || !cert.IsCA {
		return nil, nil, nil, errors.New("not an ECDSA CA")
	}
	if now.After(cert.NotAfter) {
		return nil, nil, nil, errors.New("CA expired")
	}
	return cert, key, certPEM, nil
}

func loadServerCert(dir string, ca *x509.Certificate, sans []string, now time.Time) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile))
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, err
	}
	switch {
	case now.Add(renewBefore).After(cert.NotAfter):
		return tls.Certificate{}, errors.New("server certificate expired")
	case !bytes.Equal(cert.RawIssuer, ca.RawSubject) || cert.CheckSignatureFrom(ca) != nil:
		return tls.Certificate{}, errors.New("server certificate issued by another CA")
	case !sameSANs(cert, sans):
		return tls.Certificate{}, errors.New("server certificate names differ")
	}
	return pair, nil
}

// sameSANs reports whether cert carries exactly the names in sans.
func sameSANs(cert *x509.Certificate, sans []string) bool {
	dns, ips := splitSANs(sans)
	have := slices.Clone(cert.DNSNames)
	slices.Sort(have)
	if !slices.Equal(have, dns) {
		return false
	}
	var haveIPs []string
	for _, ip := range cert.IPAddresses {
		haveIPs = append(haveIPs, ip.String())
	}
	slices.Sort(haveIPs)
	var wantIPs []string
	for _, ip := range ips {
		wantIPs = append(wantIPs, ip.String())
	}
	slices.Sort(wantIPs)
	return slices.Equal(haveIPs, wantIPs)
}

// splitSANs separates DNS names from IP addresses, sorted and without duplicates.
func splitSANs(sans []string) ([]string, []net.IP) {
	var dns []string
	var ips []net.IP
	seen := map[string]bool{}
	for _, n := range sans {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	slices.Sort(dns)
	return dns, ips
}

func createCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Outpost fake IoT Hub CA", Organization: []string{"Outpost"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func createServerCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, sans []string, now time.Time) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("server key: %w", err)
	}
	dns, ips := splitSANs(sans)
	cn := "localhost"
	if len(sans) > 0 {
		cn = sans[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Outpost"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(serverValidity),
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

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms; a fixed serial still works.
		return big.NewInt(1)
	}
	return n
}

func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal EC key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writePEMFiles writes a certificate (0644) and its key (0600) atomically.
func writePEMFiles(dir, certName string, certPEM []byte, keyName string, key *ecdsa.PrivateKey) error {
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, keyName), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, certName), certPEM, 0o644)
}

// writeFileAtomic writes data to a temporary file and renames it over path, so a crash never
// leaves a half-written certificate or connection string behind.
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
