package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// resyncInterval bounds how long Run sleeps: a timer runs on the monotonic clock,
	// certificates expire by the wall clock, and the two drift apart when the wall clock
	// is set or the machine sleeps.
	resyncInterval = time.Hour
	// maxRetryInterval bounds the wait before a failed renewal is tried again.
	maxRetryInterval = time.Minute
)

// Manager keeps a Bundle current: it hands the current server certificate to TLS
// handshakes and renews the certificates when they are due, so listeners never restart.
type Manager struct {
	opts Options
	mu   sync.Mutex // held by Renew, so that one pass at a time writes the files
	cur  atomic.Pointer[Bundle]
}

// New checks opts, runs a first pass (LoadOrCreate) and returns a Manager serving its
// result.
func New(opts Options) (*Manager, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := load(o, o.Now())
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: o}
	m.cur.Store(b)
	return m, nil
}

// Current returns the bundle new handshakes get.
func (m *Manager) Current() *Bundle { return m.cur.Load() }

// Renew runs a pass at now and makes its result current. It reports whether the CA or
// the server certificate changed. On error the current bundle stays.
func (m *Manager) Renew(now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := load(m.opts, now)
	if err != nil {
		return false, err
	}
	old := m.cur.Load()
	if bytes.Equal(old.Cert.Leaf.Raw, b.Cert.Leaf.Raw) && bytes.Equal(old.CA.Raw, b.CA.Raw) {
		return false, nil
	}
	m.cur.Store(b)
	return true, nil
}

// Run renews the certificates whenever the current bundle's RenewAt has come, until ctx
// is done; then it returns nil. A failed renewal is logged and retried (the current
// certificate keeps serving), so Run itself does not fail.
func (m *Manager) Run(ctx context.Context) error {
	retry := min(maxRetryInterval, max(m.opts.RenewBefore/4, time.Second))
	for {
		now := m.opts.Now()
		next := m.Current().RenewAt
		if !now.Before(next) {
			if _, err := m.Renew(now); err != nil {
				m.opts.Logger.Error("certificate renewal failed; the current certificate keeps serving",
					"dir", m.opts.Dir, "retry_in", retry, "err", err)
			}
			next = m.Current().RenewAt
			if !now.Before(next) {
				next = now.Add(retry)
			}
		}
		t := time.NewTimer(min(next.Sub(now), resyncInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// GetCertificate returns the current server certificate, for tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &m.Current().Cert, nil
}

// TLSConfig returns a server configuration that presents the current certificate (through
// GetCertificate), TLS 1.2 or later (what the Azure SDKs negotiate). Callers may add to
// the copy they get, e.g. ClientAuth or NextProtos.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: m.GetCertificate, MinVersion: tls.VersionTLS12}
}
