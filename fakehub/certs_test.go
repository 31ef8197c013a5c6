package fakehub_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertificates(t *testing.T) {
	dir := t.TempDir()
	start := func(host string, now func() time.Time) *fakehub.Server {
		t.Helper()
		s := &fakehub.Server{DataDir: dir, Hostname: host, Now: now}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start("hub.example", nil)
	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	server := readCert(t, filepath.Join(dir, "server.pem"))
	if !ca.IsCA || server.CheckSignatureFrom(ca) != nil {
		t.Fatal("server certificate not issued by the CA")
	}
	if got := ca.NotAfter.Sub(ca.NotBefore); got < 10*365*24*time.Hour {
		t.Errorf("CA validity %v", got)
	}
	if got := server.NotAfter.Sub(server.NotBefore); got < 365*24*time.Hour || got > 366*24*time.Hour+2*time.Hour {
		t.Errorf("server validity %v", got)
	}
	if !slices.Contains(server.DNSNames, "hub.example") || !slices.Contains(server.DNSNames, "localhost") {
		t.Errorf("DNS names %v", server.DNSNames)
	}
	var ips []string
	for _, ip := range server.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Contains(ips, "127.0.0.1") || !slices.Contains(ips, "::1") {
		t.Errorf("IP addresses %v", ips)
	}
	for _, key := range []string{"ca-key.pem", "server-key.pem"} {
		if info, err := os.Stat(filepath.Join(dir, key)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, %v", key, info.Mode(), err)
		}
	}
	if !bytes.Equal(s.CAPEM(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})) || s.CAFile() != filepath.Join(dir, "ca.pem") {
		t.Error("CAPEM/CAFile do not match ca.pem")
	}
	// TLSConfig trusts the hub for the host name it serves.
	conn, err := tlsDial(s.HTTPAddress(), s)
	if err != nil {
		t.Fatalf("TLS with Server.TLSConfig: %v", err)
	}
	conn.Close()
	s.Close()

	// Another host name: new server certificate, same CA.
	s = start("other.example", nil)
	server2 := readCert(t, filepath.Join(dir, "server.pem"))
	if !slices.Contains(server2.DNSNames, "other.example") || bytes.Equal(server2.Raw, server.Raw) {
		t.Errorf("server certificate not reissued for the new host name: %v", server2.DNSNames)
	}
	if !bytes.Equal(readCert(t, filepath.Join(dir, "ca.pem")).Raw, ca.Raw) {
		t.Error("CA regenerated when only the host name changed")
	}
	s.Close()

	// Two years later: the server certificate expired and is renewed; the CA is kept.
	later := time.Now().Add(2 * 365 * 24 * time.Hour)
	s = start("other.example", func() time.Time { return later })
	server3 := readCert(t, filepath.Join(dir, "server.pem"))
	if !server3.NotAfter.After(later) || !bytes.Equal(readCert(t, filepath.Join(dir, "ca.pem")).Raw, ca.Raw) {
		t.Errorf("renewal: server until %v, CA kept %v", server3.NotAfter, bytes.Equal(readCert(t, filepath.Join(dir, "ca.pem")).Raw, ca.Raw))
	}
	s.Close()

	// Half a day before the CA expires: the CA is renewed with its key, so a client that
	// still holds the old ca.pem keeps trusting the hub.
	nearEnd := ca.NotAfter.Add(-12 * time.Hour)
	s = start("other.example", func() time.Time { return nearEnd })
	defer s.Close()
	ca2 := readCert(t, filepath.Join(dir, "ca.pem"))
	if bytes.Equal(ca2.Raw, ca.Raw) || !ca2.NotAfter.After(ca.NotAfter) || !ca2.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(ca.PublicKey) {
		t.Fatalf("CA not renewed with its key: until %v", ca2.NotAfter)
	}
	oldPool := x509.NewCertPool()
	oldPool.AddCert(ca)
	c, err := tls.Dial("tcp", s.HTTPAddress(), &tls.Config{RootCAs: oldPool, ServerName: "other.example",
		Time: func() time.Time { return nearEnd }})
	if err != nil {
		t.Fatalf("TLS trusting the old ca.pem after the CA renewal: %v", err)
	}
	c.Close()
}

func tlsDial(addr string, s *fakehub.Server) (net.Conn, error) {
	conf := s.TLSConfig()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}
