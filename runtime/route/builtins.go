package route

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// overload is one signature of a built-in, after Azure's BuiltinExecutor: parameter
// types, whether a dynamic ($body) argument may stand for a bool/number/string parameter
// (IsQueryValueSupported), the result type and the runtime function. Runtime functions
// check kinds themselves: a dynamic argument of the wrong kind, or an undefined one,
// yields Undefined.
type overload struct {
	params   []typ
	variadic bool // the last parameter repeats; at least len(params) arguments
	dyn      bool
	result   typ
	fn       func(args []Value) Value
}

// builtin is a named set of overloads, tried in order.
type builtin struct {
	name      string
	overloads []overload
	twin      bool // twin_change_includes: argument is a path, not an expression
}

func (o *overload) accepts(args []typ) bool {
	if o.variadic {
		if len(args) < len(o.params) {
			return false
		}
	} else if len(args) != len(o.params) {
		return false
	}
	for i, a := range args {
		p := o.params[min(i, len(o.params)-1)]
		if !paramAccepts(p, a, o.dyn) {
			return false
		}
	}
	return true
}

func paramAccepts(p, a typ, dyn bool) bool {
	switch {
	case p == tyAny || p == a:
		return true
	case dyn && a == tyDynamic:
		return p == tyBool || p == tyNumber || p == tyString || p == tyNull
	}
	return false
}

// signature renders "name(t1, t2)" for error messages.
func (o *overload) signature(name string) string {
	parts := make([]string, len(o.params))
	for i, p := range o.params {
		parts[i] = p.String()
	}
	if o.variadic {
		parts = append(parts, "...")
	}
	return name + "(" + strings.Join(parts, ", ") + ")"
}

// builtins maps lower-case names to built-ins (names are case-insensitive).
var builtins = newBuiltins()

func newBuiltins() map[string]*builtin {
	builtins := map[string]*builtin{}
	num1 := func(f func(float64) float64) []overload {
		return []overload{{params: []typ{tyNumber}, dyn: true, result: tyNumber, fn: func(a []Value) Value {
			if x, ok := a[0].AsNumber(); ok {
				return NumberValue(f(x))
			}
			return Value{}
		}}}
	}
	isKind := func(k Kind) []overload {
		return []overload{{params: []typ{tyAny}, result: tyBool, fn: func(a []Value) Value {
			return BoolValue(a[0].kind == k)
		}}}
	}
	str2 := func(result typ, f func(s, t string) Value) []overload {
		return []overload{{params: []typ{tyString, tyString}, dyn: true, result: result, fn: func(a []Value) Value {
			s, ok1 := a[0].AsString()
			t, ok2 := a[1].AsString()
			if !ok1 || !ok2 {
				return Value{}
			}
			return f(s, t)
		}}}
	}
	str1 := func(f func(string) string) []overload {
		return []overload{{params: []typ{tyString}, dyn: true, result: tyString, fn: func(a []Value) Value {
			if s, ok := a[0].AsString(); ok {
				return StringValue(f(s))
			}
			return Value{}
		}}}
	}
	add := func(name string, ovs []overload) { builtins[name] = &builtin{name: name, overloads: ovs} }

	// math (Abs.cs, Exp.cs, Power.cs, ...): number in, number out.
	add("abs", num1(math.Abs))
	add("exp", num1(math.Exp))
	add("square", num1(func(x float64) float64 { return x * x }))
	add("ceiling", num1(math.Ceil))
	add("floor", num1(math.Floor))
	add("sign", num1(func(x float64) float64 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	}))
	add("sqrt", num1(math.Sqrt))
	add("power", []overload{{params: []typ{tyNumber, tyNumber}, dyn: true, result: tyNumber, fn: func(a []Value) Value {
		x, ok1 := a[0].AsNumber()
		y, ok2 := a[1].AsNumber()
		if !ok1 || !ok2 {
			return Value{}
		}
		return NumberValue(math.Pow(x, y))
	}}})

	// types
	add("as_number", []overload{
		{params: []typ{tyString}, dyn: true, result: tyNumber, fn: func(a []Value) Value {
			switch a[0].kind {
			case KindString:
				if f, ok := parseNumber(a[0].s); ok {
					return NumberValue(f)
				}
			case KindNumber:
				return a[0]
			}
			return Value{}
		}},
		{params: []typ{tyNumber}, result: tyNumber, fn: func(a []Value) Value { return a[0] }},
	})
	add("is_bool", isKind(KindBool))
	add("is_null", isKind(KindNull))
	add("is_number", isKind(KindNumber))
	add("is_string", isKind(KindString))
	add("is_defined", []overload{{params: []typ{tyAny}, result: tyBool, fn: func(a []Value) Value {
		return BoolValue(a[0].kind != KindUndefined)
	}}})

	// strings: ordinal, lengths and indexes in Unicode code points.
	add("concat", []overload{{params: []typ{tyString, tyString}, variadic: true, dyn: true, result: tyString, fn: func(a []Value) Value {
		var b strings.Builder
		for _, v := range a {
			s, ok := v.AsString()
			if !ok {
				return Value{}
			}
			b.WriteString(s)
		}
		return StringValue(b.String())
	}}})
	add("length", []overload{{params: []typ{tyString}, dyn: true, result: tyNumber, fn: func(a []Value) Value {
		if s, ok := a[0].AsString(); ok {
			return NumberValue(float64(utf8.RuneCountInString(s)))
		}
		return Value{}
	}}})
	add("lower", str1(strings.ToLower))
	add("upper", str1(strings.ToUpper))
	add("substring", []overload{
		{params: []typ{tyString, tyNumber}, dyn: true, result: tyString, fn: substring},
		{params: []typ{tyString, tyNumber, tyNumber}, dyn: true, result: tyString, fn: substring},
	})
	add("index_of", str2(tyNumber, func(s, t string) Value {
		i := strings.Index(s, t)
		if i < 0 {
			return NumberValue(-1)
		}
		return NumberValue(float64(utf8.RuneCountInString(s[:i])))
	}))
	add("starts_with", str2(tyBool, func(s, t string) Value { return BoolValue(strings.HasPrefix(s, t)) }))
	add("ends_with", str2(tyBool, func(s, t string) Value { return BoolValue(strings.HasSuffix(s, t)) }))
	add("contains", str2(tyBool, func(s, t string) Value { return BoolValue(strings.Contains(s, t)) }))

	builtins["twin_change_includes"] = &builtin{name: "twin_change_includes", twin: true}
	return builtins
}

