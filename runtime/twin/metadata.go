package twin

import (
	"sort"
	"time"
)

// Metadata records when each part of the desired and reported properties
// was last written. It mirrors the property tree: one Node per object level
// and per leaf. Tags carry no metadata, as in IoT Hub.
//
// It is stored with the twin and serialises with encoding/json; the
// service-facing "$metadata" objects are rendered from it by
// Twin.Properties.
type Metadata struct {
	Desired  Node `json:"desired"`
	Reported Node `json:"reported"`
}

// Node is the metadata of one object level or leaf. Times are UTC with
// millisecond precision, the precision "$lastUpdated" is rendered with, so
// a twin survives a JSON round-trip unchanged.
type Node struct {
	// LastUpdated is when this value, or anything under it, was last
	// written. For an object it is the time of the latest write below it.
	LastUpdated time.Time `json:"lastUpdated"`
	// LastUpdatedVersion is the section version that write produced; it is
	// kept for desired properties only (0 for reported).
	LastUpdatedVersion int64 `json:"lastUpdatedVersion,omitempty"`
	// Children holds the metadata of an object's members; nil for leaves
	// and empty objects.
	Children map[string]*Node `json:"children,omitempty"`
}

// metadataTimeFormat is ISO-8601 UTC with millisecond precision and "Z".
const metadataTimeFormat = "2006-01-02T15:04:05.000Z"

// stamp normalises now to what Node stores.
func stamp(now time.Time) time.Time { return now.UTC().Truncate(time.Millisecond) }

// apply records a merge of patch: every node the patch touches, and each
// object on the way down to it, gets now and version; deleted members lose
// their metadata; a member replaced by a scalar or array loses its
// children.
func (n *Node) apply(patch map[string]any, now time.Time, version int64) {
	n.LastUpdated = now
	n.LastUpdatedVersion = version
	for k, v := range patch {
		if v == nil {
			delete(n.Children, k)
			continue
		}
		child := n.Children[k]
		if child == nil {
			child = &Node{}
			if n.Children == nil {
				n.Children = make(map[string]*Node)
			}
			n.Children[k] = child
		}
		if pm, ok := v.(map[string]any); ok {
			child.apply(pm, now, version)
			continue
		}
		*child = Node{LastUpdated: now, LastUpdatedVersion: version}
	}
	if len(n.Children) == 0 {
		// Keep "no children" as nil so the JSON form (omitempty) round-trips.
		n.Children = nil
	}
}

// build returns metadata for a whole document written at once.
func build(doc map[string]any, now time.Time, version int64) Node {
	n := Node{}
	n.apply(doc, now, version)
	return n
}

// clone deep-copies the node tree.
func (n Node) clone() Node {
	c := Node{LastUpdated: n.LastUpdated, LastUpdatedVersion: n.LastUpdatedVersion}
	if n.Children != nil {
		c.Children = make(map[string]*Node, len(n.Children))
		for k, ch := range n.Children {
			if ch == nil {
				continue
			}
			cc := ch.clone()
			c.Children[k] = &cc
		}
	}
	return c
}

// render returns the "$metadata" object for doc. It walks doc, not the node
// tree, so the result mirrors the document even if the two disagree (a
// caller assigned a map directly): a member without metadata inherits its
// parent's.
func (n *Node) render(doc map[string]any, withVersion bool) map[string]any {
	out := n.stampMap(withVersion)
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		child := n.Children[k]
		if child == nil {
			child = &Node{LastUpdated: n.LastUpdated, LastUpdatedVersion: n.LastUpdatedVersion}
		}
		if sub, ok := doc[k].(map[string]any); ok {
			out[k] = child.render(sub, withVersion)
		} else {
			out[k] = child.stampMap(withVersion)
		}
	}
	return out
}

func (n *Node) stampMap(withVersion bool) map[string]any {
	m := map[string]any{"$lastUpdated": n.LastUpdated.UTC().Format(metadataTimeFormat)}
	if withVersion {
		m["$lastUpdatedVersion"] = n.LastUpdatedVersion
	}
	return m
}
