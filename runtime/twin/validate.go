package twin

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Validate checks a patch (or a whole document) for section s against IoT
// Hub's twin limits and returns the first breach found as a *LimitError
// (object members are visited in key order, so the answer is deterministic):
//
//   - keys: non-empty, valid UTF-8, at most MaxKeyBytes bytes, and free of
//     control characters, '.', '$', '#' and whitespace ("key-length",
//     "key-characters"); edgeHub adds '#' and all whitespace to IoT Hub's
//     documented '.', '$' and space;
//   - strings: valid UTF-8 ("type") of at most MaxStringBytes bytes
//     ("string-length");
//   - integers (number literals without fraction or exponent) within
//     [MinInt, MaxInt] ("integer-range"); floats are not range-checked;
//   - no null anywhere inside an array, including members of objects inside
//     arrays ("null-in-array"); null members of objects are allowed, they
//     delete;
//   - no object or array deeper than MaxDepth ("depth"), counted as in the
//     package documentation;
//   - the compact encoding of patch at most s.MaxBytes() bytes ("size").
//
// Accepted Go types are those DecodePatch and encoding/json produce
// (map[string]any, []any, string, bool, json.Number, float64, nil) plus the
// other Go integer and float types; anything else, a json.Number that is not
// valid JSON, NaN or an infinity is a "type" breach. An unknown section wraps
// ErrSection.
func Validate(s Section, patch map[string]any) error {
	max := s.MaxBytes()
	if max == 0 {
		return fmt.Errorf("section %d: %w", int(s), ErrSection)
	}
	v := validator{section: s}
	if err := v.object("", patch, 0, false); err != nil {
		return err
	}
	if n := Size(patch); n > max {
		return &LimitError{Section: s, Limit: LimitSize,
			Detail: fmt.Sprintf("patch is %d bytes, maximum is %d", n, max)}
	}
	return nil
}

// validator walks a document. depth is the level of the object or array
// being walked: the section root is level 0, a top-level property's value is
// level 1.
type validator struct {
	section Section
}

func (v *validator) fail(limit, path, format string, args ...any) *LimitError {
	return &LimitError{Section: v.section, Limit: limit, Path: path,
		Detail: "property " + quotePath(path) + " " + fmt.Sprintf(format, args...)}
}

func (v *validator) object(path string, m map[string]any, depth int, inArray bool) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		if err := v.key(p, k); err != nil {
			return err
		}
		if err := v.value(p, m[k], depth+1, inArray); err != nil {
			return err
		}
	}
	return nil
}

func (v *validator) key(path, k string) error {
	switch {
	case k == "":
		return v.fail(LimitKeyLength, path, "has an empty name")
	case len(k) > MaxKeyBytes:
		return v.fail(LimitKeyLength, path, "has a %d-byte name, maximum is %d", len(k), MaxKeyBytes)
	case !utf8.ValidString(k):
		return v.fail(LimitKeyCharacters, path, "has a name that is not valid UTF-8")
	}
	for _, r := range k {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '.' || r == '$' || r == '#' {
			return v.fail(LimitKeyCharacters, path, "has a name containing %q (U+%04X), which is not allowed", r, r)
		}
	}
	return nil
}

// value checks val, which sits at level depth. Only objects and arrays are
// held to MaxDepth: a scalar may sit one level below the deepest object, as
// in edgeHub's ReportedPropertiesValidator.
func (v *validator) value(path string, val any, depth int, inArray bool) error {
	switch x := val.(type) {
	case nil:
		if inArray {
			return v.fail(LimitNullInArray, path, "is null inside an array")
		}
		return nil
	case map[string]any:
		if depth > MaxDepth {
			return v.fail(LimitDepth, path, "is nested %d levels deep, maximum is %d", depth, MaxDepth)
		}
		return v.object(path, x, depth, inArray)
	case []any:
		if depth > MaxDepth {
			return v.fail(LimitDepth, path, "is nested %d levels deep, maximum is %d", depth, MaxDepth)
		}
		for i, el := range x {
			if err := v.value(path+"["+strconv.Itoa(i)+"]", el, depth+1, true); err != nil {
				return err
			}
		}
		return nil
	case string:
		if !utf8.ValidString(x) {
			return v.fail(LimitType, path, "has a string value that is not valid UTF-8")
		}
		if len(x) > MaxStringBytes {
			return v.fail(LimitStringLength, path, "has a %d-byte string value, maximum is %d", len(x), MaxStringBytes)
		}
		return nil
	case bool:
		return nil
	}
	text, ok := numberText(val)
	if !ok {
		return v.fail(LimitType, path, "has a value of unsupported type %T", val)
	}
	if isIntegerText(text) && !inIntRange(text) {
		return v.fail(LimitIntegerRange, path, "has integer %s, allowed range is [%d, %d]", abbreviate(text), MinInt, MaxInt)
	}
	return nil
}

var (
	bigMinInt = big.NewInt(MinInt)
	bigMaxInt = big.NewInt(MaxInt)
)

// inIntRange reports whether the integer literal text lies in [MinInt, MaxInt].
func inIntRange(text string) bool {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n >= MinInt && n <= MaxInt
	}
	// Beyond int64 (or a uint64 above it): surely out of range, but parse
	// to be certain rather than reason about error kinds.
	var b big.Int
	if _, ok := b.SetString(text, 10); !ok {
		return false
	}
	return b.Cmp(bigMinInt) >= 0 && b.Cmp(bigMaxInt) <= 0
}

// abbreviate shortens a long number literal for an error message.
func abbreviate(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:20] + "..." + s[len(s)-10:] + fmt.Sprintf(" (%d digits)", len(s))
}
