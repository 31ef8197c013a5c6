package twin

import "reflect"

// Merge applies patch to dst in place with JSON merge-patch semantics
// (RFC 7386), which is how IoT Hub applies reported, desired and tags
// patches:
//
//   - a null member deletes the key (deleting a missing key is no change);
//   - an object member merges recursively into the object at that key, or
//     into a new empty object if the key is missing or holds a non-object
//     (so null members nested in it are dropped, never stored);
//   - any other member, arrays included, replaces the value.
//
// Values taken from patch are deep-copied, so dst never aliases patch.
// Merge returns whether dst changed; a patch that rewrites values with
// equal ones is no change. dst must not be nil unless patch is empty or
// only deletes.
func Merge(dst, patch map[string]any) bool {
	changed := false
	for k, pv := range patch {
		if pv == nil {
			if _, ok := dst[k]; ok {
				delete(dst, k)
				changed = true
			}
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			dm, isObject := dst[k].(map[string]any)
			if !isObject || dm == nil {
				// A typed nil map is an empty object already, so replacing
				// it with a writable one is not a change in itself.
				if !isObject {
					changed = true
				}
				dm = make(map[string]any, len(pm))
				dst[k] = dm
			}
			if Merge(dm, pm) {
				changed = true
			}
			continue
		}
		nv := cloneValue(pv)
		if old, ok := dst[k]; !ok || !equal(old, nv) {
			changed = true
		}
		dst[k] = nv
	}
	return changed
}

// Diff returns the merge patch that turns from into to: keys missing from
// to map to nil, differing values map to (a copy of) the value in to, and
// objects present on both sides are diffed recursively. It returns an empty,
// non-nil map when the documents are equal.
//
// For documents (maps without null members, which is what Merge leaves
// behind) Merge(Clone(from), Diff(from, to)) deep-equals to. A null member of
// to cannot be expressed by a merge patch: it comes out as a deletion.
func Diff(from, to map[string]any) map[string]any {
	patch := make(map[string]any)
	for k := range from {
		if _, ok := to[k]; !ok {
			patch[k] = nil
		}
	}
	for k, tv := range to {
		fv, ok := from[k]
		if !ok {
			patch[k] = cloneValue(tv)
			continue
		}
		fm, fIsObject := fv.(map[string]any)
		tm, tIsObject := tv.(map[string]any)
		if fIsObject && tIsObject {
			if sub := Diff(fm, tm); len(sub) > 0 {
				patch[k] = sub
			}
			continue
		}
		if !equal(fv, tv) {
			patch[k] = cloneValue(tv)
		}
	}
	return patch
}

// Clone returns a deep copy of m: nested objects and arrays are copied,
// scalars are shared (they are immutable). Clone(nil) is nil.
func Clone(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = cloneValue(v)
	}
	return c
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return map[string]any{}
		}
		return Clone(x)
	case []any:
		c := make([]any, len(x))
		for i, el := range x {
			c[i] = cloneValue(el)
		}
		return c
	}
	return v
}

// equal compares two JSON values structurally. A typed nil map or slice
// equals an empty one (both encode the same way here). Numbers compare by
// type and text: json.Number("1") and json.Number("1.0") differ, because
// IoT Hub and edgeHub see different literals.
func equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
