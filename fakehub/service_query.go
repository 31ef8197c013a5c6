package fakehub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// POST /devices/query runs a twin query ({"query":"SELECT * FROM devices WHERE ..."}).
// The fake hub supports a small subset of IoT Hub's query language, enough for tools and
// tests to find twins:
//
//	SELECT * FROM devices         [WHERE cond [AND cond ...]]
//	SELECT * FROM devices.modules [WHERE cond [AND cond ...]]
//	cond = path = literal         path: deviceId, moduleId, capabilities.iotEdge, tags.x.y,
//	                              properties.desired.x, ... (any member path of the twin JSON)
//	literal = 'string' ('' escapes a quote) | number | true | false
//
// Keywords are case-insensitive; property names and string comparisons are not. Anything
// else is answered 400 with a message saying what is supported. Results are the matching
// twins as one JSON array, with no paging (no x-ms-continuation).

// twinQuery is a parsed query.
type twinQuery struct {
	modules bool             // FROM devices.modules
	where   []queryCondition // all must hold
}

// queryCondition is "path = literal".
type queryCondition struct {
	path  []string
	value any // string, float64 or bool
}

// querySupported is appended to every query syntax error.
const querySupported = "the fake hub supports SELECT * FROM devices|devices.modules [WHERE <property> = <'string'|number|true|false> [AND ...]]"

