package route

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The parser is hand-written recursive descent over the token list, with precedence
// climbing (Pratt) for binary operators. It follows Route.g4 and Condition.g4:
//
//	route     = [ SELECT "*" ] FROM path [ WHERE condition ] INTO sink .
//	path      = "/" item { "/" item } .            item = "*" | identifier .
//	sink      = "$upstream" | identifier "(" string ")" .   (identifier: BrokeredEndpoint)
//	condition = expr .
//	expr      = unary { binop unary } .             (precedence below)
//	unary     = "-" unary | NOT unary | primary .
//	primary   = "(" expr ")" | literal | $name | "{" $name "}" | identifier
//	          | identifier "(" [ expr { "," expr } ] ")" .
//
// Binary operators, loosest first, all left-associative:
//
//	??   OR   AND   = != <>   < <= > >=   + - ||   * / %
//
// Unary - and NOT bind tighter than every binary operator (as in Azure's grammar), so
// NOT a = b is (NOT a) = b; write NOT (a = b).

type parser struct {
	src  string
	toks []token
	i    int
}

func newParser(text string) *parser { return &parser{src: text, toks: lex(text)} }

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}

// unexpected reports the current token as unexpected, naming what was wanted.
func (p *parser) unexpected(want string) *Error {
	t := p.peek()
	switch t.kind {
	case tkUnterminated:
		return syntaxErr(t.off, "unterminated string")
	case tkUnknown:
		return syntaxErr(t.off, "unrecognized symbol %s", quoteText(t.text))
	}
	return syntaxErr(t.off, "unexpected %s, expected %s", t.describe(), want)
}

func (p *parser) expect(k tokKind, want string) (token, *Error) {
	if p.peek().kind != k {
		return token{}, p.unexpected(want)
	}
	return p.next(), nil
}

// parsedRoute is the syntactic result of parseRoute, before type checking.
type parsedRoute struct {
	path     string // as written, tokens concatenated (whitespace dropped, as ANTLR's GetText)
	cond     node   // nil without WHERE
	condText string // the WHERE clause exactly as written
	sink     Endpoint
	sinkText string
}

func (p *parser) parseRoute() (*parsedRoute, *Error) {
	if p.peek().kind == tkEOF {
		return nil, syntaxErr(0, "empty route, expected FROM")
	}
	if p.peek().kind == tkSelect {
		p.next()
		if _, err := p.expect(tkStar, "'*' after SELECT"); err != nil {
			return nil, err
		}
	}
	if _, err := p.expect(tkFrom, "FROM"); err != nil {
		return nil, err
	}
	r := &parsedRoute{}
	var path strings.Builder
	for {
		if _, err := p.expect(tkSlash, "'/' starting a path segment"); err != nil {
			return nil, err
		}
		item := p.peek()
		if item.kind != tkStar && item.kind != tkID {
			return nil, p.unexpected("a path segment (a name or '*')")
		}
		p.next()
		path.WriteString("/" + item.text)
		if p.peek().kind != tkSlash {
			break
		}
	}
	r.path = path.String()
	if p.peek().kind == tkWhere {
		p.next()
		start := p.peek().off
		cond, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		r.cond = cond
		r.condText = p.src[start:p.toks[p.i-1].end()]
	}
	if p.peek().kind != tkInto {
		if r.cond != nil {
			return nil, p.unexpected("an operator or INTO")
		}
		return nil, p.unexpected("WHERE or INTO")
	}
	p.next()
	sink, err := p.parseSink(r)
	if err != nil {
		return nil, err
	}
	r.sink = sink
	if p.peek().kind != tkEOF {
		return nil, p.unexpected("end of route after the sink")
	}
	return r, nil
}

