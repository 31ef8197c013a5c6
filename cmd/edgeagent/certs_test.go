package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
)

func TestParseConfig_CertFlags(t *testing.T) {
	args := []string{"--connection-string-file", "cs", "--certs-dir", "/d/certs", "--cert-ca-lifetime", "2h",
		"--cert-server-lifetime", "30m", "--cert-renew-before", "10m"}
	c, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.certsDir != "/d/certs" || c.caLifetime != 2*time.Hour || c.serverLifetime != 30*time.Minute || c.renewBefore != 10*time.Minute {
		t.Errorf("config = %+v", c)
	}
	o := certOptions(c, nil)
	if o.Dir != "/d/certs" || o.CALifetime != 2*time.Hour || o.ServerLifetime != 30*time.Minute || o.RenewBefore != 10*time.Minute || o.Names[0] != "localhost" {
		t.Errorf("certOptions = %+v", o)
	}
	if _, err := parseConfig(append(args, "--cert-renew-before", "-1m"), func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("negative renew-before: %v", err)
	}
}

// The agent renews a server certificate that is due, and keeps doing so
// while it runs.
func TestRunCertRenewal_RenewsDueCertificates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// Issued 55 minutes ago for an hour: 5 minutes left, within the 10
	// minutes before expiry when it is renewed.
	old, err := certs.LoadOrCreate(certs.Options{Dir: dir, Names: certs.Names("edge1.local"), CALifetime: 24 * time.Hour,
		ServerLifetime: time.Hour, RenewBefore: 10 * time.Minute, Now: func() time.Time { return now.Add(-55 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	c := config{certsDir: dir, gatewayHostName: "edge1.local", caLifetime: 24 * time.Hour, serverLifetime: time.Hour, renewBefore: 10 * time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runCertRenewal(ctx, c, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		<-done
	}()
	path := filepath.Join(dir, certs.DefaultCertFile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := certs.Inspect(path)
		if err == nil && info.NotAfter.After(old.NotAfter) {
			if d := info.NotAfter.Sub(now); d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("renewed server certificate expires in %s, want the configured hour", d)
			}
			if !slices.Contains(info.Names, "edge1.local") {
				t.Errorf("names %v", info.Names)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server certificate not renewed: %+v %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