func (a *restAPI) query(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Query string `json:"query"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		a.writeError(w, r, err)
		return
	}
	q, err := parseTwinQuery(body.Query)
	if err != nil {
		a.writeError(w, r, argumentInvalid(err.Error()))
		return
	}
	twins, err := a.queryTwins(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("x-ms-item-type", "twin")
	a.writeJSON(w, http.StatusOK, twins)
}

// queryTwins evaluates q over every device (or module) twin. Identities deleted while the
// query runs are skipped.
func (a *restAPI) queryTwins(q twinQuery) ([]map[string]any, error) {
	out := []map[string]any{}
	add := func(deviceID, moduleID string) error {
		t, err := a.s.GetTwin(deviceID, moduleID)
		if err != nil {
			return nil // deleted meanwhile
		}
		doc, err := twinDocument(t)
		if err != nil {
			return err
		}
		if q.matches(doc) {
			out = append(out, doc)
		}
		return nil
	}
	for _, d := range a.s.ListDevices() {
		if !q.modules {
			if err := add(d.DeviceID, ""); err != nil {
				return nil, err
			}
			continue
		}
		modules, err := a.s.ListModules(d.DeviceID)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, m := range modules {
			if err := add(d.DeviceID, m.ModuleID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// twinDocument returns the twin as the generic JSON object the query matches against.
func twinDocument(t Twin) (map[string]any, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("twin %q: %w", t.DeviceID, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("twin %q: %w", t.DeviceID, err)
	}
	return doc, nil
}

// matches reports whether every condition holds for doc.
func (q twinQuery) matches(doc map[string]any) bool {
	for _, c := range q.where {
		var v any = doc
		for _, name := range c.path {
			obj, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = obj[name]; !ok {
				return false
			}
		}
		if v != c.value {
			return false
		}
	}
	return true
}

// String renders q in canonical form; parseTwinQuery(q.String()) yields q again.
func (q twinQuery) String() string {
	var sb strings.Builder
	sb.WriteString("SELECT * FROM devices")
	if q.modules {
		sb.WriteString(".modules")
	}
	for i, c := range q.where {
		if i == 0 {
			sb.WriteString(" WHERE ")
		} else {
			sb.WriteString(" AND ")
		}
		sb.WriteString(strings.Join(c.path, "."))
		sb.WriteString(" = ")
		switch v := c.value.(type) {
		case string:
			sb.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
		case float64:
			sb.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		case bool:
			sb.WriteString(strconv.FormatBool(v))
		}
	}
	return sb.String()
}

// parseTwinQuery parses the supported subset described above.
func parseTwinQuery(s string) (twinQuery, error) {
	toks, err := lexQuery(s)
	if err != nil {
		return twinQuery{}, err
	}
	p := queryParser{toks: toks}
	var q twinQuery
	for _, kw := range []string{"SELECT", "*", "FROM"} {
		if err := p.expectWord(kw); err != nil {
			return twinQuery{}, err
		}
	}
	from, err := p.path()
	if err != nil {
		return twinQuery{}, err
	}
	switch strings.ToLower(strings.Join(from, ".")) {
	case "devices":
	case "devices.modules":
		q.modules = true
	default:
		return twinQuery{}, fmt.Errorf("query: unsupported collection %q; %s", strings.Join(from, "."), querySupported)
	}
	if p.done() {
		return q, nil
	}
	if err := p.expectWord("WHERE"); err != nil {
		return twinQuery{}, err
	}
	for {
		c, err := p.condition()
		if err != nil {
			return twinQuery{}, err
		}
		q.where = append(q.where, c)
		if p.done() {
			return q, nil
		}
		if err := p.expectWord("AND"); err != nil {
			return twinQuery{}, err
		}
	}
}

// queryToken is one lexeme: a word (keyword, name or number), a quoted string, or a
// punctuation character ('*', '.', '=').
type queryToken struct {
	kind byte // 'w' word, 's' string, or the punctuation character itself
	text string
	pos  int // byte offset in the query, for messages
}

func lexQuery(s string) ([]queryToken, error) {
	var toks []queryToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '*' || c == '.' || c == '=':
			toks = append(toks, queryToken{kind: c, text: string(c), pos: i})
			i++
		case c == '\'':
			start := i
			var sb strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("query: unterminated string starting at byte %d; %s", start, querySupported)
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						sb.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				sb.WriteByte(s[i])
				i++
			}
			toks = append(toks, queryToken{kind: 's', text: sb.String(), pos: start})
		case isQueryWordByte(c):
			start := i
			for i < len(s) && isQueryWordByte(s[i]) {
				i++
			}
			toks = append(toks, queryToken{kind: 'w', text: s[start:i], pos: start})
		default:
			return nil, fmt.Errorf("query: unexpected character %q at byte %d; %s", c, i, querySupported)
		}
	}
	return toks, nil
}

// isQueryWordByte accepts the bytes of names ($version, iotEdge) and numbers (-1.5e3 is
// lexed as "-1", ".", "5e3" and reassembled by the parser).
func isQueryWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$' || c == '-' || c == '+'
}

type queryParser struct {
	toks []queryToken
	i    int
}

func (p *queryParser) done() bool { return p.i >= len(p.toks) }

func (p *queryParser) next() (queryToken, bool) {
	if p.done() {
		return queryToken{}, false
	}
	t := p.toks[p.i]
	p.i++
	return t, true
}

func (p *queryParser) expectWord(kw string) error {
	t, ok := p.next()
	if !ok {
		return fmt.Errorf("query: expected %s at the end; %s", kw, querySupported)
	}
	if !strings.EqualFold(t.text, kw) || t.kind == 's' {
		return fmt.Errorf("query: expected %s at byte %d, found %q; %s", kw, t.pos, t.text, querySupported)
	}
	return nil
}

// path parses name ('.' name)*.
func (p *queryParser) path() ([]string, error) {
	var names []string
	for {
		t, ok := p.next()
		if !ok {
			return nil, fmt.Errorf("query: expected a name at the end; %s", querySupported)
		}
		if t.kind != 'w' {
			return nil, fmt.Errorf("query: expected a name at byte %d, found %q; %s", t.pos, t.text, querySupported)
		}
		names = append(names, t.text)
		if p.done() || p.toks[p.i].kind != '.' {
			return names, nil
		}
		p.i++
	}
}

// condition parses path '=' literal.
func (p *queryParser) condition() (queryCondition, error) {
	path, err := p.path()
	if err != nil {
		return queryCondition{}, err
	}
	t, ok := p.next()
	if !ok || t.kind != '=' {
		at := "the end"
		if ok {
			at = fmt.Sprintf("byte %d (found %q)", t.pos, t.text)
		}
		return queryCondition{}, fmt.Errorf("query: expected = after %s at %s; %s", strings.Join(path, "."), at, querySupported)
	}
	v, err := p.literal()
	if err != nil {
		return queryCondition{}, err
	}
	return queryCondition{path: path, value: v}, nil
}

// literal parses a quoted string, true, false or a number.
func (p *queryParser) literal() (any, error) {
	t, ok := p.next()
	if !ok {
		return nil, fmt.Errorf("query: expected a value at the end; %s", querySupported)
	}
	switch {
	case t.kind == 's':
		return t.text, nil
	case t.kind == 'w' && strings.EqualFold(t.text, "true"):
		return true, nil
	case t.kind == 'w' && strings.EqualFold(t.text, "false"):
		return false, nil
	case t.kind == 'w':
		num := t.text
		// A fraction was lexed as word '.' word.
		if p.i+1 < len(p.toks) && p.toks[p.i].kind == '.' && p.toks[p.i+1].kind == 'w' && p.toks[p.i].pos == t.pos+len(t.text) {
			num += "." + p.toks[p.i+1].text
			p.i += 2
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || strings.ContainsAny(num, "xXpP_") || strings.EqualFold(strings.TrimLeft(num, "+-"), "inf") ||
			strings.EqualFold(strings.TrimLeft(num, "+-"), "infinity") || strings.EqualFold(num, "nan") {
			return nil, fmt.Errorf("query: value %q at byte %d is not a 'string', number, true or false; %s", num, t.pos, querySupported)
		}
		return f, nil
	default:
		return nil, fmt.Errorf("query: expected a value at byte %d, found %q; %s", t.pos, t.text, querySupported)
	}
}
