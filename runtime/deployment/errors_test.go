package deployment

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStatusCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, CodeOK},
		{"invalid", &Error{Code: CodeInvalid}, CodeInvalid},
		{"schema", &Error{Code: CodeSchemaVersion}, CodeSchemaVersion},
		{"empty", &Error{Code: CodeEmpty}, CodeEmpty},
		{"wrapped", fmt.Errorf("module %q: %w", "m", &Error{Code: CodeInvalid}), CodeInvalid},
		{"not running sentinel", ErrNotRunning, CodeNotRunning},
		{"wrapped sentinel", fmt.Errorf("agent: %w", ErrEmpty), CodeEmpty},
		{"other", errors.New("pull failed"), CodeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusCode(tt.err); got != tt.want {
				t.Errorf("StatusCode = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestError_UnwrapsToSentinel(t *testing.T) {
	if !errors.Is(&Error{Code: CodeInvalid}, ErrInvalid) || !errors.Is(&Error{Code: CodeSchemaVersion}, ErrSchemaVersion) ||
		!errors.Is(&Error{Code: CodeEmpty}, ErrEmpty) || !errors.Is(&Error{Code: CodeNotRunning}, ErrNotRunning) {
		t.Error("an *Error does not unwrap to the sentinel of its code")
	}
	if errors.Is(&Error{Code: CodeInvalid}, ErrEmpty) {
		t.Error("400 matches ErrEmpty")
	}
}

func TestError_Text(t *testing.T) {
	if got := (&Error{Code: 400, Field: "a.b", Reason: "bad"}).Error(); got != "a.b: bad" {
		t.Errorf("got %q", got)
	}
	if got := (&Error{Code: 417, Reason: "empty"}).Error(); got != "empty" {
		t.Errorf("got %q", got)
	}
}

func TestDescription(t *testing.T) {
	if Description(nil) != "" {
		t.Error("nil error has a description")
	}
	e := &Error{Code: 400, Field: "modules.m.status", Reason: "required"}
	if got := Description(fmt.Errorf("ctx: %w", e)); got != "modules.m.status: required" {
		t.Errorf("wrapped *Error: %q", got)
	}
	if got := Description(errors.New("pull failed")); got != "pull failed" {
		t.Errorf("plain error: %q", got)
	}
	long := Description(errors.New(strings.Repeat("é", 2000)))
	if n := utf8.RuneCountInString(long); n != maxDescription || !utf8.ValidString(long) {
		t.Errorf("long description has %d runes", n)
	}
}

// TestDescription_NoSecrets: no credential error from ParseAgent or
// ParseManifest quotes a registry password.
func TestDescription_NoSecrets(t *testing.T) {
	const secret = "Tr0ub4dor&3-secret"
	cases := map[string]any{
		"username missing": map[string]any{"password": secret, "address": "x.io"},
		"address blank":    map[string]any{"username": "u", "password": secret, "address": ""},
		"address number":   map[string]any{"username": "u", "password": secret, "address": 7},
		"password array":   map[string]any{"username": "u", "password": []any{secret}, "address": "x.io"},
	}
	for name, cred := range cases {
		t.Run(name, func(t *testing.T) {
			doc := baseAgent()
			set(doc, "runtime.settings.registryCredentials", map[string]any{"reg": cred})
			_, err := ParseAgent(mustJSON(t, doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(Description(err), secret) {
				t.Errorf("description leaks the password: %s", Description(err))
			}
			manifest := map[string]any{"modulesContent": map[string]any{
				"$edgeAgent": map[string]any{"properties.desired": doc},
				"$edgeHub":   map[string]any{"properties.desired": baseHub("1.1")},
			}}
			_, err = ParseManifest(mustJSON(t, manifest))
			if err == nil || strings.Contains(Description(err), secret) {
				t.Errorf("manifest error %v", err)
			}
		})
	}
}
