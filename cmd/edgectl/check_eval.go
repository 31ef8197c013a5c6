package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The decisions of the checks, as pure functions: each rule is a row of a
// table test.

// sizeUnits are the suffixes parseSize accepts, longest first.
var sizeUnits = []struct {
	suffix string
	n      int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

// parseSize reads "1GiB", "500MiB", "2GB", "1024" (bytes).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(strings.ToLower(t), strings.ToLower(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.n
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q: want a size such as 500MiB or 2GiB", s)
	}
	return int64(f * float64(mult)), nil
}

// formatSize spells n bytes in binary units: "1.5 GiB", "300 MiB", "12 KiB".
func formatSize(n int64) string {
	for _, u := range sizeUnits[:4] {
		if n >= u.n {
			v := float64(n) / float64(u.n)
			if v >= 100 || v == float64(int64(v)) {
				return fmt.Sprintf("%.0f %s", v, u.suffix)
			}
			return fmt.Sprintf("%.1f %s", v, u.suffix)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// certFile is one certificate to check and what it is for.
type certFile struct {
	role string // "hub CA (--ca-file)"
	path string
}

// evalCert judges one certificate at now: an error when it is expired or
// not yet valid, a warning when it expires within warnWithin, else OK.
func evalCert(f certFile, info certs.Info, now time.Time, warnWithin time.Duration) outcome {
	left := info.NotAfter.Sub(now)
	switch {
	case now.Before(info.NotBefore):
		return failure(
			fmt.Sprintf("%s %s is not valid before %s (%s from now)", f.role, f.path, info.NotBefore.UTC().Format(time.RFC3339), agent.HumanDuration(info.NotBefore.Sub(now))),
			"check the device's clock (timedatectl; chronyc tracking): a clock in the past makes new certificates look invalid")
	case left <= 0:
		fix := "replace it: renew the certificate and restart the component that serves it"
		if info.IsCA {
			fix = "replace the CA certificate with a valid one and give it to every client that trusts it"
		}
		return failure(
			fmt.Sprintf("%s %s expired on %s (%s ago)", f.role, f.path, info.NotAfter.UTC().Format(time.RFC3339), agent.HumanDuration(-left)),
			fix)
	case left < warnWithin:
		fix := "renew it before it expires"
		if strings.Contains(f.role, "edge") {
			fix = "the edge hub renews its certificates itself 30 days before expiry: check that edgehub runs; to renew now, restart it"
		}
		return warning(
			fmt.Sprintf("%s %s expires on %s (in %s)", f.role, f.path, info.NotAfter.UTC().Format(time.RFC3339), agent.HumanDuration(left)),
			fix)
	}
	return ok("%s %s valid until %s", f.role, f.path, info.NotAfter.UTC().Format(time.RFC3339))
}

// evalFreeSpace judges the free space of the data directory's file system.
func evalFreeSpace(dir string, free, minFree int64) outcome {
	if free < minFree {
		return warning(
			fmt.Sprintf("only %s free on the file system of %s (less than %s)", formatSize(free), dir, formatSize(minFree)),
			"free some space (old images: docker image prune; logs: journalctl --vacuum-size=...), or move the data directory to a larger disk; the edge hub refuses messages when its store cannot grow")
	}
	return ok("%s writable, %s free", dir, formatSize(free))
}

// Clock skew thresholds: IoT Hub accepts tokens within sas.ClockSkew (5
// minutes); warn well before that.
const clockSkewWarning = time.Minute

// evalClockSkew judges skew = hub time - local time.
func evalClockSkew(skew time.Duration) outcome {
	abs := skew.Abs()
	dir := "ahead of"
	if skew > 0 {
		dir = "behind"
	}
	fix := "synchronise the clock: timedatectl set-ntp true (systemd-timesyncd), or chronyc makestep"
	switch {
	case abs >= sas.ClockSkew:
		return failure(
			fmt.Sprintf("the local clock is %s %s the hub's: IoT Hub rejects SAS tokens beyond %s of skew, so the device cannot connect", abs.Round(time.Second), dir, sas.ClockSkew),
			fix)
	case abs >= clockSkewWarning:
		return warning(
			fmt.Sprintf("the local clock is %s %s the hub's", abs.Round(time.Second), dir),
			fix+"; tokens are refused beyond "+sas.ClockSkew.String())
	}
	return ok("the local clock is within %s of the hub's", max(abs.Round(time.Second), time.Second))
}

// offlineFix is what to do about an unreachable hub.
const offlineFix = "if the device is meant to be offline, nothing: the agent keeps running the saved deployment, modules keep running, and edgeHub stores messages until the link is back. Otherwise check the network, DNS resolution of %s, and that outbound TCP port %s is open (firewall, proxy)"

// classifyHubError judges a failed TCP+TLS connection to the hub at addr:
// being offline (no route, no DNS, refused, timed out) is a warning, a TLS
// trust or name problem an error, since it will not go away by itself.
func classifyHubError(addr string, err error) outcome {
	host, port, _ := net.SplitHostPort(addr)
	var (
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalid    x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		dnsErr     *net.DNSError
		certVerify *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &certVerify) && errors.As(certVerify.Err, &unknownCA):
		return failure(
			fmt.Sprintf("%s presented a certificate signed by an authority the agent does not trust: %v", addr, err),
			"give the agent the hub's CA with --ca-file (for a fake hub: its ca.pem), or remove --ca-file to use the system roots for Azure IoT Hub")
	case errors.As(err, &hostErr):
		return failure(
			fmt.Sprintf("%s presented a certificate for other names: %v", addr, err),
			fmt.Sprintf("the HostName in the connection string (%s) must be a name in the hub's certificate", host))
	case errors.As(err, &invalid):
		return failure(
			fmt.Sprintf("%s presented an invalid certificate: %v", addr, err),
			"check the local clock (an expired-looking certificate often means a wrong clock), or renew the hub's certificate")
	case errors.As(err, &recordErr):
		return failure(
			fmt.Sprintf("%s does not speak TLS: %v", addr, err),
			"check --mqtt-port: the agent needs MQTT over TLS (8883)")
	case errors.As(err, &dnsErr):
		return warning(fmt.Sprintf("cannot resolve %s: %v", host, err), fmt.Sprintf(offlineFix, host, port))
	case errors.Is(err, syscall.ECONNREFUSED):
		return warning(fmt.Sprintf("%s refused the connection (nothing listens there, or a firewall rejects it)", addr), fmt.Sprintf(offlineFix, host, port))
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return warning(fmt.Sprintf("no answer from %s in time", addr), fmt.Sprintf(offlineFix, host, port))
	}
	return warning(fmt.Sprintf("cannot reach %s: %v", addr, err), fmt.Sprintf(offlineFix, host, port))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// worst combines outcomes: the most severe result, with the reasons and
// fixes of that severity joined (OK reasons when all are OK).
func worst(outs []outcome) outcome {
	rank := map[string]int{resultOK: 0, resultSkipped: 1, resultWarning: 2, resultError: 3}
	if len(outs) == 0 {
		return ok("nothing to check")
	}
	top := outs[0].Result
	for _, o := range outs {
		if rank[o.Result] > rank[top] {
			top = o.Result
		}
	}
	var reasons, fixes []string
	for _, o := range outs {
		if o.Result != top {
			continue
		}
		reasons = append(reasons, o.Reason)
		if o.Fix != "" && !containsString(fixes, o.Fix) {
			fixes = append(fixes, o.Fix)
		}
	}
	return outcome{Result: top, Reason: strings.Join(reasons, "\n"), Fix: strings.Join(fixes, "\n")}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
