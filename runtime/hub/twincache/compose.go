package twincache

import "github.com/outpost-edge/outpost/runtime/twin"

// Compose turns dst, a JSON merge patch, into a single merge patch equivalent to applying
// dst and then next, and reports true; or, when no single merge patch is equivalent, leaves
// dst unchanged and reports false. Equivalent means: for every document d,
// twin.Merge(d, composed) gives the same document as twin.Merge(twin.Merge(d, dst), next).
// Unlike twin.Merge, the result keeps null members: they must still delete upstream.
//
// Member by member:
//
//   - next writes a non-object (a scalar, an array or null): it replaces whatever dst had
//     there, since applying next overwrites that key whatever it held;
//   - next writes an object where dst has nothing: copied, since dst left that key alone;
//   - next writes an object where dst wrote an object: composed recursively;
//   - next writes an object where dst wrote a non-object (a scalar, an array or a null):
//     applying them in turn builds the object from next alone, discarding what the
//     document held, and no merge patch can say "replace by this object" (an object member
//     always merges), so the two patches are not composable.
//
// next is not modified and dst never aliases it.
func Compose(dst, next map[string]any) bool {
	if !composable(dst, next) {
		return false
	}
	compose(dst, next)
	return true
}

func composable(dst, next map[string]any) bool {
	for k, nv := range next {
		nm, ok := nv.(map[string]any)
		if !ok {
			continue
		}
		dv, present := dst[k]
		if !present {
			continue
		}
		dm, ok := dv.(map[string]any)
		if !ok || !composable(dm, nm) {
			return false
		}
	}
	return true
}

func compose(dst, next map[string]any) {
	for k, nv := range next {
		nm, isObject := nv.(map[string]any)
		if dm, ok := dst[k].(map[string]any); isObject && ok {
			compose(dm, nm)
			continue
		}
		if isObject {
			c := twin.Clone(nm)
			if c == nil {
				c = map[string]any{} // a typed nil map is an empty object, not a null
			}
			dst[k] = c
			continue
		}
		if a, ok := nv.([]any); ok {
			// Arrays hold no objects that merge, but copy them so dst never aliases next.
			dst[k] = twin.Clone(map[string]any{"": a})[""]
			continue
		}
		dst[k] = nv
	}
}
