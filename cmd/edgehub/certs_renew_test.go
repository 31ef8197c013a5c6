package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Lifetimes of the renewal test: seconds, so that within ten the server certificate is
// renewed twice and the CA once (package certs renews RenewBefore ahead of each expiry and
// never lets a server certificate outlive its CA), and the first CA certificate expires.
const (
	renewCALifetime     = 8 * time.Second
	renewServerLifetime = 4 * time.Second
	renewBefore         = 2 * time.Second
)

// proxy forwards TCP connections to target until cut closes them all, so that a test can
// make a client reconnect.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// cut closes every connection made through the proxy so far.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// rereading is the TLS side of a client that reads the CA file (EdgeModuleCACertificateFile)
// at every handshake instead of once, and records what each handshake saw.
type rereading struct {
	caFile     string
	handshakes atomic.Int32
	leaf       atomic.Pointer[x509.Certificate] // of the last handshake
}

func (r *rereading) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is not skipped: VerifyConnection does it, with the roots of the file
		// as it is now.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := verifyWithCAFile(cs, r.caFile); err != nil {
				return err
			}
			r.handshakes.Add(1)
			r.leaf.Store(cs.PeerCertificates[0])
			return nil
		},
	}
}

// verifyWithCAFile verifies the chain a server presented against the roots in caFile.
func verifyWithCAFile(cs tls.ConnectionState, caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return errors.New("no certificate in the CA file")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: roots, Intermediates: inter})
	return err
}

