package route

import (
	"strings"
	"unicode/utf8"
)

// The lexer reproduces Azure's ANTLR lexer (GrammarLexer.g4) exactly, because a route that
// deploys on Azure must mean the same thing here. ANTLR picks the longest match among all
// token rules and breaks ties by rule order; tokKind below is declared in that order.
//
// The consequence users notice: identifier characters are everything except
// ()<>@,;:\"/[]?={} and whitespace, so `a-1`, `x*2`, `a||b` and `-x` are single
// identifiers (application property names), and operators other than / < > = need
// whitespace around them. `alert-level = 'high'` therefore works as Azure users expect.

type tokKind uint8

const (
	tkEOF tokKind = iota
	// implicit parser literals come first in ANTLR's rule order
	tkLBrace
	tkRBrace
	// keywords (case-insensitive)
	tkSelect
	tkFrom
	tkWhere
	tkInto
	tkString
	tkUnterminated
	tkInt
	tkHex
	tkReal
	tkTrue // literals are lower case only, as in Azure
	tkFalse
	tkNull
	tkUndefined
	tkLParen
	tkRParen
	tkComma
	tkPlus
	tkMinus
	tkStar
	tkSlash
	tkPercent
	tkAnd // AND, OR, NOT are case-insensitive
	tkOr
	tkNot
	tkEq
	tkNe   // !=
	tkLtGt // <>
	tkLe
	tkGe
	tkGt
	tkLt
	tkConcat   // ||
	tkCoalesce // ??
	tkSysProp  // $name, $body.a.b[0]
	tkID
	tkQueryPath // a[0] without '$': never valid in the grammar, exists so it lexes as Azure does
	tkWS
	tkComment // /* ... */
	tkUnknown
	numTokKinds
)

// fixed maps token kinds that are a fixed (case-sensitive) string to that string.
var fixed = map[tokKind]string{
	tkLBrace: "{", tkRBrace: "}",
	tkTrue: "true", tkFalse: "false", tkNull: "null", tkUndefined: "undefined",
	tkLParen: "(", tkRParen: ")", tkComma: ",", tkPlus: "+", tkMinus: "-", tkStar: "*",
	tkSlash: "/", tkPercent: "%", tkEq: "=", tkNe: "!=", tkLtGt: "<>", tkLe: "<=",
	tkGe: ">=", tkGt: ">", tkLt: "<", tkConcat: "||", tkCoalesce: "??",
}

// keywords maps case-insensitive word tokens to their spelling.
var keywords = map[tokKind]string{
	tkSelect: "select", tkFrom: "from", tkWhere: "where", tkInto: "into",
	tkAnd: "and", tkOr: "or", tkNot: "not",
}

type token struct {
	kind tokKind
	off  int    // byte offset in the lexed text
	text string // the exact source text
}

func (t token) end() int { return t.off + len(t.text) }

// describe names t for error messages.
func (t token) describe() string {
	switch t.kind {
	case tkEOF:
		return "end of text"
	case tkUnknown:
		return "symbol " + quoteText(t.text)
	}
	return quoteText(t.text)
}

