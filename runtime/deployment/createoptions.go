package deployment

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Twin string values are limited to 512 characters, so createOptions is split
// into "createOptions", "createOptions01" … "createOptions99" (B.1, A.2).
const (
	createOptionsKey  = "createOptions"
	chunkSize         = 512
	maxChunks         = 100
	emptyCreateOption = "{}"
)

// ChunkCreateOptions splits createOptions into twin values of at most 512
// UTF-16 code units (the .NET notion of a character), never splitting a
// character, keyed "createOptions", "createOptions01", … "createOptions99".
// It is the inverse of the reader: joining the values in key order gives
// createOptions back. Text that needs more than 100 chunks keeps the
// remainder in createOptions99 rather than losing it.
func ChunkCreateOptions(createOptions string) map[string]string {
	out := make(map[string]string)
	rest := createOptions
	for i := 0; ; i++ {
		key := chunkKey(i)
		if i == maxChunks-1 {
			out[key] = rest
			return out
		}
		n := prefixUnits(rest, chunkSize)
		out[key] = rest[:n]
		rest = rest[n:]
		if rest == "" {
			return out
		}
	}
}

func chunkKey(i int) string {
	if i == 0 {
		return createOptionsKey
	}
	return fmt.Sprintf("%s%02d", createOptionsKey, i)
}

// prefixUnits returns the byte length of the longest prefix of s holding at
// most limit UTF-16 code units.
func prefixUnits(s string, limit int) int {
	units := 0
	for i, r := range s {
		u := 1
		if r >= 0x10000 {
			u = 2
		}
		if units+u > limit {
			return i
		}
		units += u
	}
	return len(s)
}

// JoinCreateOptions joins chunked createOptions values (for example the
// settings of a reported module) with the same rules as ParseAgent: keys
// matching createOptions[NN] case-insensitively, an unbroken sequence, and
// an empty or "null" result meaning "{}". Other keys are ignored.
func JoinCreateOptions(settings map[string]string) (string, error) {
	var chunks []chunk
	for k, v := range settings {
		chunks = append(chunks, chunk{key: k, text: v})
	}
	s, err := joinChunks(chunks, nil)
	if err != nil {
		return "", err
	}
	return s, nil
}

type chunk struct {
	key  string
	text string
}

// createOptionsFrom gathers the createOptions chunks of a settings object.
// Azure turns a non-string chunk into its JSON text, which is how a
// createOptions written as an object (as in deployment.template.json) is
// accepted; null counts as empty.
func createOptionsFrom(settings *value, p path) (string, *Error) {
	var chunks []chunk
	for _, m := range settings.members {
		if !isChunkKey(m.key) {
			continue
		}
		text := ""
		switch m.val.kind {
		case kindNull:
		case kindString:
			text = m.val.str
		default:
			text = m.val.text()
		}
		chunks = append(chunks, chunk{key: m.key, text: text})
	}
	return joinChunks(chunks, p)
}

func isChunkKey(key string) bool {
	return len(key) >= len(createOptionsKey) &&
		strings.EqualFold(key[:len(createOptionsKey)], createOptionsKey) &&
		strings.Trim(key[len(createOptionsKey):], "0123456789") == ""
}

// joinChunks orders chunks by number, checks the sequence and validates the
// joined text. p is the path of the settings object.
func joinChunks(chunks []chunk, p path) (string, *Error) {
	type numbered struct {
		n int
		chunk
	}
	var seq []numbered
	for _, c := range chunks {
		if !isChunkKey(c.key) {
			continue
		}
		suffix := c.key[len(createOptionsKey):]
		n := 0
		if suffix != "" {
			if len(suffix) != 2 || suffix == "00" {
				return "", invalidf(p.child(c.key), "chunk number must be two digits from 01 to 99")
			}
			n = int(suffix[0]-'0')*10 + int(suffix[1]-'0')
		}
		seq = append(seq, numbered{n, c})
	}
	if len(seq) == 0 {
		return emptyCreateOption, nil
	}
	sort.Slice(seq, func(i, j int) bool {
		if seq[i].n != seq[j].n {
			return seq[i].n < seq[j].n
		}
		return seq[i].key < seq[j].key
	})
	var b strings.Builder
	for i, c := range seq {
		switch {
		case c.n < i:
			return "", invalidf(p.child(c.key), "duplicate chunk: %s is also present", seq[i-1].key)
		case c.n > i:
			return "", invalidf(p.child(c.key), "chunks must be numbered without gaps, but %s is missing", chunkKey(i))
		}
		b.WriteString(c.text)
	}
	joined := b.String()
	trimmed := strings.TrimSpace(joined)
	if trimmed == "" || strings.EqualFold(trimmed, "null") {
		return emptyCreateOption, nil
	}
	if !utf8.ValidString(joined) || !json.Valid([]byte(joined)) || trimmed[0] != '{' {
		return "", invalidf(p.child(createOptionsKey), "must be a JSON object with Docker container create options")
	}
	return joined, nil
}
