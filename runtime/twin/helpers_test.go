package twin

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// nest returns {"l1":{"l2":...{"lN": leaf}}}: leaf sits at level n, the
// innermost object at level n-1.
func nest(n int, leaf any) map[string]any {
	var v any = leaf
	for i := n; i >= 2; i-- {
		v = map[string]any{"l" + strconv.Itoa(i): v}
	}
	return map[string]any{"l1": v}
}

// nestPath returns "l1.l2....lN".
func nestPath(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "l" + strconv.Itoa(i+1)
	}
	return strings.Join(parts, ".")
}

// sized returns a valid document whose Size is exactly n (n >= 8).
func sized(t *testing.T, n int) map[string]any {
	t.Helper()
	m := map[string]any{}
	for i := 0; ; i++ {
		key := "k" + strconv.Itoa(1000+i)
		// A new member costs a comma (if not first), the quoted key, a colon
		// and the quoted string: 1 + 7 + 1 + 2 + len(s).
		overhead := len(`"`+key+`":""`) + 1
		if len(m) == 0 {
			overhead--
		}
		remaining := n - Size(m)
		if remaining-overhead <= MaxStringBytes {
			m[key] = strings.Repeat("x", remaining-overhead)
			break
		}
		m[key] = strings.Repeat("x", 4000)
	}
	if got := Size(m); got != n {
		t.Fatalf("sized(%d) built a %d-byte document", n, got)
	}
	return m
}

// mustDecode decodes a JSON object or fails the test.
func mustDecode(t testing.TB, s string) map[string]any {
	t.Helper()
	m, err := DecodePatch([]byte(s))
	if err != nil {
		t.Fatalf("DecodePatch(%s): %v", s, err)
	}
	return m
}

// at returns a fixed UTC instant offset by d, for injected clocks.
func at(d time.Duration) time.Time {
	return time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC).Add(d)
}