func (p *parser) parseSink(r *parsedRoute) (Endpoint, *Error) {
	t := p.peek()
	switch t.kind {
	case tkSysProp:
		p.next()
		r.sinkText = t.text
		if !strings.EqualFold(t.text, "$upstream") {
			return Endpoint{}, syntaxErr(t.off, "system endpoint %s is not supported (only $upstream)", quoteText(t.text))
		}
		return Endpoint{Kind: Upstream}, nil
	case tkID:
		p.next()
		if !strings.EqualFold(t.text, "BrokeredEndpoint") {
			return Endpoint{}, syntaxErr(t.off, "function endpoint %s is not supported (only BrokeredEndpoint)", quoteText(t.text))
		}
		if _, err := p.expect(tkLParen, "'(' after BrokeredEndpoint"); err != nil {
			return Endpoint{}, err
		}
		s, err := p.expect(tkString, "a quoted endpoint address")
		if err != nil {
			return Endpoint{}, err
		}
		if _, err := p.expect(tkRParen, "')'"); err != nil {
			return Endpoint{}, err
		}
		r.sinkText = p.src[t.off:p.toks[p.i-1].end()]
		// Azure uses the raw text between the quotes, without unescaping.
		ep, msg := parseBrokered(s.text[1 : len(s.text)-1])
		if msg != "" {
			return Endpoint{}, syntaxErr(s.off, "%s", msg)
		}
		return ep, nil
	}
	return Endpoint{}, p.unexpected("a sink ($upstream or BrokeredEndpoint(\"/modules/{m}/inputs/{i}\"))")
}

// parseConditionOnly parses a whole text as one condition.
func (p *parser) parseConditionOnly() (node, *Error) {
	if p.peek().kind == tkEOF {
		return nil, syntaxErr(0, "empty condition")
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tkEOF {
		return nil, p.unexpected("an operator or end of condition")
	}
	return n, nil
}

// binaryPrec is the binding power of a binary operator; 0 means "not a binary operator".
func binaryPrec(k tokKind) int {
	switch k {
	case tkCoalesce:
		return 1
	case tkOr:
		return 2
	case tkAnd:
		return 3
	case tkEq, tkNe, tkLtGt:
		return 4
	case tkLt, tkLe, tkGt, tkGe:
		return 5
	case tkPlus, tkMinus, tkConcat:
		return 6
	case tkStar, tkSlash, tkPercent:
		return 7
	}
	return 0
}

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 500

func (p *parser) expr(minPrec int) (node, *Error) {
	return p.exprDepth(minPrec, 0)
}

func (p *parser) exprDepth(minPrec, depth int) (node, *Error) {
	left, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		prec := binaryPrec(op.kind)
		if prec == 0 || prec <= minPrec {
			return left, nil
		}
		p.next()
		right, err := p.exprDepth(prec, depth+1)
		if err != nil {
			return nil, err
		}
		left = &binaryNode{off: op.off, op: op.kind, l: left, r: right}
	}
}

func (p *parser) unary(depth int) (node, *Error) {
	if depth > maxDepth {
		return nil, syntaxErr(p.peek().off, "condition nested more than %d levels deep", maxDepth)
	}
	t := p.peek()
	if t.kind == tkMinus || t.kind == tkNot {
		p.next()
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &unaryNode{off: t.off, op: t.kind, x: x}, nil
	}
	return p.primary(depth)
}

