package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreate_CreatesVerifiableChain(t *testing.T) {
	dir := t.TempDir()
	b := mustLoad(t, testOptions(dir, t0))
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{DefaultCAFile, 0o644}, {DefaultCAKeyFile, 0o600}, {DefaultCertFile, 0o644}, {DefaultKeyFile, 0o600}} {
		if got := mode(t, filepath.Join(dir, f.name)); got != f.mode {
			t.Errorf("%s mode = %v, want %v", f.name, got, f.mode)
		}
	}
	for _, host := range Names("edge.example") {
		t.Run(host, func(t *testing.T) {
			if err := verify(b, b.Pool(), host, t0); err != nil {
				t.Fatalf("verify for %q: %v", host, err)
			}
		})
	}
	if verify(b, b.Pool(), "other.example", t0) == nil {
		t.Error("certificate verified for a name it was not issued for")
	}
	if len(b.Cert.Certificate) != 2 || !sameBytes(b.Cert.Certificate[1], b.CA.Raw) {
		t.Errorf("chain has %d certificates, want leaf + CA", len(b.Cert.Certificate))
	}
	if !sameBytes(b.CAPEM, fileBytes(t, dir, DefaultCAFile)) {
		t.Error("CAPEM differs from the CA file")
	}
	if b.Cert.Leaf.Subject.CommonName != "edge.example" || b.CA.Subject.CommonName != DefaultCACommonName {
		t.Errorf("subjects %q and %q", b.Cert.Leaf.Subject, b.CA.Subject)
	}
	if !b.CA.IsCA || b.CA.MaxPathLen != 0 || !b.CA.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA %v MaxPathLen %d", b.CA.IsCA, b.CA.MaxPathLen)
	}
	if want := t0.Add(testServerLifetime); !b.NotAfter.Equal(want) || !b.Cert.Leaf.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", b.NotAfter, want)
	}
	if want := t0.Add(testServerLifetime - testRenewBefore); !b.RenewAt.Equal(want) {
		t.Errorf("RenewAt = %v, want %v", b.RenewAt, want)
	}
	if want := t0.Add(testCALifetime); !b.CA.NotAfter.Equal(want) {
		t.Errorf("CA NotAfter = %v, want %v", b.CA.NotAfter, want)
	}
}

func TestLoadOrCreate_Renewal(t *testing.T) {
	// What happens to the CA in the second pass.
	const (
		caKept    = "kept"
		caRenewed = "renewed, same key"
		caNew     = "new key"
	)
	other := t.TempDir() // a second, unrelated CA and server certificate
	mustLoad(t, testOptions(other, t0))
	tests := []struct {
		name       string
		names      []string
		at         time.Duration // after t0
		prepare    func(t *testing.T, dir string)
		ca         string
		sameServer bool
	}{
		{name: "kept as is", at: 30 * time.Minute, ca: caKept, sameServer: true},
		{name: "just before the server renewal point", at: testServerLifetime - testRenewBefore - time.Second, ca: caKept, sameServer: true},
		{name: "server due", at: testServerLifetime - testRenewBefore, ca: caKept},
		{name: "server expired", at: 3 * testServerLifetime, ca: caKept},
		{name: "names changed", names: Names("other.example"), at: time.Minute, ca: caKept},
		{name: "name added", names: append(Names("edge.example"), "10.0.0.7"), at: time.Minute, ca: caKept},
		{name: "server key lost", prepare: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, DefaultKeyFile))
		}, ca: caKept},
		{name: "server key does not match", prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other, DefaultKeyFile), filepath.Join(dir, DefaultKeyFile))
		}, ca: caKept},
		{name: "server issued by another CA", prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other, DefaultCertFile), filepath.Join(dir, DefaultCertFile))
			copyFile(t, filepath.Join(other, DefaultKeyFile), filepath.Join(dir, DefaultKeyFile))
		}, ca: caKept},
		{name: "CA due", at: testCALifetime - testRenewBefore, ca: caRenewed},
		{name: "CA expired", at: 2 * testCALifetime, ca: caRenewed},
		{name: "CA due before a server certificate that is not", at: 25 * time.Minute, prepare: func(t *testing.T, dir string) {
			// Only reachable when the CA file changed under us: our own server
			// certificates never outlive their CA.
			ca, err := readPair(filepath.Join(dir, DefaultCAFile), filepath.Join(dir, DefaultCAKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			_, short, err := issueCA(ca.key, ca.cert.Subject, 0, 30*time.Minute, t0)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, DefaultCAFile), short, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ca: caRenewed},
		{name: "clock went back", at: -2 * time.Hour, ca: caRenewed},
		{name: "CA key lost", prepare: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, DefaultCAKeyFile))
		}, ca: caNew},
		{name: "CA file garbage", prepare: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, DefaultCAFile), []byte("not a pem"), 0o644)
		}, ca: caNew},
		{name: "CA file is not a CA", prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, DefaultCertFile), filepath.Join(dir, DefaultCAFile))
			copyFile(t, filepath.Join(dir, DefaultKeyFile), filepath.Join(dir, DefaultCAKeyFile))
		}, ca: caNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustLoad(t, testOptions(dir, t0))
			caKey := fileBytes(t, dir, DefaultCAKeyFile)
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			now := t0.Add(tt.at)
			o := testOptions(dir, now)
			if tt.names != nil {
				o.Names = tt.names
			}
			second := mustLoad(t, o)

			sameCA, sameCAKey := sameBytes(first.CA.Raw, second.CA.Raw), sameKey(first.CA, second.CA)
			switch {
			case tt.ca == caKept && !sameCA,
				tt.ca == caRenewed && (sameCA || !sameCAKey),
				tt.ca == caNew && sameCAKey:
				t.Errorf("CA: same certificate %v, same key %v; want %s", sameCA, sameCAKey, tt.ca)
			}
			if tt.ca == caRenewed {
				if second.CA.Subject.String() != first.CA.Subject.String() || !sameBytes(caKey, fileBytes(t, dir, DefaultCAKeyFile)) {
					t.Error("renewed CA changed its subject or rewrote its key file")
				}
				if !second.CA.NotAfter.Equal(now.Add(testCALifetime)) {
					t.Errorf("renewed CA NotAfter = %v", second.CA.NotAfter)
				}
			}
			if got := sameBytes(first.Cert.Leaf.Raw, second.Cert.Leaf.Raw); got != tt.sameServer {
				t.Errorf("same server certificate = %v, want %v", got, tt.sameServer)
			}
			if err := verify(second, second.Pool(), o.Names[0], now); err != nil {
				t.Errorf("server certificate does not verify against its CA: %v", err)
			}
			// Clients holding the first CA file reconnect without noticing a CA renewal.
			if tt.ca == caRenewed && now.Before(first.CA.NotAfter) && !now.Before(first.CA.NotBefore) {
				if err := verify(second, first.Pool(), o.Names[0], now); err != nil {
					t.Errorf("server certificate does not verify against the old CA certificate: %v", err)
				}
			}
			if !sameBytes(second.CAPEM, fileBytes(t, dir, DefaultCAFile)) {
				t.Error("CAPEM differs from the CA file")
			}
			for _, f := range []string{DefaultCAKeyFile, DefaultKeyFile} {
				if got := mode(t, filepath.Join(dir, f)); got != 0o600 {
					t.Errorf("%s mode = %v, want 0600", f, got)
				}
			}
			third := mustLoad(t, o)
			if !sameBytes(third.Cert.Leaf.Raw, second.Cert.Leaf.Raw) || !sameBytes(third.CA.Raw, second.CA.Raw) {
				t.Error("a third pass at the same time changed the certificates")
			}
		})
	}
}

