package twin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Twin is the document IoT Hub keeps for a device or module identity.
//
// The methods keep the invariants: the property maps hold only the types
// DecodePatch produces (numbers as json.Number) and no null members, every
// successful write bumps the section version and Version by exactly one,
// and a failed write leaves the twin untouched. A Twin is not safe for
// concurrent use; its owner (fake hub, edge hub) serialises access.
type Twin struct {
	Desired         map[string]any `json:"desired"`
	DesiredVersion  int64          `json:"desiredVersion"`
	Reported        map[string]any `json:"reported"`
	ReportedVersion int64          `json:"reportedVersion"`
	Tags            map[string]any `json:"tags"`
	// Version is the whole-twin version; it goes up on any change.
	Version int64 `json:"version"`
	// Metadata holds "$lastUpdated" per object and leaf for desired and reported.
	Metadata Metadata `json:"metadata"`
}

// New returns the twin of a new identity: empty sections, all versions 1,
// so its device view is {"desired":{"$version":1},"reported":{"$version":1}}.
// Metadata times are the zero time until the first write, as in IoT Hub
// ("0001-01-01T00:00:00...").
func New() *Twin {
	return &Twin{
		Desired:         map[string]any{},
		DesiredVersion:  1,
		Reported:        map[string]any{},
		ReportedVersion: 1,
		Tags:            map[string]any{},
		Version:         1,
		Metadata:        Metadata{Desired: Node{LastUpdatedVersion: 1}},
	}
}

// PatchReported merges a reported-properties patch, as a device's
// PATCH /properties/reported does. It validates the patch, merges it into a
// copy, checks the merged document against MaxReportedBytes and only then
// commits, incrementing ReportedVersion and Version (even if the patch
// changed no value). It returns the new reported version. On error, which is
// a *LimitError for a limit breach, t is unchanged.
func (t *Twin) PatchReported(patch map[string]any, now time.Time) (int64, error) {
	doc, err := patched(Reported, t.Reported, patch)
	if err != nil {
		return 0, err
	}
	t.Reported = doc
	t.ReportedVersion++
	t.Version++
	t.Metadata.Reported.apply(patch, stamp(now), 0)
	return t.ReportedVersion, nil
}

// PatchDesired merges a desired-properties patch (service PATCH), with the
// same checks and version rules as PatchReported. It returns the new desired
// version, which the notification to the device carries (see
// DesiredNotification).
func (t *Twin) PatchDesired(patch map[string]any, now time.Time) (int64, error) {
	doc, err := patched(Desired, t.Desired, patch)
	if err != nil {
		return 0, err
	}
	t.Desired = doc
	t.DesiredVersion++
	t.Version++
	t.Metadata.Desired.apply(patch, stamp(now), t.DesiredVersion)
	return t.DesiredVersion, nil
}

// ReplaceDesired replaces the desired properties with doc (service PUT, or
// applying a deployment), incrementing DesiredVersion and Version. Null
// members of doc are dropped. All desired metadata is rewritten with now.
// Pass a service document through StripReadOnly first: "$version" and
// "$metadata" are invalid keys here. It returns the new desired version.
func (t *Twin) ReplaceDesired(doc map[string]any, now time.Time) (int64, error) {
	d, err := patched(Desired, nil, doc)
	if err != nil {
		return 0, err
	}
	t.Desired = d
	t.DesiredVersion++
	t.Version++
	t.Metadata.Desired = build(d, stamp(now), t.DesiredVersion)
	return t.DesiredVersion, nil
}

// PatchTags merges a tags patch (service PATCH), incrementing Version.
// Tags have no version or metadata of their own; now is accepted for
// symmetry and future use.
func (t *Twin) PatchTags(patch map[string]any, now time.Time) error {
	doc, err := patched(Tags, t.Tags, patch)
	if err != nil {
		return err
	}
	t.Tags = doc
	t.Version++
	return nil
}

// ReplaceTags replaces the tags with doc, incrementing Version.
func (t *Twin) ReplaceTags(doc map[string]any, now time.Time) error {
	d, err := patched(Tags, nil, doc)
	if err != nil {
		return err
	}
	t.Tags = d
	t.Version++
	return nil
}

