package certs

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Default file names inside Options.Dir: the edge hub's layout.
const (
	DefaultCAFile    = "edge-ca.pem"
	DefaultCAKeyFile = "edge-ca-key.pem"
	DefaultCertFile  = "server.pem"
	DefaultKeyFile   = "server-key.pem"
)

// Defaults for the other options.
const (
	// DefaultCACommonName is the subject common name of a new CA.
	DefaultCACommonName = "Outpost edge CA"
	// DefaultCALifetime is how long a new CA certificate is valid.
	DefaultCALifetime = 10 * 365 * 24 * time.Hour
	// DefaultServerLifetime is how long a new server certificate is valid.
	DefaultServerLifetime = 365 * 24 * time.Hour
	// DefaultRenewBefore is how long before its expiry a certificate is renewed.
	DefaultRenewBefore = 30 * 24 * time.Hour
)

// backdate covers clients whose clock is a little behind ours.
const backdate = time.Hour

// Options says where the certificates live, what they are issued for and when they are
// renewed. Dir and Names are required; every other zero value means its default.
type Options struct {
	// Dir is the directory holding the four files. It must exist.
	Dir string
	// CAFile, CAKeyFile, CertFile and KeyFile are the file names inside Dir (no paths);
	// defaults DefaultCAFile, DefaultCAKeyFile, DefaultCertFile and DefaultKeyFile.
	CAFile, CAKeyFile, CertFile, KeyFile string

	// Names are the server certificate's subject alternative names: DNS names and IP
	// literals (see Names). The first is also its common name.
	Names []string

	// CACommonName is the subject common name of a newly created CA (default
	// DefaultCACommonName). A CA kept or renewed keeps its subject.
	CACommonName string
	// CAMaxPathLen is how many intermediate CAs may sit below a newly created CA; 0 lets
	// it issue leaf certificates only.
	CAMaxPathLen int

	// CALifetime and ServerLifetime are the validity of newly issued certificates
	// (defaults DefaultCALifetime and DefaultServerLifetime).
	CALifetime, ServerLifetime time.Duration
	// RenewBefore is how long before its expiry a certificate is renewed. It must be
	// shorter than both lifetimes; the default is DefaultRenewBefore, or a third of the
	// shorter lifetime when that is less.
	RenewBefore time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives one line per certificate created or renewed (default: discard).
	Logger *slog.Logger
}

// CAPath returns the path of the CA certificate file, the one clients are given.
func (o Options) CAPath() string { return filepath.Join(o.Dir, orDefault(o.CAFile, DefaultCAFile)) }

// CertPath returns the path of the server certificate file.
func (o Options) CertPath() string {
	return filepath.Join(o.Dir, orDefault(o.CertFile, DefaultCertFile))
}

func (o Options) caKeyPath() string {
	return filepath.Join(o.Dir, orDefault(o.CAKeyFile, DefaultCAKeyFile))
}

func (o Options) keyPath() string { return filepath.Join(o.Dir, orDefault(o.KeyFile, DefaultKeyFile)) }

// withDefaults checks o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("%w: Dir is empty", ErrInvalidOptions)
	}
	o.CAFile = orDefault(o.CAFile, DefaultCAFile)
	o.CAKeyFile = orDefault(o.CAKeyFile, DefaultCAKeyFile)
	o.CertFile = orDefault(o.CertFile, DefaultCertFile)
	o.KeyFile = orDefault(o.KeyFile, DefaultKeyFile)
	files := []string{o.CAFile, o.CAKeyFile, o.CertFile, o.KeyFile}
	for i, f := range files {
		if f != filepath.Base(f) || f == "." || f == ".." {
			return o, fmt.Errorf("%w: file name %q is not a plain name", ErrInvalidOptions, f)
		}
		if slices.Contains(files[:i], f) {
			return o, fmt.Errorf("%w: file name %q used twice", ErrInvalidOptions, f)
		}
	}
	if err := checkNames(o.Names); err != nil {
		return o, err
	}
	o.CACommonName = orDefault(strings.TrimSpace(o.CACommonName), DefaultCACommonName)
	if o.CAMaxPathLen < 0 {
		return o, fmt.Errorf("%w: CAMaxPathLen %d is negative", ErrInvalidOptions, o.CAMaxPathLen)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CALifetime", &o.CALifetime, DefaultCALifetime},
		{"ServerLifetime", &o.ServerLifetime, DefaultServerLifetime},
	} {
		switch {
		case *d.v < 0:
			return o, fmt.Errorf("%w: %s %v is negative", ErrInvalidOptions, d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	shorter := min(o.CALifetime, o.ServerLifetime)
	switch {
	case o.RenewBefore < 0:
		return o, fmt.Errorf("%w: RenewBefore %v is negative", ErrInvalidOptions, o.RenewBefore)
	case o.RenewBefore == 0:
		o.RenewBefore = min(DefaultRenewBefore, shorter/3)
	case o.RenewBefore >= shorter:
		// Otherwise every new certificate would be due at once, and renewed on every pass.
		return o, fmt.Errorf("%w: RenewBefore %v is not shorter than the lifetime %v", ErrInvalidOptions, o.RenewBefore, shorter)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
