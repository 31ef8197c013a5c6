package certs

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

func TestNeedsRenewal(t *testing.T) {
	notBefore := t0.Add(-time.Hour)
	notAfter := t0.Add(10 * time.Hour)
	const renewBefore = time.Hour
	cert := &x509.Certificate{
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		DNSNames:    []string{"localhost", "edge.example"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1").To4(), net.ParseIP("::1")},
	}
	names := []string{"edge.example", "localhost", "127.0.0.1", "::1"}
	tests := []struct {
		name       string
		cert       *x509.Certificate
		names      []string
		now        time.Time
		want       bool
		wantReason string
	}{
		{"valid", cert, names, t0, false, ""},
		{"just before the renewal point", cert, names, notAfter.Add(-renewBefore - time.Nanosecond), false, ""},
		{"at the renewal point", cert, names, notAfter.Add(-renewBefore), true, "within 1h0m0s"},
		{"at expiry", cert, names, notAfter, true, "expired"},
		{"long expired", cert, names, notAfter.Add(365 * 24 * time.Hour), true, "expired"},
		{"at NotBefore", cert, names, notBefore, false, ""},
		{"clock went back", cert, names, notBefore.Add(-time.Nanosecond), true, "not valid before"},
		{"nil names skip the check", cert, nil, t0, false, ""},
		{"names in another order, duplicated", cert, []string{"::1", "localhost", "127.0.0.1", "edge.example", "localhost"}, t0, false, ""},
		{"IPv4-mapped form of the same address", cert, []string{"edge.example", "localhost", "::ffff:127.0.0.1", "::1"}, t0, false, ""},
		{"DNS name missing", cert, []string{"edge.example", "127.0.0.1", "::1"}, t0, true, "issued for"},
		{"DNS name added", cert, append([]string{"other.example"}, names...), t0, true, "issued for"},
		{"IP added", cert, append([]string{"10.0.0.1"}, names...), t0, true, "issued for"},
		{"IP replaced by a DNS name", cert, []string{"edge.example", "localhost", "127.0.0.1", "ip6-localhost"}, t0, true, "issued for"},
		{"empty names", cert, []string{}, t0, true, "issued for"},
		{"no certificate", nil, names, t0, true, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := NeedsRenewal(tt.cert, tt.names, tt.now, renewBefore)
			if got != tt.want {
				t.Fatalf("NeedsRenewal = %v (%q), want %v", got, reason, tt.want)
			}
			if tt.wantReason == "" && reason != "" || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tt.wantReason)
			}
		})
	}
}