// patched validates patch for section s and returns the section document it
// produces from cur, in canonical form, without touching cur.
func patched(s Section, cur, patch map[string]any) (map[string]any, error) {
	if err := Validate(s, patch); err != nil {
		return nil, err
	}
	doc := Clone(cur)
	if doc == nil {
		doc = map[string]any{}
	}
	Merge(doc, patch)
	if n, max := Size(doc), s.MaxBytes(); n > max {
		return nil, &LimitError{Section: s, Limit: LimitSize,
			Detail: fmt.Sprintf("document would be %d bytes, maximum is %d", n, max)}
	}
	return canonical(doc), nil
}

// canonical re-decodes doc from its own encoding, so the twin holds exactly
// what a JSON round-trip would give back (json.Number numbers, []any arrays,
// no typed nil maps). That is what makes a persisted twin compare equal to
// the one in memory.
func canonical(doc map[string]any) map[string]any {
	v, err := decodeValue(encode(doc, false, 0))
	if err != nil {
		// The encoder writes valid JSON for every value Validate accepts,
		// so this cannot happen for a validated doc; keep the merged copy.
		return doc
	}
	m, _ := v.(map[string]any)
	return m
}

// Clone returns a deep copy of t.
func (t *Twin) Clone() *Twin {
	return &Twin{
		Desired:         Clone(t.Desired),
		DesiredVersion:  t.DesiredVersion,
		Reported:        Clone(t.Reported),
		ReportedVersion: t.ReportedVersion,
		Tags:            Clone(t.Tags),
		Version:         t.Version,
		Metadata: Metadata{
			Desired:  t.Metadata.Desired.clone(),
			Reported: t.Metadata.Reported.clone(),
		},
	}
}

// DeviceJSON returns the body of the device-facing twin GET response:
// {"desired":{...,"$version":n},"reported":{...,"$version":m}}, desired
// first, keys sorted, compact, without "$metadata" and without the old
// "properties" wrapper (iothub-mqtt-protocol.md §5.2).
func (t *Twin) DeviceJSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"desired":`)
	b.Write(encode(t.Desired, true, t.DesiredVersion))
	b.WriteString(`,"reported":`)
	b.Write(encode(t.Reported, true, t.ReportedVersion))
	b.WriteByte('}')
	return b.Bytes()
}

// Properties returns the service-facing "properties" object:
//
//	{"desired":{...,"$metadata":{...},"$version":n},"reported":{...,"$metadata":{...},"$version":m}}
//
// "$metadata" mirrors the property tree: every object level and leaf has
// "$lastUpdated" (ISO-8601 UTC, millisecond precision, "Z"); desired
// metadata also carries "$lastUpdatedVersion". The result is a fresh copy
// the caller may modify; versions are int64.
func (t *Twin) Properties() map[string]any {
	desired := Clone(t.Desired)
	if desired == nil {
		desired = map[string]any{}
	}
	desired["$metadata"] = t.Metadata.Desired.render(t.Desired, true)
	desired["$version"] = t.DesiredVersion
	reported := Clone(t.Reported)
	if reported == nil {
		reported = map[string]any{}
	}
	reported["$metadata"] = t.Metadata.Reported.render(t.Reported, false)
	reported["$version"] = t.ReportedVersion
	return map[string]any{"desired": desired, "reported": reported}
}

// UnmarshalJSON decodes a twin as encoding/json would, except that numbers
// inside the property maps become json.Number, so a twin written with
// json.Marshal reads back deep-equal (the fake hub persists twins as JSON).
func (t *Twin) UnmarshalJSON(data []byte) error {
	// plain has Twin's fields but not this method, so Decode does not recurse.
	type plain Twin
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("twin: %w", err)
	}
	*t = Twin(p)
	return nil
}

// DesiredNotification returns the body IoT Hub publishes to
// $iothub/twin/PATCH/properties/desired/?$version={version}: the patch as
// compact JSON with "$version" appended, e.g.
// {"route":null,"telemetrySendFrequency":"5m","$version":8}. Null members
// are kept: they tell the device a property was deleted.
func DesiredNotification(patch map[string]any, version int64) []byte {
	return encode(patch, true, version)
}

// StripReadOnly returns a deep copy of m without the top-level read-only
// members "$version" and "$metadata", which service documents (a twin PUT,
// a GET result edited and sent back) carry but patches must not.
func StripReadOnly(m map[string]any) map[string]any {
	c := Clone(m)
	if c == nil {
		return map[string]any{}
	}
	delete(c, "$version")
	delete(c, "$metadata")
	return c
}