// handshake dials the hub and returns the certificate it presented, verified against roots.
func handshake(addr string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestRenewal_ClientsKeepWorking renews the edge CA and the hub's server certificate with
// lifetimes of seconds, the way the edge agent does (certs.Manager on --certs-dir, as
// edgeagent --certs-dir runs it), while the hub serves --certs-dir. Module b stays
// connected throughout; module a's connection is cut after the CA renewal and it
// reconnects by itself. Messages from a to b flow before, during and after; new
// handshakes get the renewed certificate, which verifies against the new CA file alone.
func TestRenewal_ClientsKeepWorking(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for certificates with lifetimes of seconds to be renewed and expire")
	}
	dir := t.TempDir()
	certsDirPath := filepath.Join(dir, "certs")
	if err := os.Mkdir(certsDirPath, 0o700); err != nil {
		t.Fatal(err)
	}
	renewer, err := certs.New(certs.Options{Dir: certsDirPath, Names: certs.Names("localhost"),
		CALifetime: renewCALifetime, ServerLifetime: renewServerLifetime, RenewBefore: renewBefore})
	if err != nil {
		t.Fatal(err)
	}
	first := renewer.Current()
	ctx, cancel := context.WithCancel(context.Background())
	renewDone := make(chan error, 1)
	go func() { renewDone <- renewer.Run(ctx) }()

	cfg := filepath.Join(dir, "config.json")
	writeFile(t, cfg, `{
	  "edgeHub": {"schemaVersion": "1.1", "routes": {"aToB": "FROM /messages/modules/a/outputs/o INTO BrokeredEndpoint(\"/modules/b/inputs/i\")"},
	              "storeAndForwardConfiguration": {"timeToLiveSecs": 60}},
	  "identities": [{"deviceId": "edge1", "moduleId": "a", "keys": {"primary": "`+keyA+`"}},
	                 {"deviceId": "edge1", "moduleId": "b", "keys": {"primary": "`+keyB+`"}}]
	}`)
	logs, logw := io.Pipe()
	hubDone := make(chan int, 1)
	go func() {
		hubDone <- run(ctx, []string{"--iothub-hostname", "h.azure-devices.net", "--edge-device-id", "edge1",
			"--data-dir", filepath.Join(dir, "data"), "--certs-dir", certsDirPath, "--tls-addr", "127.0.0.1:0",
			"--config", cfg, "--log-format", "json", "--metrics-addr", ""}, func(string) string { return "" }, logw)
		logw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-renewDone
		select {
		case <-hubDone:
		case <-time.After(10 * time.Second):
			t.Error("the hub did not stop")
		}
	})
	ready := readyLine(t, logs)
	go io.Copy(io.Discard, logs)
	caFile := filepath.Join(certsDirPath, certs.DefaultCAFile)
	if ready.CAFile != caFile {
		t.Fatalf("the hub gives clients %q, want %q", ready.CAFile, caFile)
	}
	_, hubPort, _ := net.SplitHostPort(ready.TLS)
	px := startProxy(t, ready.TLS)

	// b connects straight to the hub and stays; a goes through the proxy.
	newClient := func(module, key string, port int, tr *rereading) *moduleclient.Client {
		c, err := moduleclient.New(sas.ConnectionString{HostName: "h.azure-devices.net", DeviceID: "edge1", ModuleID: module,
			SharedAccessKey: key, GatewayHostName: "127.0.0.1"},
			moduleclient.Options{TLSConfig: tr.config(), Port: port, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	trA, trB := &rereading{caFile: caFile}, &rereading{caFile: caFile}
	port, _ := strconv.Atoi(hubPort)
	b := newClient("b", keyB, port, trB)
	var mu sync.Mutex
	got := map[string]bool{}
	b.OnInput(func(input string, m iothub.Message) {
		mu.Lock()
		got[string(m.Body)] = true
		mu.Unlock()
	})
	if err := b.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	a := newClient("a", keyA, px.port(), trA)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	received := func(body string) bool {
		mu.Lock()
		defer mu.Unlock()
		return got[body]
	}

	// a sends all along; every message must arrive.
	var sent atomic.Int32
	sendCtx, stopSending := context.WithCancel(ctx)
	sendDone := make(chan error, 1)
	go func() {
		for i := 0; sendCtx.Err() == nil; i++ {
			if err := a.SendOutput(sendCtx, "o", iothub.Message{Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
				if sendCtx.Err() != nil {
					break
				}
				sendDone <- err
				return
			}
			sent.Add(1)
			sleepCtx(sendCtx, 50*time.Millisecond)
		}
		sendDone <- nil
	}()
	waitUntil(t, 10*time.Second, "messages from a to b", func() bool { return sent.Load() > 3 && received("m3") })
	if !trB.leaf.Load().Equal(first.Cert.Leaf) {
		t.Fatal("b's first handshake did not get the first server certificate")
	}

	// The CA is renewed (same key and subject), and a new server certificate with it.
	waitUntil(t, renewCALifetime+5*time.Second, "the CA to be renewed", func() bool {
		return !bytes.Equal(renewer.Current().CA.Raw, first.CA.Raw)
	})
	renewed := renewer.Current()
	if renewed.Cert.Leaf.Equal(first.Cert.Leaf) {
		t.Fatal("test set-up: the server certificate was not renewed with the CA")
	}
	var leaf *x509.Certificate
	waitUntil(t, 5*time.Second, "new handshakes to get the renewed certificate, verified with the new CA alone", func() bool {
		var err error
		leaf, err = handshake(ready.TLS, poolOf(renewed.CA))
		return err == nil && !leaf.NotAfter.Before(renewed.Cert.Leaf.NotAfter)
	})

	// a's connection goes; it reconnects by itself and sees the renewed certificate.
	before := trA.handshakes.Load()
	px.cut()
	waitUntil(t, 10*time.Second, "a to reconnect", func() bool { return trA.handshakes.Load() > before })
	if l := trA.leaf.Load(); l.NotAfter.Before(renewed.Cert.Leaf.NotAfter) {
		t.Errorf("a reconnected to a certificate expiring %v, not the renewed one (%v)", l.NotAfter, renewed.Cert.Leaf.NotAfter)
	}
	n := sent.Load()
	waitUntil(t, 10*time.Second, "messages from a to b after the renewal", func() bool {
		return sent.Load() > n+3 && received(fmt.Sprintf("m%d", n+3))
	})

	// The first CA certificate expires. Connected b does not notice; a client that kept the
	// old CA file's contents (as moduleclient does with CAFile, read once by New) can no
	// longer connect, while the CA file as it is now still verifies.
	waitUntil(t, time.Until(first.CA.NotAfter)+5*time.Second, "the first CA certificate to expire", func() bool {
		return time.Now().After(first.CA.NotAfter.Add(100 * time.Millisecond))
	})
	if _, err := handshake(ready.TLS, poolOf(first.CA)); err == nil {
		t.Error("a handshake trusting only the expired first CA certificate succeeded")
	}
	if _, err := handshake(ready.TLS, poolOf(renewer.Current().CA)); err != nil {
		t.Errorf("a handshake trusting the current CA file failed: %v", err)
	}
	n = sent.Load()
	waitUntil(t, 10*time.Second, "messages from a to b after the first CA expired", func() bool {
		return sent.Load() > n+3 && received(fmt.Sprintf("m%d", n+3))
	})
	if h := trB.handshakes.Load(); h != 1 {
		t.Errorf("b made %d handshakes; it should have stayed connected", h)
	}
	stopSending()
	if err := <-sendDone; err != nil {
		t.Fatalf("a send failed: %v", err)
	}
	total := int(sent.Load())
	waitUntil(t, 10*time.Second, "every message sent to reach b", func() bool {
		for i := range total {
			if !received(fmt.Sprintf("m%d", i)) {
				return false
			}
		}
		return true
	})
	t.Logf("%d messages, a made %d handshakes, b %d; server certificate %v -> %v",
		total, trA.handshakes.Load(), trB.handshakes.Load(), first.Cert.Leaf.NotAfter.Format(time.TimeOnly), leaf.NotAfter.Format(time.TimeOnly))
}

func TestReloadInterval(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		remaining time.Duration
		want      time.Duration
	}{
		{name: "a year: every minute", remaining: 365 * 24 * time.Hour, want: time.Minute},
		{name: "ten minutes: every minute", remaining: 10 * time.Minute, want: time.Minute},
		{name: "five minutes: a tenth", remaining: 5 * time.Minute, want: 30 * time.Second},
		{name: "four seconds: at least a second", remaining: 4 * time.Second, want: time.Second},
		{name: "expired: every second", remaining: -time.Hour, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reloadInterval(now, now.Add(tt.remaining)); got != tt.want {
				t.Fatalf("reloadInterval = %v, want %v", got, tt.want)
			}
		})
	}
}
