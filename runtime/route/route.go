package route

import "strings"

// Route is one parsed and compiled route. It is immutable and safe for concurrent use.
type Route struct {
	// Name is the route's name in the $edgeHub routes section.
	Name string
	// Source is the normalised source prefix, always ending in '/': "/" for FROM /*,
	// "/messages/" for FROM /messages/*, "/messages/modules/m/outputs/o/" for
	// FROM /messages/modules/m/outputs/o.
	Source string
	// Condition is the WHERE clause, nil when there is none (always true).
	Condition *Condition
	// Sink is where matching messages go.
	Sink Endpoint
	// Text is the route as written.
	Text string

	path     string // FROM path as written (tokens concatenated)
	sinkText string // sink as written
}

// Parse parses and type-checks one route:
//
//	[SELECT *] FROM <path> [WHERE <condition>] INTO <sink>
//
// Keywords are case-insensitive. The sink is $upstream or
// BrokeredEndpoint("/modules/{module}/inputs/{input}") with single or double quotes
// (see parseBrokered for exactly what is accepted). Errors are *Error with Route set to
// name and wrap ErrSyntax or ErrType; a condition Azure would refuse to compile, such as
// `temperature > 30` on a string application property, is refused here too.
func Parse(name, text string) (*Route, error) {
	r, err := parse(text)
	if err != nil {
		err.Route = name
		return nil, err
	}
	r.Name = name
	return r, nil
}

func parse(text string) (*Route, *Error) {
	p := newParser(text)
	pr, err := p.parseRoute()
	if err != nil {
		return nil, err
	}
	r := &Route{
		Source:   normaliseSource(pr.path),
		Sink:     pr.sink,
		Text:     text,
		path:     pr.path,
		sinkText: pr.sinkText,
	}
	if pr.cond != nil {
		c := &checker{twinAllowed: r.Source == "/" || strings.EqualFold(r.Source, twinChangeSource)}
		n, err := c.check(pr.cond)
		if err != nil {
			return nil, err
		}
		r.Condition = &Condition{root: n, text: pr.condText}
	}
	return r, nil
}

// Match reports whether m goes through r: its source falls under r.Source
// (case-insensitive, segment-safe prefix) and the condition evaluates to true. Undefined
// counts as false.
func (r *Route) Match(m *Message) bool {
	if m == nil {
		return false
	}
	return r.match(newEnv(m))
}

func (r *Route) match(e *env) bool {
	return sourceMatches(e.m.Source, r.Source) && r.Condition.eval(e).IsTrue()
}

// String returns the route in canonical form (FROM path [WHERE canonical condition]
// INTO sink); it parses back to an equivalent route.
func (r *Route) String() string {
	var b strings.Builder
	b.WriteString("FROM ")
	b.WriteString(r.path)
	if r.Condition != nil {
		b.WriteString(" WHERE ")
		b.WriteString(r.Condition.String())
	}
	b.WriteString(" INTO ")
	b.WriteString(r.sinkText)
	return b.String()
}