func TestLoadOrCreate_ServerNeverOutlivesCA(t *testing.T) {
	o := testOptions(t.TempDir(), t0)
	o.CALifetime, o.ServerLifetime = time.Hour, 3*time.Hour
	b := mustLoad(t, o)
	if !b.NotAfter.Equal(b.CA.NotAfter) {
		t.Fatalf("server NotAfter %v, CA NotAfter %v", b.NotAfter, b.CA.NotAfter)
	}
	if want := b.CA.NotAfter.Add(-o.RenewBefore); !b.RenewAt.Equal(want) {
		t.Errorf("RenewAt = %v, want %v", b.RenewAt, want)
	}
}

func TestLoadOrCreate_CustomFilesAndCA(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, t0)
	o.CAFile, o.CAKeyFile, o.CertFile, o.KeyFile = "ca.pem", "ca-key.pem", "hub.pem", "hub-key.pem"
	o.CACommonName, o.CAMaxPathLen = "Test CA", 1
	b := mustLoad(t, o)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"ca-key.pem", "ca.pem", "hub-key.pem", "hub.pem"}; len(names) != 4 || names[0] != want[0] ||
		names[1] != want[1] || names[2] != want[2] || names[3] != want[3] {
		t.Fatalf("files %q, want %q", names, want)
	}
	if o.CAPath() != filepath.Join(dir, "ca.pem") || o.CertPath() != filepath.Join(dir, "hub.pem") {
		t.Errorf("paths %s, %s", o.CAPath(), o.CertPath())
	}
	if b.CA.Subject.CommonName != "Test CA" || b.CA.MaxPathLen != 1 {
		t.Errorf("CA %q MaxPathLen %d", b.CA.Subject, b.CA.MaxPathLen)
	}
	// A renewal keeps the path length of the CA on disk.
	o.Now = func() time.Time { return t0.Add(testCALifetime) }
	o.CAMaxPathLen = 0
	if renewed := mustLoad(t, o); sameBytes(renewed.CA.Raw, b.CA.Raw) || renewed.CA.MaxPathLen != 1 {
		t.Errorf("renewed CA: same %v, MaxPathLen %d", sameBytes(renewed.CA.Raw, b.CA.Raw), renewed.CA.MaxPathLen)
	}
}

func TestLoadOrCreate_RepairsHalfWrittenPair(t *testing.T) {
	// A crash between writing a key and its certificate leaves a new key next to the old
	// certificate; the next pass issues a matching pair.
	dir := t.TempDir()
	first := mustLoad(t, testOptions(dir, t0))
	key, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DefaultKeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	second := mustLoad(t, testOptions(dir, t0))
	if sameBytes(first.Cert.Leaf.Raw, second.Cert.Leaf.Raw) {
		t.Fatal("server certificate kept although its key was replaced")
	}
	if _, err := x509.ParseCertificate(second.Cert.Certificate[0]); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreate_UnreadableFileIsAnError(t *testing.T) {
	tests := []struct{ name, file string }{
		{"CA", DefaultCAFile},
		{"CA key", DefaultCAKeyFile},
		{"server certificate", DefaultCertFile},
		{"server key", DefaultKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustLoad(t, testOptions(dir, t0))
			// A directory in its place: it exists but cannot be read as a file (unlike a
			// chmod, this holds for root too).
			p := filepath.Join(dir, tt.file)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreate(testOptions(dir, t0)); err == nil || !strings.Contains(err.Error(), tt.file) {
				t.Fatalf("LoadOrCreate err = %v, want an error naming %s", err, tt.file)
			}
			if tt.file != DefaultCAFile && !sameBytes(fileBytes(t, dir, DefaultCAFile), first.CAPEM) {
				t.Fatal("the CA was replaced because a file could not be read")
			}
		})
	}
}
