package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustLoad(t *testing.T, dir string, names []string, now time.Time) *Bundle {
	t.Helper()
	b, err := LoadOrCreate(dir, names, now)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return b
}

func TestNames(t *testing.T) {
	tests := []struct {
		name, gateway string
		want          []string
	}{
		{"gateway first", "edge.local", []string{"edge.local", "localhost", "127.0.0.1", "::1"}},
		{"no gateway", "", []string{"localhost", "127.0.0.1", "::1"}},
		{"gateway is localhost", "localhost", []string{"localhost", "127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Names(tt.gateway)
			if len(got) != len(tt.want) {
				t.Fatalf("Names(%q) = %q, want %q", tt.gateway, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Names(%q) = %q, want %q", tt.gateway, got, tt.want)
				}
			}
		})
	}
}

func TestLoadOrCreate_CreatesVerifiableChain(t *testing.T) {
	dir := t.TempDir()
	b := mustLoad(t, dir, Names("edge.example"), t0)
	for _, f := range []string{CAFile, CAKeyFile, ServerFile, ServerKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
	for _, f := range []string{CAKeyFile, ServerKeyFile} {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
	for _, host := range []string{"edge.example", "localhost", "127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			_, err := b.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: b.Pool(), CurrentTime: t0})
			if err != nil {
				t.Fatalf("verify for %q: %v", host, err)
			}
		})
	}
	if _, err := b.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: b.Pool(), CurrentTime: t0}); err == nil {
		t.Fatal("certificate verified for a name it was not issued for")
	}
	if len(b.Server.Certificate) != 2 {
		t.Fatalf("chain has %d certificates, want leaf + CA", len(b.Server.Certificate))
	}
}

func TestLoadOrCreate_Renewal(t *testing.T) {
	tests := []struct {
		name       string
		names      []string
		now        time.Time
		prepare    func(t *testing.T, dir string)
		sameCA     bool
		sameServer bool
	}{
		{"reused as is", Names("edge.example"), t0.Add(time.Hour), nil, true, true},
		{"names changed", Names("other.example"), t0.Add(time.Hour), nil, true, false},
		{"server near expiry", Names("edge.example"), t0.Add(ServerValidity - RenewBefore + time.Hour), nil, true, false},
		{"server key lost", Names("edge.example"), t0, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ServerKeyFile))
		}, true, false},
		{"CA lost", Names("edge.example"), t0, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, CAKeyFile))
		}, false, false},
		{"CA expired", Names("edge.example"), t0.Add(CAValidity + time.Hour), nil, false, false},
		{"CA file garbage", Names("edge.example"), t0, func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, CAFile), []byte("not a pem"), 0o644)
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustLoad(t, dir, Names("edge.example"), t0)
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			second := mustLoad(t, dir, tt.names, tt.now)
			if got := bytes.Equal(first.CA.Raw, second.CA.Raw); got != tt.sameCA {
				t.Errorf("same CA = %v, want %v", got, tt.sameCA)
			}
			if got := bytes.Equal(first.Leaf.Raw, second.Leaf.Raw); got != tt.sameServer {
				t.Errorf("same server certificate = %v, want %v", got, tt.sameServer)
			}
			if _, err := second.Leaf.Verify(x509.VerifyOptions{DNSName: tt.names[0], Roots: second.Pool(), CurrentTime: tt.now}); err != nil {
				t.Errorf("renewed certificate does not verify: %v", err)
			}
			// A third call changes nothing.
			third := mustLoad(t, dir, tt.names, tt.now)
			if !bytes.Equal(third.Leaf.Raw, second.Leaf.Raw) || !bytes.Equal(third.CA.Raw, second.CA.Raw) {
				t.Error("third call reissued certificates")
			}
		})
	}
}

func TestLoadOrCreate_BadNames(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  error
	}{
		{"none", nil, ErrNoNames},
		{"empty", []string{""}, ErrInvalidName},
		{"space", []string{"edge host"}, ErrInvalidName},
		{"url", []string{"mqtts://edge"}, ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadOrCreate(t.TempDir(), tt.names, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
