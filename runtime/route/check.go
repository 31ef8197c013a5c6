package route

import "strings"

// checker assigns static types bottom-up and rejects what Azure's ConditionVisitor
// rejects at compile time. The rules, from ConditionVisitor.cs and Args.cs:
//   - bare identifiers and $name/{$name} are strings; $body queries are dynamic;
//     literals have their own type (undefined and null are types of their own);
//   - a dynamic operand is compatible with bool, number, string and null, never with
//     undefined;
//   - NOT takes bool, null or dynamic; unary - takes number or dynamic;
//   - * / % + - take numbers, || takes strings;
//   - comparisons, equality and ?? need both sides of the same type (or one dynamic);
//   - AND and OR take bool, null, undefined or dynamic;
//   - built-in arguments must match one overload exactly (dynamic where allowed).
type checker struct {
	// twinAllowed is true when twin_change_includes may be used: conditions compiled on
	// their own, and routes whose source can see twin change notifications.
	twinAllowed bool
}

func (c *checker) check(n node) (node, *Error) {
	switch n := n.(type) {
	case *unaryNode:
		x, err := c.check(n.x)
		if err != nil {
			return nil, err
		}
		n.x = x
		t := x.staticType()
		if n.op == tkNot {
			if t != tyBool && t != tyNull && t != tyDynamic {
				return nil, typeErr(n.off, "invalid operand to unary operator 'NOT': %v", t)
			}
			n.t = tyBool
			return n, nil
		}
		if t != tyNumber && t != tyDynamic {
			return nil, typeErr(n.off, "invalid operand to unary operator '-': %v", t)
		}
		n.t = t
		return n, nil
	case *binaryNode:
		return c.binary(n)
	case *callNode:
		return c.call(n)
	}
	return n, nil
}

func (c *checker) binary(n *binaryNode) (node, *Error) {
	l, err := c.check(n.l)
	if err != nil {
		return nil, err
	}
	r, err := c.check(n.r)
	if err != nil {
		return nil, err
	}
	n.l, n.r = l, r
	lt, rt := l.staticType(), r.staticType()
	bad := func() *Error {
		return typeErr(n.off, "invalid operands to binary operator '%s': %v and %v", opText(n.op), lt, rt)
	}
	switch n.op {
	case tkAnd, tkOr:
		if !logical(lt) || !logical(rt) {
			return nil, bad()
		}
		n.t = tyBool
	case tkPlus, tkMinus, tkStar, tkSlash, tkPercent:
		if !paramAccepts(tyNumber, lt, true) || !paramAccepts(tyNumber, rt, true) {
			return nil, bad()
		}
		n.t = tyNumber
		if lt == tyDynamic || rt == tyDynamic {
			n.t = tyDynamic
		}
	case tkConcat:
		if !paramAccepts(tyString, lt, true) || !paramAccepts(tyString, rt, true) {
			return nil, bad()
		}
		n.t = tyString
	default: // comparisons, equality, ??
		if !sameType(lt, rt) {
			return nil, bad()
		}
		n.t = tyBool
		if n.op == tkCoalesce {
			n.t = lt
			if lt != rt {
				n.t = tyDynamic
			}
		}
	}
	return n, nil
}

func logical(t typ) bool { return t == tyBool || t == tyNull || t == tyUndefined || t == tyDynamic }

// sameType is Azure's CheckOperands(op, left.Type): equal types, or one side dynamic and
// the other a type a QueryValue can hold (bool, number, string, null, dynamic).
func sameType(a, b typ) bool {
	switch {
	case a == b:
		return true
	case a == tyDynamic:
		return b != tyUndefined
	case b == tyDynamic:
		return a != tyUndefined
	}
	return false
}

func (c *checker) call(n *callNode) (node, *Error) {
	fn, ok := builtins[strings.ToLower(n.name)]
	if !ok {
		return nil, typeErr(n.off, "unknown built-in function %s", quoteText(n.name))
	}
	if fn.twin {
		return c.twin(n)
	}
	types := make([]typ, len(n.args))
	for i, a := range n.args {
		checked, err := c.check(a)
		if err != nil {
			return nil, err
		}
		n.args[i] = checked
		types[i] = checked.staticType()
	}
	for i := range fn.overloads {
		if fn.overloads[i].accepts(types) {
			n.fn, n.ov = fn, &fn.overloads[i]
			return n, nil
		}
	}
	got := make([]string, len(types))
	for i, t := range types {
		got[i] = t.String()
	}
	want := make([]string, len(fn.overloads))
	for i := range fn.overloads {
		want[i] = fn.overloads[i].signature(fn.name)
	}
	return nil, typeErr(n.off, "invalid arguments to built-in function '%s': got (%s), expected %s",
		fn.name, strings.Join(got, ", "), strings.Join(want, " or "))
}

// twinPrefixes are the paths twin_change_includes accepts (TwinChangeJsonPathValidator.cs).
var twinPrefixes = []string{"properties.reported.", "properties.desired.", "tags."}

// twin compiles twin_change_includes(path). Like Azure, the argument is not an
// expression: it is the argument text with whitespace removed, a path into the twin
// change notification body.
func (c *checker) twin(n *callNode) (node, *Error) {
	if !c.twinAllowed {
		return nil, typeErr(n.off, "twin_change_includes is only valid in routes FROM /twinChangeNotifications or FROM /*")
	}
	if n.raw == "" {
		return nil, typeErr(n.off, "twin_change_includes needs a path argument, e.g. twin_change_includes(properties.reported.temperature)")
	}
	path, msg := parsePath(n.raw)
	if msg != "" {
		return nil, syntaxErr(n.off, "invalid twin_change_includes path %s: %s", quoteText(n.raw), msg)
	}
	okPrefix := false
	for _, p := range twinPrefixes {
		if len(n.raw) >= len(p) && strings.EqualFold(n.raw[:len(p)], p) {
			okPrefix = true
		}
	}
	if !okPrefix {
		return nil, typeErr(n.off, "twin_change_includes path %s is not supported: it must start with 'properties.reported.', 'properties.desired.' or 'tags.'", quoteText(n.raw))
	}
	return &twinNode{off: n.off, name: n.name, raw: n.raw, path: path}, nil
}
