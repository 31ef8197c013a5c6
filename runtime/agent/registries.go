package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// RegistriesFile is the file name, in the agent's data directory, of the
// registry logins the operator stored with edgectl login. The agent uses
// them for pulls from a registry the deployment's registryCredentials do
// not cover (see Desired.Logins). It holds passwords: mode 0600.
const RegistriesFile = "registries.json"

// maxRegistriesBytes bounds RegistriesFile: a handful of logins.
const maxRegistriesBytes = 1 << 20

// RegistryLogin is one stored registry login.
type RegistryLogin struct {
	Address  string `json:"address"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// registriesDoc is RegistriesFile's JSON:
//
//	{"registries": [{"address": "myacr.azurecr.io", "username": "u", "password": "p"}]}
type registriesDoc struct {
	Registries []RegistryLogin `json:"registries"`
}

// ReadRegistries reads the logins stored at path. A missing file is no
// login and no error. Errors never quote the file's content.
func ReadRegistries(path string) ([]RegistryLogin, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry logins: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRegistriesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("registry logins %q: %w", path, err)
	}
	if len(b) > maxRegistriesBytes {
		return nil, fmt.Errorf("registry logins %q: larger than %d bytes", path, maxRegistriesBytes)
	}
	var doc registriesDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		// A JSON syntax error quotes no content, but an unmarshal type
		// error may name a value; keep only the position-free kind.
		return nil, fmt.Errorf("registry logins %q: not a valid registries file: %w", path, jsonProblem(err))
	}
	for i, l := range doc.Registries {
		if normalizeAddress(l.Address) == "" {
			return nil, fmt.Errorf("registry logins %q: entry %d has no address", path, i)
		}
	}
	return doc.Registries, nil
}

// jsonProblem describes a decoding error without any value from the input.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("field %q: want %s", te.Field, te.Type)
	}
	return err
}

// WriteRegistries saves logins at path, sorted by address, atomically
// (temporary file, fsync, rename) with mode 0600.
func WriteRegistries(path string, logins []RegistryLogin) error {
	sorted := append([]RegistryLogin(nil), logins...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Address < sorted[j].Address })
	b, err := json.MarshalIndent(registriesDoc{Registries: sorted}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write registry logins: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing left to remove
	// CreateTemp makes the file 0600; Chmod keeps it so under any umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write registry logins: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write registry logins: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write registry logins: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write registry logins: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write registry logins: %w", err)
	}
	return nil
}

// SameRegistry reports whether two registry addresses name the same
// registry, as Credential compares them (scheme and path ignored, case
// insensitive).
func SameRegistry(a, b string) bool {
	return normalizeAddress(a) == normalizeAddress(b)
}

// LoginCredentials turns stored logins into the credentials Desired.Logins
// holds, named "login:<address>" so that commands and logs tell them from
// the deployment's entries.
func LoginCredentials(logins []RegistryLogin) map[string]deployment.RegistryCredential {
	if len(logins) == 0 {
		return nil
	}
	out := make(map[string]deployment.RegistryCredential, len(logins))
	for _, l := range logins {
		out["login:"+normalizeAddress(l.Address)] = deployment.RegistryCredential{Address: l.Address, Username: l.Username, Password: l.Password}
	}
	return out
}
