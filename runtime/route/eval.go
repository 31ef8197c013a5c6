package route

import (
	"math"
	"strings"
)

// env is the per-message evaluation state shared by every route of a table, so the body
// is decoded at most once per message however many routes query it.
type env struct {
	m        *Message
	bodyDone bool
	body     map[string]any
	bodyOK   bool
}

func newEnv(m *Message) *env {
	if m == nil {
		m = &Message{}
	}
	return &env{m: m}
}

func (e *env) bodyRoot() (map[string]any, bool) {
	if !e.bodyDone {
		e.body, e.bodyOK = decodeBody(e.m)
		e.bodyDone = true
	}
	return e.body, e.bodyOK
}

func (n *litNode) eval(*env) Value { return n.v }

func (n *appNode) eval(e *env) Value {
	if v, ok := lookupFold(e.m.App, n.name); ok {
		return StringValue(v)
	}
	return Value{}
}

func (n *sysNode) eval(e *env) Value {
	if !n.forced {
		// An application property literally named "$name" shadows the system property.
		if v, ok := lookupFold(e.m.App, n.text); ok {
			return StringValue(v)
		}
	}
	if v, ok := lookupFold(e.m.System, n.name); ok {
		return StringValue(v)
	}
	return Value{}
}

func (n *bodyNode) eval(e *env) Value {
	if !n.forced {
		// An application property literally named "$body.x" shadows the body query.
		if v, ok := lookupFold(e.m.App, n.text); ok {
			return StringValue(v)
		}
	}
	root, ok := e.bodyRoot()
	if !ok {
		return Value{}
	}
	v, found := lookupPath(root, n.path)
	if !found {
		// Azure's edgeHub yields null here (JsonMessageQueryValueProvider); we say
		// undefined, so is_defined($body.x) is false when x is absent.
		return Value{}
	}
	return jsonValue(v)
}

func (n *noPropNode) eval(*env) Value { return Value{} }

func (n *unaryNode) eval(e *env) Value {
	x := n.x.eval(e)
	if n.op == tkNot {
		if b, ok := x.AsBool(); ok {
			return BoolValue(!b)
		}
		return Value{}
	}
	if f, ok := x.AsNumber(); ok {
		return NumberValue(-f)
	}
	return Value{}
}

func (n *binaryNode) eval(e *env) Value {
	switch n.op {
	case tkAnd:
		// Kleene logic: false wins over undefined; non-booleans count as undefined.
		l := n.l.eval(e)
		if b, ok := l.AsBool(); ok && !b {
			return l
		}
		r := n.r.eval(e)
		if b, ok := r.AsBool(); ok && !b {
			return r
		}
		if l.IsTrue() && r.IsTrue() {
			return BoolValue(true)
		}
		return Value{}
	case tkOr:
		l := n.l.eval(e)
		if l.IsTrue() {
			return l
		}
		r := n.r.eval(e)
		if r.IsTrue() {
			return r
		}
		lb, lok := l.AsBool()
		rb, rok := r.AsBool()
		if lok && rok && !lb && !rb {
			return BoolValue(false)
		}
		return Value{}
	case tkCoalesce:
		if l := n.l.eval(e); l.kind != KindUndefined {
			return l
		}
		return n.r.eval(e)
	}
	l, r := n.l.eval(e), n.r.eval(e)
	switch n.op {
	case tkPlus, tkMinus, tkStar, tkSlash, tkPercent:
		x, ok1 := l.AsNumber()
		y, ok2 := r.AsNumber()
		if !ok1 || !ok2 {
			return Value{}
		}
		return NumberValue(arith(n.op, x, y))
	case tkConcat:
		x, ok1 := l.AsString()
		y, ok2 := r.AsString()
		if !ok1 || !ok2 {
			return Value{}
		}
		return StringValue(x + y)
	}
	return compare(n.op, l, r)
}

func arith(op tokKind, x, y float64) float64 {
	switch op {
	case tkPlus:
		return x + y
	case tkMinus:
		return x - y
	case tkStar:
		return x * y
	case tkSlash:
		return x / y // x/0 is ±Inf, 0/0 NaN (-> undefined), as with .NET doubles
	}
	return math.Mod(x, y) // .NET % on doubles: the sign follows the dividend
}

// compare implements = != <> < <= > >=. Undefined or null on either side gives Undefined
// (three-valued logic). Values of different kinds (possible only with $body queries) are
// unequal and unordered: = is false, != is true, ordering is Undefined. Strings compare
// ordinally (byte-wise, case-sensitive); false < true.
func compare(op tokKind, l, r Value) Value {
	if l.kind == KindUndefined || r.kind == KindUndefined || l.kind == KindNull || r.kind == KindNull {
		return Value{}
	}
	if l.kind != r.kind {
		switch op {
		case tkEq:
			return BoolValue(false)
		case tkNe, tkLtGt:
			return BoolValue(true)
		}
		return Value{}
	}
	var c int
	switch l.kind {
	case KindNumber:
		switch {
		case l.n < r.n:
			c = -1
		case l.n > r.n:
			c = 1
		}
	case KindString:
		c = strings.Compare(l.s, r.s)
	case KindBool:
		c = boolInt(l.b) - boolInt(r.b)
	}
	switch op {
	case tkEq:
		return BoolValue(c == 0)
	case tkNe, tkLtGt:
		return BoolValue(c != 0)
	case tkLt:
		return BoolValue(c < 0)
	case tkLe:
		return BoolValue(c <= 0)
	case tkGt:
		return BoolValue(c > 0)
	}
	return BoolValue(c >= 0) // tkGe
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (n *callNode) eval(e *env) Value {
	var buf [4]Value
	args := buf[:0]
	for _, a := range n.args {
		args = append(args, a.eval(e))
	}
	return n.ov.fn(args)
}

// eval for twin_change_includes follows TwinChangeIncludes.cs: true when the path is in
// the notification body with a non-null value, false when it is absent or null, and
// undefined when the body cannot be queried. It is undefined for messages that are not
// twin change notifications.
func (n *twinNode) eval(e *env) Value {
	if !isTwinChange(e.m.Source) {
		return Value{}
	}
	root, ok := e.bodyRoot()
	if !ok {
		return Value{}
	}
	v, found := lookupPath(root, n.path)
	return BoolValue(found && v != nil)
}
