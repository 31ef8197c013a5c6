package route

import "strings"

// Condition is a compiled WHERE clause: parsed, type-checked and ready to evaluate. It
// is immutable and safe for concurrent use.
type Condition struct {
	root node
	text string
}

// CompileCondition parses and type-checks a WHERE condition on its own (the text after
// WHERE). Errors are *Error wrapping ErrSyntax or ErrType, with positions relative to
// text. twin_change_includes is accepted, since the route source is unknown.
func CompileCondition(text string) (*Condition, error) {
	p := newParser(text)
	n, err := p.parseConditionOnly()
	if err != nil {
		return nil, err
	}
	n, err = (&checker{twinAllowed: true}).check(n)
	if err != nil {
		return nil, err
	}
	return &Condition{root: n, text: text}, nil
}

// Eval evaluates c against m with three-valued logic; it is total: it never panics and
// never fails, and anything that cannot be computed (a missing property, a body that is
// not JSON, a type mismatch at runtime) is Undefined. A nil Condition (no WHERE clause)
// evaluates to true; a nil Message is treated as an empty one.
func (c *Condition) Eval(m *Message) Value {
	if c == nil {
		return BoolValue(true)
	}
	return c.root.eval(newEnv(m))
}

func (c *Condition) eval(e *env) Value {
	if c == nil {
		return BoolValue(true)
	}
	return c.root.eval(e)
}

// Text returns the condition as written ("" for a nil Condition).
func (c *Condition) Text() string {
	if c == nil {
		return ""
	}
	return c.text
}

// String returns the condition in canonical form: every operation parenthesised and
// operators spelled canonically, e.g. ((NOT is_defined($connectionModuleId)) AND (a = 'x')).
// It parses back to the same condition. A nil Condition prints as true.
func (c *Condition) String() string {
	if c == nil {
		return "true"
	}
	var b strings.Builder
	c.root.canon(&b)
	return b.String()
}

// dump renders the normalised tree with its static type (golden tests).
func (c *Condition) dump() string {
	var b strings.Builder
	c.root.dump(&b)
	b.WriteString(" : ")
	b.WriteString(c.root.staticType().String())
	return b.String()
}
