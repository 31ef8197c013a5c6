package route

import (
	"strings"
	"testing"
)

func TestDecodeBody_Encodings(t *testing.T) {
	le32 := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
		return b
	}
	be32 := func(s string) []byte {
		b := []byte{0, 0, 0xFE, 0xFF}
		for _, r := range s {
			b = append(b, byte(r>>24), byte(r>>16), byte(r>>8), byte(r))
		}
		return b
	}
	tests := []struct {
		name     string
		encoding string
		body     []byte
		want     string // the value of $body.a
	}{
		{"utf-32 little-endian with BOM", "utf-32", append([]byte{0xFF, 0xFE, 0, 0}, le32(`{"a":"x"}`)...), `"x"`},
		{"utf-32 big-endian with BOM", "utf-32", be32(`{"a":"é"}`), `"é"`},
		{"utf-32 invalid code point becomes U+FFFD", "utf-32", append(le32(`{"a":"`), append([]byte{0, 0, 0x11, 0}, le32(`"}`)...)...), "\"\ufffd\""},
		{"utf-32 truncated", "utf-32", le32(`{"a":1}`)[:27], "undefined"},
		{"utf-16 odd length ignores the last byte", "utf-16", append([]byte(strings.Join(strings.Split(`{"a":1}`, ""), "\x00")+"\x00"), 0x7B), "1"},
		{"utf-16 lone surrogate becomes U+FFFD", "utf-16", []byte("{\x00\"\x00a\x00\"\x00:\x00\"\x00\x00\xd8\"\x00}\x00"), "\"\ufffd\""},
		{"empty body", "utf-8", nil, "undefined"},
		{"JSON null body", "utf-8", []byte("null"), "undefined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Message{Body: tc.body, System: map[string]string{SysContentType: "application/json", SysContentEncoding: tc.encoding}}
			if got := evalString(t, "$body.a", m); got != tc.want {
				t.Errorf("$body.a = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParse_DeepNesting(t *testing.T) {
	deep := strings.Repeat("(", 1000) + "true" + strings.Repeat(")", 1000)
	if _, err := CompileCondition(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("1000 nested parentheses: %v, want a nesting error", err)
	}
	nots := strings.Repeat("NOT ", 1000) + "true"
	if _, err := CompileCondition(nots); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("1000 NOTs: %v, want a nesting error", err)
	}
	// A long flat chain is not nesting: it compiles and evaluates.
	chain := "1" + strings.Repeat(" + 1", 10000) + " = 10001"
	c, err := CompileCondition(chain)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Eval(&Message{}); !v.IsTrue() {
		t.Errorf("long chain = %v", v)
	}
}

func TestKind_String(t *testing.T) {
	for k, want := range map[Kind]string{KindUndefined: "undefined", KindNull: "null", KindBool: "bool", KindNumber: "number", KindString: "string", Kind(9): "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want)
		}
	}
}
