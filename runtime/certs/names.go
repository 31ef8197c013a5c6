package certs

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// Names returns the subject alternative names a hub's server certificate needs: the host
// name clients dial (when not empty), "localhost", "127.0.0.1" and "::1", without
// duplicates.
func Names(hostName string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h := strings.TrimSpace(hostName); h != "" && !slices.Contains(names, h) {
		names = append([]string{h}, names...)
	}
	return names
}

// checkNames rejects an empty list and names that are neither an IP literal nor something
// that could be a DNS name.
func checkNames(names []string) error {
	if len(names) == 0 {
		return ErrNoNames
	}
	for _, n := range names {
		if net.ParseIP(n) != nil {
			continue
		}
		if n == "" || strings.TrimSpace(n) != n || strings.ContainsAny(n, " /\\@:,;") {
			return fmt.Errorf("name %q: %w", n, ErrInvalidName)
		}
	}
	return nil
}

// splitNames separates DNS names from IP literals, each sorted and without duplicates, in
// the form a certificate carries them.
func splitNames(names []string) ([]string, []net.IP) {
	dns, ipStrings := normalize(names)
	ips := make([]net.IP, 0, len(ipStrings))
	for _, s := range ipStrings {
		ips = append(ips, net.ParseIP(s))
	}
	return dns, ips
}

// normalize returns the DNS names and the IP literals (in canonical form, so "::ffff:1.2.3.4"
// and "1.2.3.4" are one address) of names, each sorted and without duplicates.
func normalize(names []string) (dns, ips []string) {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip.String())
		} else {
			dns = append(dns, n)
		}
	}
	slices.Sort(dns)
	slices.Sort(ips)
	return slices.Compact(dns), slices.Compact(ips)
}

// certNames returns the subject alternative names a certificate carries: DNS names, then
// IP addresses.
func certNames(dns []string, ips []net.IP) []string {
	out := slices.Clone(dns)
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}
