package route

import "strings"

// typ is a static (compile-time) type. Azure types every sub-expression with a .NET type
// (string, double, Bool, Null, Undefined, QueryValue) and rejects mismatches before any
// message is seen; typ mirrors those six, with tyDynamic standing for QueryValue: the
// type of $body queries, which is only known per message.
type typ uint8

const (
	tyUndefined typ = iota
	tyNull
	tyBool
	tyNumber
	tyString
	tyDynamic
	tyAny // built-in parameters only: accepts every type
)

var typNames = [...]string{"undefined", "null", "bool", "number", "string", "dynamic", "any"}

// String names the type in error messages.
func (t typ) String() string { return typNames[t] }

// node is a compiled condition sub-expression.
type node interface {
	// eval computes the value for the message in e. It never panics and never fails:
	// anything that cannot be computed is Undefined.
	eval(e *env) Value
	// staticType is the type assigned by the checker.
	staticType() typ
	// dump writes the normalised s-expression used by golden tests.
	dump(b *strings.Builder)
	// canon writes condition text that parses back to the same tree.
	canon(b *strings.Builder)
}

// litNode is a literal. text keeps the source spelling for canon.
type litNode struct {
	off  int
	text string
	v    Value
	t    typ
}

// appNode is a bare identifier: an application property (always a string).
type appNode struct {
	off  int
	name string
}

// sysNode is $name (application property "$name" if present, else system property
// "name") or, with forced, {$name} (system property only).
type sysNode struct {
	off    int
	text   string // "$name" as written
	name   string // without '$'
	forced bool
}

// bodyNode is $body.path (application property "$body.path" if present, else the body
// query) or, with forced, {$body.path} (body query only).
type bodyNode struct {
	off    int
	text   string // "$body.path" as written
	path   []pathSeg
	forced bool
}

// noPropNode is a $name containing '[' or ']' that is not a body query. Azure types it
// Undefined (ConditionVisitor.GetSysProperty) and so do we.
type noPropNode struct {
	off    int
	text   string
	forced bool
}

// unaryNode is NOT x or - x.
type unaryNode struct {
	off int
	op  tokKind // tkNot or tkMinus
	x   node
	t   typ
}

// binaryNode is l op r.
type binaryNode struct {
	off  int
	op   tokKind
	l, r node
	t    typ
}

// callNode is a built-in function call. fn and ov are set by the checker.
type callNode struct {
	off  int
	name string // as written
	args []node
	raw  string // argument tokens concatenated without spaces (twin_change_includes reads this)
	fn   *builtin
	ov   *overload
}

// twinNode is twin_change_includes(path); the checker replaces the callNode with it.
type twinNode struct {
	off  int
	name string
	raw  string
	path []pathSeg
}

func (n *litNode) staticType() typ    { return n.t }
func (n *appNode) staticType() typ    { return tyString }
func (n *sysNode) staticType() typ    { return tyString }
func (n *bodyNode) staticType() typ   { return tyDynamic }
func (n *noPropNode) staticType() typ { return tyUndefined }
func (n *unaryNode) staticType() typ  { return n.t }
func (n *binaryNode) staticType() typ { return n.t }
func (n *callNode) staticType() typ {
	if n.ov == nil {
		return tyUndefined
	}
	return n.ov.result
}
func (n *twinNode) staticType() typ { return tyBool }

// opText is the canonical spelling of an operator.
func opText(op tokKind) string {
	switch op {
	case tkAnd:
		return "AND"
	case tkOr:
		return "OR"
	case tkNot:
		return "NOT"
	}
	return fixed[op]
}

func (n *litNode) dump(b *strings.Builder) { b.WriteString(n.v.String()) }
func (n *appNode) dump(b *strings.Builder) {
	b.WriteString("(app ")
	b.WriteString(quoteString(n.name))
	b.WriteString(")")
}
func (n *sysNode) dump(b *strings.Builder) {
	if n.forced {
		b.WriteString("(sys " + quoteString(n.name) + ")")
		return
	}
	b.WriteString("(app-or-sys " + quoteString(n.text) + ")")
}
func (n *bodyNode) dump(b *strings.Builder) {
	if n.forced {
		b.WriteString("(body " + formatPath(n.path) + ")")
		return
	}
	b.WriteString("(app-or-body " + quoteString(n.text) + ")")
}
func (n *noPropNode) dump(b *strings.Builder) {
	b.WriteString("(no-prop " + quoteString(n.text) + ")")
}
func (n *unaryNode) dump(b *strings.Builder) {
	if n.op == tkMinus {
		b.WriteString("(neg ")
	} else {
		b.WriteString("(NOT ")
	}
	n.x.dump(b)
	b.WriteString(")")
}
func (n *binaryNode) dump(b *strings.Builder) {
	op := opText(n.op)
	if n.op == tkLtGt {
		op = "!="
	}
	b.WriteString("(" + op + " ")
	n.l.dump(b)
	b.WriteString(" ")
	n.r.dump(b)
	b.WriteString(")")
}
func (n *callNode) dump(b *strings.Builder) {
	b.WriteString("(" + strings.ToLower(n.name))
	for _, a := range n.args {
		b.WriteString(" ")
		a.dump(b)
	}
	b.WriteString(")")
}
func (n *twinNode) dump(b *strings.Builder) {
	b.WriteString("(twin_change_includes " + formatPath(n.path) + ")")
}

func (n *litNode) canon(b *strings.Builder) { b.WriteString(n.text) }
func (n *appNode) canon(b *strings.Builder) { b.WriteString(n.name) }
func (n *sysNode) canon(b *strings.Builder) { writeProp(b, n.text, n.forced) }
func (n *bodyNode) canon(b *strings.Builder) {
	writeProp(b, n.text, n.forced)
}
func (n *noPropNode) canon(b *strings.Builder) { writeProp(b, n.text, n.forced) }
func (n *unaryNode) canon(b *strings.Builder) {
	b.WriteString("(" + opText(n.op) + " ")
	n.x.canon(b)
	b.WriteString(")")
}
func (n *binaryNode) canon(b *strings.Builder) {
	b.WriteString("(")
	n.l.canon(b)
	b.WriteString(" " + opText(n.op) + " ")
	n.r.canon(b)
	b.WriteString(")")
}
func (n *callNode) canon(b *strings.Builder) {
	b.WriteString(n.name + "(")
	for i, a := range n.args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.canon(b)
	}
	b.WriteString(")")
}
func (n *twinNode) canon(b *strings.Builder) { b.WriteString(n.name + "(" + n.raw + ")") }

func writeProp(b *strings.Builder, text string, forced bool) {
	if forced {
		b.WriteString("{" + text + "}")
		return
	}
	b.WriteString(text)
}
