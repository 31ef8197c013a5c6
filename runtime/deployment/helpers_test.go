package deployment

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// del marks a key to delete in set.
type delMarker struct{}

var del = delMarker{}

// set assigns v at the dotted path inside doc, creating objects on the way;
// v == del removes the key.
func set(doc map[string]any, dotted string, v any) {
	keys := strings.Split(dotted, ".")
	m := doc
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if v == del {
		delete(m, last)
		return
	}
	m[last] = v
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantError asserts that err is an *Error with the given code and field.
func wantError(t *testing.T, err error, code int, field string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Code != code || e.Field != field {
		t.Fatalf("got code %d field %q (%v), want code %d field %q", e.Code, e.Field, e, code, field)
	}
	return e
}
