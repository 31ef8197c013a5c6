package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
)

// certsAt creates (or renews) package certs' files in dir as a pass at now would, the way
// edgectl setup and the edge agent do, with short lifetimes.
func certsAt(t *testing.T, dir string, now time.Time) *certs.Bundle {
	t.Helper()
	b, err := certs.LoadOrCreate(certs.Options{
		Dir: dir, Names: certs.Names("edge.example"),
		CALifetime: 10 * time.Hour, ServerLifetime: time.Hour, RenewBefore: 10 * time.Minute,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot returns the contents of every file in dir, by name.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func copyInto(t *testing.T, from, to, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReadCertsDir(t *testing.T) {
	now := time.Now()
	good := t.TempDir()
	b := certsAt(t, good, now)
	other := t.TempDir()
	certsAt(t, other, now)

	tests := []struct {
		name   string
		setup  func(dir string) // starts from a copy of good
		wantIs error            // nil: any error
		ok     bool
	}{
		{name: "setup's files", setup: func(string) {}, ok: true},
		{name: "no CA file", setup: func(dir string) { os.Remove(filepath.Join(dir, certs.DefaultCAFile)) }, wantIs: fs.ErrNotExist},
		{name: "no server key", setup: func(dir string) { os.Remove(filepath.Join(dir, certs.DefaultKeyFile)) }, wantIs: fs.ErrNotExist},
		{name: "key of another certificate", setup: func(dir string) { copyInto(t, other, dir, certs.DefaultKeyFile) }},
		{name: "CA replaced, server not yet issued again", setup: func(dir string) { copyInto(t, other, dir, certs.DefaultCAFile) }, wantIs: errCertsMismatch},
		{name: "CA file without a certificate", setup: func(dir string) {
			os.Rename(filepath.Join(dir, certs.DefaultKeyFile), filepath.Join(dir, certs.DefaultCAFile))
			copyInto(t, good, dir, certs.DefaultKeyFile)
		}, wantIs: certs.ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{certs.DefaultCAFile, certs.DefaultCertFile, certs.DefaultKeyFile} {
				copyInto(t, good, dir, f)
			}
			tt.setup(dir)
			l, err := readCertsDir(dir)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if !l.cert.Leaf.Equal(b.Cert.Leaf) || len(l.cert.Certificate) != 2 || !bytes.Equal(l.cert.Certificate[1], b.CA.Raw) {
					t.Fatalf("chain is not server.pem then edge-ca.pem")
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
		})
	}
}

// TestCertsDir_FollowsRenewal: the hub serves what the renewer last wrote completely, and
// never writes the directory itself.
func TestCertsDir_FollowsRenewal(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now()
	first := certsAt(t, dir, t0)
	before := snapshot(t, dir)
	d, err := openCertsDir(context.Background(), dir, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := d.reload(); err != nil || changed {
		t.Fatalf("reload without a renewal = %v, %v; want false, nil", changed, err)
	}
	if after := snapshot(t, dir); len(after) != len(before) {
		t.Fatalf("the hub wrote to --certs-dir: %d files before, %d after", len(before), len(after))
	}
	for name, content := range before {
		if snapshot(t, dir)[name] != content {
			t.Fatalf("the hub changed %s", name)
		}
	}

	// Half-way through a renewal that replaced the CA: the current certificate stays.
	other := t.TempDir()
	certsAt(t, other, t0)
	copyInto(t, other, dir, certs.DefaultCAFile)
	if _, err := d.reload(); !errors.Is(err, errCertsMismatch) {
		t.Fatalf("reload half-way = %v, want %v", err, errCertsMismatch)
	}
	if !d.current().Leaf.Equal(first.Cert.Leaf) {
		t.Fatal("a half-written renewal replaced the serving certificate")
	}
	if err := os.WriteFile(filepath.Join(dir, certs.DefaultCAFile), first.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	// The renewer's pass once the server certificate is due.
	renewed := certsAt(t, dir, t0.Add(55*time.Minute))
	if renewed.Cert.Leaf.Equal(first.Cert.Leaf) {
		t.Fatal("test set-up: the server certificate was not renewed")
	}
	if changed, err := d.reload(); err != nil || !changed {
		t.Fatalf("reload after a renewal = %v, %v; want true, nil", changed, err)
	}
	got, err := d.tlsConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Leaf.Equal(renewed.Cert.Leaf) {
		t.Fatal("new handshakes do not get the renewed certificate")
	}
}

// TestRun_CertsDir runs the command with --certs-dir: clients that trust the edge CA of the
// directory connect, and the data directory gets no certificates of its own.
func TestRun_CertsDir(t *testing.T) {
	dir := t.TempDir()
	certsDirPath := filepath.Join(dir, "certs")
	if err := os.Mkdir(certsDirPath, 0o700); err != nil {
		t.Fatal(err)
	}
	b := certsAt(t, certsDirPath, time.Now())
	dataDir := filepath.Join(dir, "data")

	ctx, cancel := context.WithCancel(context.Background())
	logs, logw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--iothub-hostname", "h.azure-devices.net", "--edge-device-id", "edge1",
			"--gateway-hostname", "edge.example", "--data-dir", dataDir, "--tls-addr", "127.0.0.1:0",
			"--log-format", "json", "--metrics-addr", ""},
			func(k string) string { return map[string]string{"EDGEHUB_CERTS_DIR": certsDirPath}[k] }, logw)
		logw.Close()
	}()
	ready := readyLine(t, logs)
	go io.Copy(io.Discard, logs)

	if ready.CAFile != filepath.Join(certsDirPath, certs.DefaultCAFile) {
		t.Errorf("ready line ca_file = %q, want the CA of --certs-dir", ready.CAFile)
	}
	conn, err := tls.Dial("tcp", ready.TLS, &tls.Config{RootCAs: b.Pool(), ServerName: "edge.example"})
	if err != nil {
		t.Fatalf("TLS handshake trusting the edge CA of --certs-dir: %v", err)
	}
	if !conn.ConnectionState().PeerCertificates[0].Equal(b.Cert.Leaf) {
		t.Error("the hub does not serve server.pem of --certs-dir")
	}
	conn.Close()
	for _, f := range []string{certs.DefaultCAFile, certs.DefaultCAKeyFile, certs.DefaultCertFile, certs.DefaultKeyFile} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("data dir has %s (err %v): the hub made certificates of its own", f, err)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestOpenCertsDir(t *testing.T) {
	t.Run("no files", func(t *testing.T) {
		_, err := openCertsDir(context.Background(), t.TempDir(), 0, slog.New(slog.DiscardHandler))
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "edgectl setup") {
			t.Fatalf("err = %v, want a missing file and what creates it", err)
		}
	})
	t.Run("files created while it waits", func(t *testing.T) {
		dir := t.TempDir()
		type result struct {
			d   *certsDir
			err error
		}
		got := make(chan result, 1)
		go func() {
			d, err := openCertsDir(context.Background(), dir, time.Minute, slog.New(slog.DiscardHandler))
			got <- result{d, err}
		}()
		b := certsAt(t, dir, time.Now())
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !r.d.current().Leaf.Equal(b.Cert.Leaf) {
			t.Fatal("does not serve the files created")
		}
	})
	t.Run("stopped while it waits", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := openCertsDir(ctx, t.TempDir(), time.Minute, slog.New(slog.DiscardHandler)); err == nil {
			t.Fatal("no error")
		}
	})
}

// readyFields are the "edgehub ready" log line's fields these tests read.
type readyFields struct {
	Msg    string `json:"msg"`
	TLS    string `json:"tls_address"`
	CAFile string `json:"ca_file"`
}

// readyLine reads JSON log lines until "edgehub ready" and returns it.
func readyLine(t *testing.T, r io.Reader) readyFields {
	t.Helper()
	found := make(chan readyFields, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var line readyFields
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edgehub ready" {
				found <- line
				return
			}
		}
		close(found)
	}()
	select {
	case l, ok := <-found:
		if !ok {
			t.Fatal("edgehub exited before it was ready")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("edgehub not ready within 10s")
	}
	return readyFields{}
}
