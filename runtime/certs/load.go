package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"
)

// Bundle is the CA and the server certificate it issued, as one pass left them on disk.
// It is never changed once returned; a renewal makes a new Bundle.
type Bundle struct {
	// CA is the CA certificate; CAPEM is the same in PEM, as in the CA file.
	CA    *x509.Certificate
	CAPEM []byte
	// Cert is the server certificate chain (leaf, then CA) with its key and parsed Leaf,
	// ready for a tls.Config.
	Cert tls.Certificate
	// NotAfter is when the server certificate expires.
	NotAfter time.Time
	// RenewAt is when a pass will next renew something: RenewBefore ahead of the earlier
	// expiry of the CA and the server certificate.
	RenewAt time.Time
}

// Pool returns a certificate pool holding only the CA, for clients and tests.
func (b *Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.CA)
	return p
}

// LoadOrCreate loads the CA and the server certificate from opts.Dir, creating or renewing
// them at opts.Now as the package documentation's renewal rules say, and returns them.
func LoadOrCreate(opts Options) (*Bundle, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return load(o, o.Now())
}

// load is one pass with checked options.
func load(o Options, now time.Time) (*Bundle, error) {
	ca, caChanged, err := loadCA(o, now)
	if err != nil {
		return nil, err
	}
	server, err := loadServer(o, ca, caChanged, now)
	if err != nil {
		return nil, err
	}
	leaf := server.cert
	expiry := leaf.NotAfter
	if ca.cert.NotAfter.Before(expiry) {
		expiry = ca.cert.NotAfter
	}
	return &Bundle{
		CA:    ca.cert,
		CAPEM: ca.certPEM,
		// Send the CA along with the leaf: clients that were given only the CA file still
		// verify, and tools that print the chain show where it comes from.
		Cert:     tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.cert.Raw}, PrivateKey: server.key, Leaf: leaf},
		NotAfter: leaf.NotAfter,
		RenewAt:  expiry.Add(-o.RenewBefore),
	}, nil
}

// loadCA returns the CA, created or renewed when needed, and whether it changed.
func loadCA(o Options, now time.Time) (pair, bool, error) {
	ca, err := readPair(o.CAPath(), o.caKeyPath())
	if errors.Is(err, errUnreadable) {
		return pair{}, false, fmt.Errorf("CA: %w", err)
	}
	if err == nil && !ca.cert.IsCA {
		err = fmt.Errorf("%s is not a CA certificate", o.CAFile)
	}
	if err != nil {
		o.Logger.Info("creating a new CA; clients must be given the new CA file",
			"file", o.CAPath(), "reason", err.Error())
		key, err := newKey()
		if err != nil {
			return pair{}, false, fmt.Errorf("CA %s: %w", o.CAPath(), err)
		}
		if ca.keyPEM, err = marshalKey(key); err != nil {
			return pair{}, false, fmt.Errorf("CA %s: %w", o.CAPath(), err)
		}
		ca.key = key
		subject := pkix.Name{CommonName: o.CACommonName, Organization: []string{"Outpost"}}
		if ca.cert, ca.certPEM, err = issueCA(key, subject, o.CAMaxPathLen, o.CALifetime, now); err != nil {
			return pair{}, false, fmt.Errorf("CA %s: %w", o.CAPath(), err)
		}
		if err := writePair(o.CAPath(), ca.certPEM, o.caKeyPath(), ca.keyPEM); err != nil {
			return pair{}, false, err
		}
		return ca, true, nil
	}
	due, reason := NeedsRenewal(ca.cert, nil, now, o.RenewBefore)
	if !due {
		return ca, false, nil
	}
	o.Logger.Info("renewing the CA certificate (same key)", "file", o.CAPath(), "reason", reason)
	// MaxPathLen as parsed: -1 (no limit) or the limit the old certificate set.
	if ca.cert, ca.certPEM, err = issueCA(ca.key, ca.cert.Subject, ca.cert.MaxPathLen, o.CALifetime, now); err != nil {
		return pair{}, false, fmt.Errorf("CA %s: %w", o.CAPath(), err)
	}
	if err := writePair(o.CAPath(), ca.certPEM, "", nil); err != nil {
		return pair{}, false, err
	}
	return ca, true, nil
}

// loadServer returns the server certificate, issued again when needed.
func loadServer(o Options, ca pair, caChanged bool, now time.Time) (pair, error) {
	server, err := readPair(o.CertPath(), o.keyPath())
	var reason string
	switch {
	case errors.Is(err, errUnreadable):
		return pair{}, fmt.Errorf("server certificate: %w", err)
	case err != nil:
		reason = err.Error()
	case caChanged:
		reason = "the CA was created or renewed"
	case !bytes.Equal(server.cert.RawIssuer, ca.cert.RawSubject) || server.cert.CheckSignatureFrom(ca.cert) != nil:
		reason = "issued by another CA"
	default:
		_, reason = NeedsRenewal(server.cert, o.Names, now, o.RenewBefore)
	}
	if reason == "" {
		return server, nil
	}
	o.Logger.Info("issuing a new server certificate", "file", o.CertPath(), "names", o.Names, "reason", reason)
	cert, certPEM, key, err := issueServer(ca.cert, ca.key, o.Names, o.ServerLifetime, now)
	if err != nil {
		return pair{}, fmt.Errorf("server certificate %s: %w", o.CertPath(), err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return pair{}, fmt.Errorf("server certificate %s: %w", o.CertPath(), err)
	}
	if err := writePair(o.CertPath(), certPEM, o.keyPath(), keyPEM); err != nil {
		return pair{}, err
	}
	return pair{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}
