package fakehub

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// GetTwin returns the service view of a device twin (moduleID "") or module twin.
func (s *Server) GetTwin(deviceID, moduleID string) (Twin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := identityKey(deviceID, moduleID)
	rec, err := s.twinLocked(deviceID, moduleID)
	if err != nil {
		return Twin{}, fmt.Errorf("twin %q: %w", key, err)
	}
	return s.twinViewLocked(deviceID, moduleID, rec), nil
}

// PatchTwin merges tags and desired properties (null deletes) and returns the new twin.
// ifMatch "" or "*" applies unconditionally, otherwise it must equal the twin's etag
// (ErrPreconditionFailed). A patch that breaks a twin limit is ErrInvalid and changes
// nothing. When desired changed, the identity's connection, if subscribed to
// $iothub/twin/PATCH/properties/desired/#, gets the patch on
// $iothub/twin/PATCH/properties/desired/?$version=N with "$version":N in the body.
func (s *Server) PatchTwin(deviceID, moduleID string, patch TwinPatch, ifMatch string) (Twin, error) {
	key := identityKey(deviceID, moduleID)
	now := s.now()
	var e effects
	s.mu.Lock()
	out, err := func() (Twin, error) {
		rec, err := s.twinForWriteLocked(deviceID, moduleID, ifMatch)
		if err != nil {
			return Twin{}, err
		}
		next := rec.Twin.Clone()
		if patch.Tags != nil {
			if err := next.PatchTags(patch.Tags, now); err != nil {
				return Twin{}, fmt.Errorf("%w: tags: %w", ErrInvalid, err)
			}
		}
		desired := patch.Properties.Desired
		var version int64
		if desired != nil {
			if version, err = next.PatchDesired(desired, now); err != nil {
				return Twin{}, fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
		if next.Version == rec.Twin.Version {
			return s.twinViewLocked(deviceID, moduleID, rec), nil // empty patch: nothing to write
		}
		nrec := &twinRecord{Twin: next, ModelID: rec.ModelID}
		if err := s.saveTwinLocked(key, nrec); err != nil {
			return Twin{}, err
		}
		if desired != nil {
			s.notifyDesiredLocked(key, twin.DesiredNotification(desired, version), version, &e)
		}
		return s.twinViewLocked(deviceID, moduleID, nrec), nil
	}()
	s.mu.Unlock()
	s.apply(e)
	if err != nil {
		return Twin{}, fmt.Errorf("patch twin %q: %w", key, err)
	}
	return out, nil
}

// ReplaceTwin replaces the tags and the desired properties with t's ("$version" and
// "$metadata" in t's desired are ignored; reported cannot be written by the service). The
// notification to the device carries the whole new desired document, with "$version". The
// If-Match and limit rules are PatchTwin's.
func (s *Server) ReplaceTwin(deviceID, moduleID string, t Twin, ifMatch string) (Twin, error) {
	key := identityKey(deviceID, moduleID)
	now := s.now()
	var e effects
	s.mu.Lock()
	out, err := func() (Twin, error) {
		rec, err := s.twinForWriteLocked(deviceID, moduleID, ifMatch)
		if err != nil {
			return Twin{}, err
		}
		next := rec.Twin.Clone()
		tags := t.Tags
		if tags == nil {
			tags = map[string]any{}
		}
		if err := next.ReplaceTags(tags, now); err != nil {
			return Twin{}, fmt.Errorf("%w: tags: %w", ErrInvalid, err)
		}
		version, err := next.ReplaceDesired(twin.StripReadOnly(t.Properties.Desired), now)
		if err != nil {
			return Twin{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		nrec := &twinRecord{Twin: next, ModelID: rec.ModelID}
		if err := s.saveTwinLocked(key, nrec); err != nil {
			return Twin{}, err
		}
		s.notifyDesiredLocked(key, twin.DesiredNotification(next.Desired, version), version, &e)
		return s.twinViewLocked(deviceID, moduleID, nrec), nil
	}()
	s.mu.Unlock()
	s.apply(e)
	if err != nil {
		return Twin{}, fmt.Errorf("replace twin %q: %w", key, err)
	}
	return out, nil
}

// ApplyConfigurationContent applies an edge deployment: modulesContent maps module ids to
// {"properties.desired": {...}} and every entry's document REPLACES that module twin's
// desired properties (connected subscribed modules are notified). For a module whose
// identity does not exist yet the document is kept (persisted) and becomes the desired
// properties of its twin when the module is created. The device must exist (ErrNotFound)
// and be an edge device (ErrInvalid). Every entry is checked before anything is applied: an
// entry of another shape, with an invalid module id or breaking a twin limit is ErrInvalid
// naming the entry, and nothing changes.
func (s *Server) ApplyConfigurationContent(edgeDeviceID string, modulesContent map[string]json.RawMessage) error {
	docs := make(map[string]map[string]any, len(modulesContent))
	raws := make(map[string]json.RawMessage, len(modulesContent))
	for _, mid := range slices.Sorted(maps.Keys(modulesContent)) {
		doc, err := desiredOfEntry(mid, modulesContent[mid])
		if err != nil {
			return fmt.Errorf("apply configuration to %q: %w", edgeDeviceID, err)
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("apply configuration to %q: modulesContent[%q]: %w: %w", edgeDeviceID, mid, ErrInvalid, err)
		}
		docs[mid], raws[mid] = doc, raw
	}
	now := s.now()
	var e effects
	s.mu.Lock()
	err := func() error {
		if s.db == nil {
			return errNotRunning
		}
		d, ok := s.devices[edgeDeviceID]
		if !ok {
			return fmt.Errorf("device %q: %w", edgeDeviceID, ErrNotFound)
		}
		if !d.Capabilities.IoTEdge {
			return fmt.Errorf("%w: device %q is not an edge device (capabilities.iotEdge is false)", ErrInvalid, edgeDeviceID)
		}
		var b batch
		next := map[string]*twinRecord{}
		versions := map[string]int64{}
		for mid, doc := range docs {
			key := identityKey(edgeDeviceID, mid)
			rec, ok := s.twins[key]
			if _, exists := s.modules[key]; !exists || !ok {
				b.put(bucketConfigurations, key, raws[mid])
				continue
			}
			t := rec.Twin.Clone()
			v, err := t.ReplaceDesired(doc, now)
			if err != nil {
				return fmt.Errorf("%w: modulesContent[%q]: %w", ErrInvalid, mid, err)
			}
			next[key] = &twinRecord{Twin: t, ModelID: rec.ModelID}
			versions[key] = v
			b.put(bucketTwins, key, next[key])
			b.del(bucketConfigurations, key)
		}
		if err := b.commit(s.db); err != nil {
			return err
		}
		for mid := range docs {
			key := identityKey(edgeDeviceID, mid)
			if rec, ok := next[key]; ok {
				s.twins[key] = rec
				delete(s.configs, key)
				s.notifyDesiredLocked(key, twin.DesiredNotification(rec.Twin.Desired, versions[key]), versions[key], &e)
			} else {
				s.configs[key] = raws[mid]
			}
		}
		return nil
	}()
	s.mu.Unlock()
	s.apply(e)
	if err != nil {
		return fmt.Errorf("apply configuration to %q: %w", edgeDeviceID, err)
	}
	return nil
}

// desiredOfEntry extracts and validates the desired document of one modulesContent entry.
func desiredOfEntry(mid string, raw json.RawMessage) (map[string]any, error) {
	if err := iothub.ValidateModuleID(mid); err != nil {
		return nil, fmt.Errorf("%w: modulesContent[%q]: %w", ErrInvalid, mid, err)
	}
	entry, err := twin.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf(`%w: modulesContent[%q]: want {"properties.desired":{...}}: %w`, ErrInvalid, mid, err)
	}
	const member = "properties.desired"
	for k := range entry {
		if k != member {
			return nil, fmt.Errorf(`%w: modulesContent[%q]: unexpected member %q, want only "properties.desired"`, ErrInvalid, mid, k)
		}
	}
	doc, ok := entry[member].(map[string]any)
	if !ok {
		return nil, fmt.Errorf(`%w: modulesContent[%q]: "properties.desired" is missing or not an object`, ErrInvalid, mid)
	}
	doc = twin.StripReadOnly(doc)
	if err := twin.Validate(twin.Desired, doc); err != nil {
		return nil, fmt.Errorf("%w: modulesContent[%q]: %w", ErrInvalid, mid, err)
	}
	return doc, nil
}

// twinLocked finds a twin; ErrNotFound when the identity does not exist.
func (s *Server) twinLocked(deviceID, moduleID string) (*twinRecord, error) {
	key := identityKey(deviceID, moduleID)
	if _, ok := s.devices[deviceID]; !ok {
		return nil, fmt.Errorf("device %q: %w", deviceID, ErrNotFound)
	}
	if moduleID != "" {
		if _, ok := s.modules[key]; !ok {
			return nil, fmt.Errorf("module %q: %w", key, ErrNotFound)
		}
	}
	rec, ok := s.twins[key]
	if !ok {
		return nil, fmt.Errorf("twin %q: %w", key, ErrNotFound)
	}
	return rec, nil
}

func (s *Server) twinForWriteLocked(deviceID, moduleID, ifMatch string) (*twinRecord, error) {
	if s.db == nil {
		return nil, errNotRunning
	}
	rec, err := s.twinLocked(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	if etag := twinEtag(rec.Twin.Version); !checkEtag(ifMatch, etag) {
		return nil, fmt.Errorf("%w: etag %q does not match %q", ErrPreconditionFailed, normalizeEtag(ifMatch), etag)
	}
	return rec, nil
}

// saveTwinLocked persists a twin record and installs it.
func (s *Server) saveTwinLocked(key string, rec *twinRecord) error {
	var b batch
	b.put(bucketTwins, key, rec)
	if err := b.commit(s.db); err != nil {
		return err
	}
	s.twins[key] = rec
	return nil
}

// notifyDesiredLocked queues a desired-properties notification for the identity's current
// connection when it subscribed to them. Nothing is queued for later: IoT Hub only notifies
// connected clients, which re-read the twin after reconnecting (protocol notes 5.3).
func (s *Server) notifyDesiredLocked(key string, body []byte, version int64, e *effects) {
	if s.oboNotifyDesiredLocked(key, body, version, e) {
		return // the identity is attached to an edge hub with "desired" (obo_deliver.go)
	}
	c := s.online[key]
	if c == nil {
		return
	}
	if _, ok := subscription(c.cl, iothub.KindTwinPatchDesired, c.ident); !ok {
		return
	}
	s.enqueueLocked(c, outItem{topic: iothub.DesiredPatchTopic(version), payload: body}, e)
}

// twinViewLocked renders the service-facing twin.
func (s *Server) twinViewLocked(deviceID, moduleID string, rec *twinRecord) Twin {
	t := rec.Twin
	props := t.Properties()
	desired, _ := props["desired"].(map[string]any)
	reported, _ := props["reported"].(map[string]any)
	out := Twin{
		DeviceID:   deviceID,
		ModuleID:   moduleID,
		Etag:       twinEtag(t.Version),
		ModelID:    rec.ModelID,
		Version:    t.Version,
		Tags:       twin.Clone(t.Tags),
		Properties: TwinProperties{Desired: desired, Reported: reported},
	}
	d := s.devices[deviceID]
	auth := d.Authentication
	if moduleID == "" {
		out.DeviceEtag = d.Etag
		out.Status = d.Status
		out.StatusReason = d.StatusReason
		out.StatusUpdateTime = d.StatusUpdatedTime
		out.ConnectionState = d.ConnectionState
		out.LastActivityTime = d.LastActivityTime
		out.CloudToDeviceMessageCount = len(s.c2d[deviceID])
		caps := d.Capabilities
		out.Capabilities = &caps
		out.DeviceScope = d.DeviceScope
		out.ParentScopes = slices.Clone(d.ParentScopes)
	} else if m := s.modules[identityKey(deviceID, moduleID)]; m != nil {
		out.DeviceEtag = m.Etag
		out.ConnectionState = m.ConnectionState
		out.LastActivityTime = m.LastActivityTime
		auth = m.Authentication
	}
	out.AuthenticationType = auth.Type
	if auth.X509Thumbprint != nil {
		out.X509Thumbprint = *auth.X509Thumbprint
	}
	return out
}

// twinErrorBody is the body of an error answer on $iothub/twin/res/{status} (protocol notes
// 5.1: Node treats any body with "errorCode" as an error; the exact shape on MQTT is
// UNCONFIRMED, this is the REST one).
func twinErrorBody(code int, format string, args ...any) []byte {
	b, _ := json.Marshal(struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}{code, strings.TrimSpace(fmt.Sprintf(format, args...))})
	return b
}