func quoteText(s string) string {
	if len(s) > 40 {
		cut := 37
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return "'" + s + "'"
}

// lex splits s into tokens, dropping whitespace and comments, and appends an EOF token.
// It never fails: characters no rule accepts become tkUnknown tokens for the parser to report.
func lex(s string) []token {
	var toks []token
	for off := 0; off < len(s); {
		kind, n := longestMatch(s[off:])
		if kind != tkWS && kind != tkComment {
			toks = append(toks, token{kind: kind, off: off, text: s[off : off+n]})
		}
		off += n
	}
	return append(toks, token{kind: tkEOF, off: len(s)})
}

// longestMatch returns the token kind ANTLR would pick at the start of s (non-empty) and its length.
func longestMatch(s string) (tokKind, int) {
	best, bestLen := tkUnknown, 0
	for k := tokKind(1); k < numTokKinds; k++ {
		if n := matchLen(k, s); n > bestLen {
			best, bestLen = k, n
		}
	}
	if bestLen == 0 { // cannot happen: tkUnknown matches one character
		_, n := utf8.DecodeRuneInString(s)
		return tkUnknown, n
	}
	return best, bestLen
}

// matchLen is the length of the longest prefix of s that token rule k matches (0 = none).
func matchLen(k tokKind, s string) int {
	if f, ok := fixed[k]; ok {
		if strings.HasPrefix(s, f) {
			return len(f)
		}
		return 0
	}
	if w, ok := keywords[k]; ok {
		if len(s) >= len(w) && strings.EqualFold(s[:len(w)], w) {
			return len(w)
		}
		return 0
	}
	switch k {
	case tkString:
		if n, closed := scanQuoted(s); closed {
			return n + 1
		}
	case tkUnterminated:
		if n, _ := scanQuoted(s); n > 0 {
			return n
		}
	case tkInt:
		i := 0
		if strings.HasPrefix(s, "-") {
			i = 1
		}
		if d := digits(s[i:]); d > 0 {
			return i + d
		}
	case tkHex:
		if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
			if h := hexDigits(s[2:]); h > 0 {
				return 2 + h
			}
		}
	case tkReal:
		return matchReal(s)
	case tkSysProp:
		if s[0] == '$' {
			if n := span(s[1:], isQueryPathChar); n > 0 {
				return 1 + n
			}
		}
	case tkID:
		return span(s, isIDChar)
	case tkQueryPath:
		return span(s, isQueryPathChar)
	case tkWS:
		return span(s, isSpace)
	case tkComment:
		if strings.HasPrefix(s, "/*") {
			if i := strings.Index(s[2:], "*/"); i >= 0 {
				return 2 + i + 2
			}
		}
	case tkUnknown:
		_, n := utf8.DecodeRuneInString(s)
		return n
	}
	return 0
}

// scanQuoted scans a string literal starting with ' or ". It returns the length up to
// (not including) the closing quote and whether the closing quote is there. Escapes are
// \" \' \\ and \uXXXX; any other backslash ends the literal (unterminated).
func scanQuoted(s string) (int, bool) {
	if s == "" || (s[0] != '"' && s[0] != '\'') {
		return 0, false
	}
	q := s[0]
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == q:
			return i, true
		case c == '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\'' || s[i+1] == '\\') {
				i += 2
				continue
			}
			if i+6 <= len(s) && s[i+1] == 'u' && hexDigits(s[i+2:i+6]) == 4 {
				i += 6
				continue
			}
			return i, false
		default:
			i++
		}
	}
	return i, false
}

// matchReal implements REAL_LITERAL: '-'? [0-9]* '.' [0-9]+ EXP? | '-'? [0-9]* EXP.
func matchReal(s string) int {
	i := 0
	if strings.HasPrefix(s, "-") {
		i = 1
	}
	j := i + digits(s[i:])
	best := 0
	if j < len(s) && s[j] == '.' {
		if f := digits(s[j+1:]); f > 0 {
			best = j + 1 + f
			best += matchExp(s[best:])
		}
	}
	if e := matchExp(s[j:]); e > 0 && j+e > best {
		best = j + e
	}
	return best
}

func matchExp(s string) int {
	if s == "" || (s[0] != 'e' && s[0] != 'E') {
		return 0
	}
	i := 1
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if d := digits(s[i:]); d > 0 {
		return i + d
	}
	return 0
}

func digits(s string) int { return span(s, func(c byte) bool { return c >= '0' && c <= '9' }) }

func hexDigits(s string) int { return span(s, isHex) }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func span(s string, ok func(byte) bool) int {
	i := 0
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isQueryPathChar is QUERY_PATH_CHARS: anything but ()<>@,;:\"/?={} and whitespace.
// Bytes >= 0x80 (non-ASCII runes) are always accepted, as the ANTLR sets are negations.
func isQueryPathChar(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '?', '=', '{', '}', ' ', '\t', '\n', '\r':
		return false
	}
	return true
}

// isIDChar is ID_CHARS: QUERY_PATH_CHARS without [ and ].
func isIDChar(c byte) bool { return c != '[' && c != ']' && isQueryPathChar(c) }