func (p *parser) primary(depth int) (node, *Error) {
	t := p.peek()
	switch t.kind {
	case tkLParen:
		p.next()
		x, err := p.exprDepth(0, depth+1)
		if err != nil {
			return nil, err
		}
		if p.peek().kind != tkRParen {
			if p.peek().kind == tkEOF || p.peek().kind == tkInto {
				return nil, syntaxErr(t.off, "missing closing ')'")
			}
			return nil, p.unexpected("')'")
		}
		p.next()
		return x, nil
	case tkInt, tkReal:
		p.next()
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil && !isRangeErr(err) {
			// e.g. "e5" lexes as a REAL that .NET cannot parse: Azure makes it undefined.
			return &litNode{off: t.off, text: t.text, t: tyUndefined}, nil
		}
		return &litNode{off: t.off, text: t.text, v: NumberValue(f), t: tyNumber}, nil
	case tkHex:
		p.next()
		u, err := strconv.ParseUint(t.text[2:], 16, 64)
		if err != nil {
			return nil, syntaxErr(t.off, "hex literal %s does not fit in 64 bits", quoteText(t.text))
		}
		// .NET long.Parse(HexNumber) reads 16 hex digits as two's complement.
		return &litNode{off: t.off, text: t.text, v: NumberValue(float64(int64(u))), t: tyNumber}, nil
	case tkString:
		p.next()
		return &litNode{off: t.off, text: t.text, v: StringValue(unescape(t.text[1 : len(t.text)-1])), t: tyString}, nil
	case tkTrue, tkFalse:
		p.next()
		return &litNode{off: t.off, text: t.text, v: BoolValue(t.kind == tkTrue), t: tyBool}, nil
	case tkNull:
		p.next()
		return &litNode{off: t.off, text: t.text, v: NullValue(), t: tyNull}, nil
	case tkUndefined:
		p.next()
		return &litNode{off: t.off, text: t.text, t: tyUndefined}, nil
	case tkSysProp:
		p.next()
		return propNode(t, false)
	case tkLBrace:
		p.next()
		prop, err := p.expect(tkSysProp, "a $property after '{'")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tkRBrace, "'}'"); err != nil {
			return nil, err
		}
		n, perr := propNode(prop, true)
		if perr != nil {
			return nil, perr
		}
		return n, nil
	case tkID:
		p.next()
		if p.peek().kind != tkLParen {
			return &appNode{off: t.off, name: t.text}, nil
		}
		return p.call(t, depth)
	}
	return nil, p.unexpected("an expression")
}

func (p *parser) call(name token, depth int) (node, *Error) {
	openIdx := p.i
	open := p.next() // '('
	c := &callNode{off: name.off, name: name.text}
	if p.peek().kind != tkRParen {
		for {
			a, err := p.exprDepth(0, depth+1)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			if p.peek().kind != tkComma {
				break
			}
			p.next()
		}
	}
	if p.peek().kind != tkRParen {
		if p.peek().kind == tkEOF || p.peek().kind == tkInto {
			return nil, syntaxErr(open.off, "missing closing ')' of %s(", name.text)
		}
		return nil, p.unexpected("',' or ')'")
	}
	// Azure hands body-query built-ins the argument list's GetText(): tokens without whitespace.
	var raw strings.Builder
	for j := openIdx + 1; j < p.i; j++ {
		raw.WriteString(p.toks[j].text)
	}
	c.raw = raw.String()
	p.next() // ')'
	return c, nil
}

// propNode builds the node for a $name token (forced: written as {$name}).
func propNode(t token, forced bool) (node, *Error) {
	if len(t.text) >= 6 && strings.EqualFold(t.text[:6], "$body.") {
		path, msg := parsePath(t.text[6:])
		if msg != "" {
			return nil, syntaxErr(t.off, "invalid $body query %s: %s", quoteText(t.text), msg)
		}
		return &bodyNode{off: t.off, text: t.text, path: path, forced: forced}, nil
	}
	if strings.ContainsAny(t.text, "[]") {
		return &noPropNode{off: t.off, text: t.text, forced: forced}, nil
	}
	return &sysNode{off: t.off, text: t.text, name: t.text[1:], forced: forced}, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// unescape decodes the escapes the lexer admitted: \" \' \\ and \uXXXX (UTF-16 code
// units; surrogate pairs are combined, lone surrogates become U+FFFD).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		if s[i+1] == 'u' && i+6 <= len(s) {
			u, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
			if err == nil {
				r := rune(u)
				i += 6
				if utf16.IsSurrogate(r) && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if u2, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
						if pair := utf16.DecodeRune(r, rune(u2)); pair != utf8.RuneError {
							b.WriteRune(pair)
							i += 6
							continue
						}
					}
				}
				b.WriteRune(r) // lone surrogates are written as U+FFFD by WriteRune
				continue
			}
		}
		b.WriteByte(s[i+1])
		i += 2
	}
	return b.String()
}
