package certs

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"
)

// Info describes a certificate file, for reports such as edgectl check.
type Info struct {
	Subject   string // e.g. "CN=Outpost edge CA,O=Outpost"
	Issuer    string
	IsCA      bool
	NotBefore time.Time
	NotAfter  time.Time
	Names     []string // subject alternative names: DNS names, then IP addresses
}

// Inspect reads the first PEM certificate in the file at path.
func Inspect(path string) (Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Info{}, fmt.Errorf("inspect: %w", err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return Info{}, fmt.Errorf("inspect %s: %w", path, ErrNoCertificate)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return Info{}, fmt.Errorf("inspect %s: %w", path, err)
		}
		return Info{
			Subject:   c.Subject.String(),
			Issuer:    c.Issuer.String(),
			IsCA:      c.IsCA,
			NotBefore: c.NotBefore,
			NotAfter:  c.NotAfter,
			Names:     certNames(c.DNSNames, c.IPAddresses),
		}, nil
	}
}
