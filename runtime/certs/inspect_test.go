package certs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, t0)
	b := mustLoad(t, o)
	keyThenCert := filepath.Join(dir, "key-then-cert.pem")
	if err := os.WriteFile(keyThenCert, append(fileBytes(t, dir, DefaultKeyFile), fileBytes(t, dir, DefaultCertFile)...), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want Info
	}{
		{"CA", o.CAPath(), Info{Subject: "CN=Outpost edge CA,O=Outpost", Issuer: "CN=Outpost edge CA,O=Outpost",
			IsCA: true, NotBefore: b.CA.NotBefore, NotAfter: b.CA.NotAfter}},
		{"server", o.CertPath(), Info{Subject: "CN=edge.example,O=Outpost", Issuer: "CN=Outpost edge CA,O=Outpost",
			NotBefore: b.Cert.Leaf.NotBefore, NotAfter: b.NotAfter,
			Names: []string{"edge.example", "localhost", "127.0.0.1", "::1"}}},
		{"certificate after a key", keyThenCert, Info{Subject: "CN=edge.example,O=Outpost", Issuer: "CN=Outpost edge CA,O=Outpost",
			NotBefore: b.Cert.Leaf.NotBefore, NotAfter: b.NotAfter,
			Names: []string{"edge.example", "localhost", "127.0.0.1", "::1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Inspect(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != tt.want.Subject || got.Issuer != tt.want.Issuer || got.IsCA != tt.want.IsCA ||
				!got.NotBefore.Equal(tt.want.NotBefore) || !got.NotAfter.Equal(tt.want.NotAfter) ||
				!slices.Equal(got.Names, tt.want.Names) {
				t.Fatalf("Inspect = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInspect_Errors(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, t0)
	mustLoad(t, o)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantIs  error
		wantMsg string
	}{
		{"missing file", filepath.Join(dir, "missing.pem"), os.ErrNotExist, "missing.pem"},
		{"not PEM", write("garbage.pem", []byte("hello")), ErrNoCertificate, "garbage.pem"},
		{"key only", filepath.Join(dir, DefaultKeyFile), ErrNoCertificate, DefaultKeyFile},
		{"corrupt certificate", write("corrupt.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), nil, "corrupt.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(tt.path)
			if err == nil || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Inspect err = %v, want %v naming %q", err, tt.wantIs, tt.wantMsg)
			}
		})
	}
}
