package certs

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// pair is a certificate and its key as read from (or written to) disk.
type pair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// readPair loads a certificate file and its key file and checks that they belong together
// and that the key is ECDSA. Only the first certificate of the file is used. A missing file
// or bad content is a reason to issue a new pair; errUnreadable (permissions, I/O) is not.
func readPair(certPath, keyPath string) (pair, error) {
	certPEM, err := readFile(certPath)
	if err != nil {
		return pair{}, err
	}
	keyPEM, err := readFile(keyPath)
	if err != nil {
		return pair{}, err
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return pair{}, fmt.Errorf("%s and %s: %w", filepath.Base(certPath), filepath.Base(keyPath), err)
	}
	key, ok := kp.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return pair{}, fmt.Errorf("%s: not an ECDSA key", filepath.Base(keyPath))
	}
	leaf := kp.Leaf
	if leaf == nil { // set by X509KeyPair unless GODEBUG x509keypairleaf=0
		if leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
			return pair{}, fmt.Errorf("%s: %w", filepath.Base(certPath), err)
		}
	}
	return pair{cert: leaf, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// readFile reads a file; a file that exists but cannot be read is an errUnreadable.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	return b, err
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writePair writes the key (0600), when keyPEM is not nil, and then the certificate
// (0644), each atomically. The key goes first: a crash in between leaves a certificate
// that does not match its key, which the next pass detects and repairs.
func writePair(certPath string, certPEM []byte, keyPath string, keyPEM []byte) error {
	if keyPEM != nil {
		if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
			return err
		}
	}
	return writeFileAtomic(certPath, certPEM, 0o644)
}

// writeFileAtomic writes data to a temporary file with mode perm in the same directory,
// syncs it and renames it over path, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Chmod(perm)       // before the data, so a key is never readable by others
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
