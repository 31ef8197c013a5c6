package moduleclient

import (
	"crypto/x509"
	"os"
	"testing"
)

// TestDialTLS_RereadsCAFile: the edge runtime renews its CA and rewrites
// EdgeModuleCACertificateFile; each new connection trusts the file as it is then, and a
// file that cannot be read for a moment does not lose the last good CA.
func TestDialTLS_RereadsCAFile(t *testing.T) {
	path := writeCA(t)
	c, err := NewFromConnectionString("HostName=hub.example;DeviceId=edge1;ModuleId=filter;SharedAccessKey="+testKey+";GatewayHostName=edgehub",
		Options{CAFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool := func(pem []byte) *x509.CertPool {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(pem) {
			t.Fatal("test CA is not PEM")
		}
		return p
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.dialTLS(); !got.RootCAs.Equal(pool(first)) {
		t.Fatal("first dial does not trust the CA file")
	}

	renewed := selfSignedPEM(t)
	if err := os.WriteFile(path, renewed, 0o600); err != nil {
		t.Fatal(err)
	}
	got := c.dialTLS()
	if !got.RootCAs.Equal(pool(renewed)) || got.RootCAs.Equal(pool(first)) {
		t.Fatal("a dial after the CA file was rewritten does not trust the renewed CA (only)")
	}
	if got.ServerName != "edgehub" {
		t.Errorf("ServerName = %q after the re-read, want the gateway host name", got.ServerName)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := c.dialTLS(); !got.RootCAs.Equal(pool(renewed)) {
		t.Error("with the CA file gone for a moment the client dropped the last good CA")
	}
}
