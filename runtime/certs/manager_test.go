package certs

import (
	"context"
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// serveEcho accepts TLS connections on ln and echoes what each sends, until ln closes.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func TestManager_RenewSwapsCertificateForNewHandshakes(t *testing.T) {
	m, err := New(Options{Dir: t.TempDir(), Names: Names("edge.example"),
		CALifetime: 24 * time.Hour, ServerLifetime: time.Hour, RenewBefore: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveEcho(ln)

	clientConf := &tls.Config{RootCAs: m.Current().Pool(), ServerName: "edge.example"}
	dial := func() (*tls.Conn, *big.Int) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), clientConf)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c, c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	echo := func(c *tls.Conn, msg string) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo = %q, %v", buf, err)
		}
	}

	before, serial1 := dial()
	if want := m.Current().Cert.Leaf.SerialNumber; serial1.Cmp(want) != 0 {
		t.Fatalf("handshake served serial %v, current is %v", serial1, want)
	}
	echo(before, "one")

	if renewed, err := m.Renew(time.Now()); err != nil || renewed {
		t.Fatalf("Renew before due = %v, %v; want false, nil", renewed, err)
	}
	// 55 minutes on, the one-hour certificate is within RenewBefore of expiring.
	if renewed, err := m.Renew(time.Now().Add(55 * time.Minute)); err != nil || !renewed {
		t.Fatalf("Renew when due = %v, %v; want true, nil", renewed, err)
	}
	after, serial2 := dial()
	if serial2.Cmp(serial1) == 0 {
		t.Fatal("the handshake after Renew served the old certificate")
	}
	if want := m.Current().Cert.Leaf.SerialNumber; serial2.Cmp(want) != 0 {
		t.Fatalf("handshake served serial %v, current is %v", serial2, want)
	}
	echo(after, "two")
	// The connection made before the renewal is untouched: clients only notice on reconnect.
	echo(before, "three")
	if got := before.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(serial1) != 0 {
		t.Errorf("old connection now reports serial %v", got)
	}
}

func TestManager_FailedRenewalKeepsCurrent(t *testing.T) {
	dir := t.TempDir()
	m, err := New(testOptions(dir, t0))
	if err != nil {
		t.Fatal(err)
	}
	cur := m.Current()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if renewed, err := m.Renew(t0); err == nil || renewed {
		t.Fatalf("Renew in a removed directory = %v, %v; want an error", renewed, err)
	}
	if m.Current() != cur {
		t.Fatal("a failed renewal replaced the current bundle")
	}
	if c, err := m.GetCertificate(nil); err != nil || c != &cur.Cert {
		t.Fatalf("GetCertificate = %p, %v", c, err)
	}
}

func TestManager_RunRenewsWhenDue(t *testing.T) {
	// synctest's fake clock: time.Sleep below advances it once every goroutine in the
	// bubble is blocked, and synctest.Wait lets Run finish what the new time set off.
	synctest.Test(t, func(t *testing.T) {
		m, err := New(Options{Dir: t.TempDir(), Names: Names("edge.example"),
			CALifetime: time.Hour, ServerLifetime: 10 * time.Minute, RenewBefore: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		first := m.Current()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		time.Sleep(time.Until(first.RenewAt) - time.Second)
		synctest.Wait()
		if m.Current() != first {
			t.Fatal("renewed before RenewAt")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		second := m.Current()
		if second == first || sameBytes(second.Cert.Leaf.Raw, first.Cert.Leaf.Raw) {
			t.Fatal("server certificate not renewed at RenewAt")
		}
		if !sameBytes(second.CA.Raw, first.CA.Raw) {
			t.Fatal("CA renewed with the server certificate")
		}
		if !second.RenewAt.After(time.Now()) {
			t.Fatalf("next RenewAt %v is not in the future", second.RenewAt)
		}

		// Server certificates come and go; at the CA's renewal point the CA is renewed
		// (same key) and a new server certificate issued with it.
		time.Sleep(time.Until(first.CA.NotAfter.Add(-2*time.Minute)) + time.Second)
		synctest.Wait()
		last := m.Current()
		if sameBytes(last.CA.Raw, first.CA.Raw) || !sameKey(last.CA, first.CA) {
			t.Fatalf("CA not renewed with its key: same certificate %v", sameBytes(last.CA.Raw, first.CA.Raw))
		}
		if err := verify(last, last.Pool(), "edge.example", time.Now()); err != nil {
			t.Fatalf("server certificate after the CA renewal: %v", err)
		}

		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
		default:
			t.Fatal("Run did not return when ctx ended")
		}
	})
}

func TestManager_RunRetriesFailedRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		m, err := New(Options{Dir: dir, Names: Names("edge.example"),
			CALifetime: time.Hour, ServerLifetime: 10 * time.Minute, RenewBefore: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		first := m.Current()
		// Writes fail while the directory is gone.
		tmp := dir + ".away"
		if err := os.Rename(dir, tmp); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go m.Run(ctx)
		time.Sleep(time.Until(first.RenewAt) + time.Second)
		synctest.Wait()
		if m.Current() != first {
			t.Fatal("renewed although the directory is gone")
		}
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
		time.Sleep(maxRetryInterval)
		synctest.Wait()
		if m.Current() == first {
			t.Fatal("failed renewal not retried")
		}
	})
}
