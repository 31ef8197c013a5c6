package certs

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// NeedsRenewal reports whether cert must be replaced at now, and why: it is not valid yet
// (the clock went back), it has expired, it expires within renewBefore (NotAfter at or
// before now+renewBefore), or, when names is not nil, its subject alternative names are
// not exactly names (compared as sets; see Names). A CA is checked with nil names. The
// reason is empty when no renewal is needed.
func NeedsRenewal(cert *x509.Certificate, names []string, now time.Time, renewBefore time.Duration) (bool, string) {
	if cert == nil {
		return true, "no certificate"
	}
	switch {
	case now.Before(cert.NotBefore):
		return true, fmt.Sprintf("not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(cert.NotAfter):
		return true, fmt.Sprintf("expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	case !now.Add(renewBefore).Before(cert.NotAfter):
		return true, fmt.Sprintf("expires at %s, within %v", cert.NotAfter.UTC().Format(time.RFC3339), renewBefore)
	}
	if names != nil {
		wantDNS, wantIPs := normalize(names)
		haveDNS, haveIPs := normalize(certNames(cert.DNSNames, cert.IPAddresses))
		if !slices.Equal(haveDNS, wantDNS) || !slices.Equal(haveIPs, wantIPs) {
			return true, fmt.Sprintf("issued for %q, want %q",
				append(haveDNS, haveIPs...), append(wantDNS, wantIPs...))
		}
	}
	return false, ""
}