// substring follows Substring.cs: substring(s, start) needs 0 <= start <= len;
// substring(s, start, n) needs 0 <= start < len and 0 <= n <= len-start; fractional
// positions are truncated. Anything else is Undefined.
func substring(a []Value) Value {
	s, ok := a[0].AsString()
	start, ok2 := a[1].AsNumber()
	if !ok || !ok2 {
		return Value{}
	}
	runes := []rune(s)
	n := float64(len(runes))
	if len(a) == 2 {
		if start < 0 || start > n {
			return Value{}
		}
		return StringValue(string(runes[int(start):]))
	}
	length, ok := a[2].AsNumber()
	if !ok || start < 0 || start >= n || length < 0 || length > n-start {
		return Value{}
	}
	i := int(start)
	return StringValue(string(runes[i : i+int(length)]))
}

// parseNumber parses s the way .NET double.TryParse(s, NumberStyles.Any,
// InvariantCulture) does for the inputs that matter: surrounding whitespace, a leading or
// trailing sign, parentheses for a negative number, ',' thousands separators in the
// integer part, a decimal point, an exponent, and "Infinity". Hex, "NaN" (which would be
// undefined anyway) and currency symbols are not accepted.
func parseNumber(s string) (float64, bool) {
	s = strings.Trim(s, " \t\n\v\f\r")
	neg := false
	if len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' {
		neg, s = true, s[1:len(s)-1]
	}
	sign := ""
	switch {
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+"):
		sign, s = s[:1], s[1:]
	case strings.HasSuffix(s, "-") || strings.HasSuffix(s, "+"):
		sign, s = s[len(s)-1:], s[:len(s)-1]
	}
	if neg && sign != "" {
		return 0, false
	}
	var f float64
	if strings.EqualFold(s, "infinity") || s == "∞" {
		f = math.Inf(1)
	} else {
		clean, ok := cleanNumber(s)
		if !ok {
			return 0, false
		}
		var err error
		f, err = strconv.ParseFloat(clean, 64)
		if err != nil && !isRangeErr(err) {
			return 0, false
		}
	}
	if neg || sign == "-" {
		f = -f
	}
	return f, true
}

// cleanNumber checks digits[,digits...][.digits][e[+-]digits] and drops the commas.
func cleanNumber(s string) (string, bool) {
	var b strings.Builder
	i, mant := 0, 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || (s[i] == ',' && mant > 0)) {
		if s[i] != ',' {
			b.WriteByte(s[i])
			mant++
		}
		i++
	}
	if i < len(s) && s[i] == '.' {
		b.WriteByte('.')
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
			i++
			mant++
		}
	}
	if mant == 0 {
		return "", false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e := matchExp(s[i:])
		if e == 0 {
			return "", false
		}
		b.WriteString(s[i : i+e])
		i += e
	}
	return b.String(), i == len(s)
}
