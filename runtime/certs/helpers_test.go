package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Short lifetimes, as the runtime's own tests will use.
const (
	testCALifetime     = 10 * time.Hour
	testServerLifetime = time.Hour
	testRenewBefore    = 10 * time.Minute
)

// testOptions returns options for dir with the short lifetimes and a clock fixed at now.
func testOptions(dir string, now time.Time) Options {
	return Options{
		Dir:            dir,
		Names:          Names("edge.example"),
		CALifetime:     testCALifetime,
		ServerLifetime: testServerLifetime,
		RenewBefore:    testRenewBefore,
		Now:            func() time.Time { return now },
	}
}

func mustLoad(t *testing.T, o Options) *Bundle {
	t.Helper()
	b, err := LoadOrCreate(o)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return b
}

// verify checks that b's server certificate verifies for name at now against roots.
func verify(b *Bundle, roots *x509.CertPool, name string, now time.Time) error {
	_, err := b.Cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now})
	return err
}

func sameKey(a, b *x509.Certificate) bool {
	return a.PublicKey.(*ecdsa.PublicKey).Equal(b.PublicKey)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func fileBytes(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }
