package fakehub

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// PutDevice creates or updates a device, with IoT Hub's If-Match rules:
//
//   - absent and ifMatch == "": create. Omitted symmetric keys (type "sas" or no type) are
//     generated, generationId is random, status defaults to "enabled". An edge device
//     (capabilities.iotEdge) gets deviceScope "ms-azure-iot-edge://{id}-{generationId}" and
//     the module identities $edgeAgent and $edgeHub.
//   - absent and ifMatch != "": ErrNotFound. Present and ifMatch == "": ErrConflict.
//   - present and ifMatch "*" or the current etag: update (a new etag); omitted keys keep the
//     current ones. Another etag: ErrPreconditionFailed.
//
// A leaf device gets a parent by naming the edge device's scope in parentScopes (or
// deviceScope); both are then set to it, as IoT Hub does for children. A scope that is not an
// edge device's is ErrInvalid. Disabling a device drops its connections and its modules'.
func (s *Server) PutDevice(d Device, ifMatch string) (Device, error) {
	if err := iothub.ValidateDeviceID(d.DeviceID); err != nil {
		return Device{}, fmt.Errorf("put device: %w: %w", ErrInvalid, err)
	}
	now := s.now()
	var e effects
	s.mu.Lock()
	out, err := s.putDeviceLocked(d, normalizeEtag(ifMatch), now, &e)
	s.mu.Unlock()
	s.apply(e)
	if err != nil {
		return Device{}, fmt.Errorf("put device %q: %w", d.DeviceID, err)
	}
	return out, nil
}

func (s *Server) putDeviceLocked(req Device, ifMatch string, now time.Time, e *effects) (Device, error) {
	if s.db == nil {
		return Device{}, errNotRunning
	}
	cur := s.devices[req.DeviceID]
	switch {
	case cur == nil && ifMatch != "":
		return Device{}, fmt.Errorf("%w (If-Match given for a device that does not exist)", ErrNotFound)
	case cur != nil && ifMatch == "":
		return Device{}, ErrConflict
	case cur != nil && !checkEtag(ifMatch, cur.Etag):
		return Device{}, fmt.Errorf("%w: etag %q does not match %q", ErrPreconditionFailed, ifMatch, cur.Etag)
	}

	var nd Device
	if cur == nil {
		gen, err := newGenerationID()
		if err != nil {
			return Device{}, err
		}
		nd = Device{DeviceID: req.DeviceID, GenerationID: gen, ConnectionState: stateDisconnected}
	} else {
		nd = cloneDevice(cur)
	}
	var curAuth *Authentication
	if cur != nil {
		curAuth = &cur.Authentication
	}
	auth, err := normalizeAuth(req.Authentication, curAuth)
	if err != nil {
		return Device{}, err
	}
	nd.Authentication = auth
	switch req.Status {
	case "":
		if cur == nil {
			nd.Status = statusEnabled
		}
	case statusEnabled, statusDisabled:
		if cur != nil && cur.Status != req.Status {
			nd.StatusUpdatedTime = now
		}
		nd.Status = req.Status
	default:
		return Device{}, fmt.Errorf("%w: status %q is neither %q nor %q", ErrInvalid, req.Status, statusEnabled, statusDisabled)
	}
	nd.StatusReason = req.StatusReason
	nd.Capabilities = req.Capabilities
	if err := s.setScopesLocked(&nd, req); err != nil {
		return Device{}, err
	}
	if nd.Etag, err = newEtag(); err != nil {
		return Device{}, err
	}

	var b batch
	b.put(bucketDevices, nd.DeviceID, &nd)
	newTwins := map[string]*twinRecord{}
	if cur == nil {
		newTwins[nd.DeviceID] = &twinRecord{Twin: twin.New()}
	}
	var newModules []*Module
	if nd.Capabilities.IoTEdge {
		for _, mid := range []string{moduleEdgeAgent, moduleEdgeHub} {
			if _, ok := s.modules[identityKey(nd.DeviceID, mid)]; ok {
				continue
			}
			m, rec, err := s.newModuleLocked(Module{DeviceID: nd.DeviceID, ModuleID: mid}, now, &b)
			if err != nil {
				return Device{}, err
			}
			newModules = append(newModules, m)
			newTwins[identityKey(nd.DeviceID, mid)] = rec
		}
	}
	for k, rec := range newTwins {
		b.put(bucketTwins, k, rec)
	}
	for _, m := range newModules {
		b.put(bucketModules, identityKey(m.DeviceID, m.ModuleID), m)
	}
	if err := b.commit(s.db); err != nil {
		return Device{}, err
	}

	s.devices[nd.DeviceID] = &nd
	maps.Copy(s.twins, newTwins)
	for _, m := range newModules {
		key := identityKey(m.DeviceID, m.ModuleID)
		s.modules[key] = m
		delete(s.configs, key)
	}
	if cur != nil && cur.Status == statusEnabled && nd.Status == statusDisabled {
		s.dropIdentityLocked(nd.DeviceID, true, e)
		for _, m := range s.modulesOfLocked(nd.DeviceID) {
			s.dropIdentityLocked(identityKey(m.DeviceID, m.ModuleID), true, e)
		}
	}
	return s.deviceViewLocked(&nd), nil
}

// setScopesLocked applies the device-scope rules of PutDevice to nd.
func (s *Server) setScopesLocked(nd *Device, req Device) error {
	if len(req.ParentScopes) > 1 {
		return fmt.Errorf("%w: parentScopes has %d entries; a device has at most one parent", ErrInvalid, len(req.ParentScopes))
	}
	parent := ""
	if len(req.ParentScopes) == 1 {
		parent = req.ParentScopes[0]
	}
	if nd.Capabilities.IoTEdge {
		nd.DeviceScope = edgeScope(nd.DeviceID, nd.GenerationID)
	} else {
		// A leaf may name its parent in deviceScope alone (older service SDKs do).
		if req.DeviceScope != "" && parent != "" && req.DeviceScope != parent {
			return fmt.Errorf("%w: deviceScope %q and parentScopes %q name different parents", ErrInvalid, req.DeviceScope, parent)
		}
		if parent == "" {
			parent = req.DeviceScope
		}
		nd.DeviceScope = parent
	}
	nd.ParentScopes = nil
	if parent == "" {
		return nil
	}
	if parent == nd.DeviceScope && nd.Capabilities.IoTEdge {
		return fmt.Errorf("%w: an edge device cannot be its own parent", ErrInvalid)
	}
	if s.edgeByScopeLocked(parent) == nil {
		return fmt.Errorf("%w: scope %q is not the deviceScope of an edge device", ErrInvalid, parent)
	}
	nd.ParentScopes = []string{parent}
	return nil
}

func (s *Server) edgeByScopeLocked(scope string) *Device {
	if !strings.HasPrefix(scope, edgeScopePrefix) {
		return nil
	}
	for _, d := range s.devices {
		if d.Capabilities.IoTEdge && d.DeviceScope == scope {
			return d
		}
	}
	return nil
}

// normalizeAuth validates an authentication mechanism and fills in defaults: no type means
// "selfSigned" when a thumbprint is given and "sas" otherwise; omitted keys are kept from cur
// (an update) or generated.
func normalizeAuth(req Authentication, cur *Authentication) (Authentication, error) {
	typ := req.Type
	if typ == "" {
		typ = authSAS
		if req.X509Thumbprint != nil && req.X509Thumbprint.PrimaryThumbprint != "" {
			typ = authSelfSigned
		}
	}
	out := Authentication{Type: typ, SymmetricKey: &SymmetricKey{}, X509Thumbprint: &X509Thumbprint{}}
	switch typ {
	case authSAS:
		var k SymmetricKey
		if req.SymmetricKey != nil {
			k = *req.SymmetricKey
		}
		if k.PrimaryKey == "" && k.SecondaryKey == "" && cur != nil && cur.Type == authSAS && cur.SymmetricKey != nil {
			k = *cur.SymmetricKey
		}
		for _, key := range []*string{&k.PrimaryKey, &k.SecondaryKey} {
			if *key == "" {
				keys, err := newKeys()
				if err != nil {
					return Authentication{}, err
				}
				*key = keys.Primary
			}
			if b, err := base64.StdEncoding.DecodeString(*key); err != nil || len(b) == 0 {
				return Authentication{}, fmt.Errorf("%w: symmetric key is not valid base64", ErrInvalid)
			}
		}
		out.SymmetricKey = &k
	case authSelfSigned:
		if req.X509Thumbprint == nil || req.X509Thumbprint.PrimaryThumbprint == "" {
			return Authentication{}, fmt.Errorf("%w: authentication type %q needs x509Thumbprint.primaryThumbprint", ErrInvalid, typ)
		}
		t := *req.X509Thumbprint
		for _, tp := range []*string{&t.PrimaryThumbprint, &t.SecondaryThumbprint} {
			if *tp == "" {
				continue
			}
			*tp = strings.ToUpper(*tp)
			if b, err := hex.DecodeString(*tp); err != nil || (len(b) != 20 && len(b) != 32) {
				return Authentication{}, fmt.Errorf("%w: thumbprint %q is not a SHA-1 or SHA-256 hex digest", ErrInvalid, *tp)
			}
		}
		out.X509Thumbprint = &t
	case authCA, authNone:
	default:
		return Authentication{}, fmt.Errorf("%w: authentication type %q is not one of sas, selfSigned, certificateAuthority, none", ErrInvalid, typ)
	}
	return out, nil
}

// GetDevice returns a device; ErrNotFound when absent.
func (s *Server) GetDevice(id string) (Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return Device{}, fmt.Errorf("device %q: %w", id, ErrNotFound)
	}
	return s.deviceViewLocked(d), nil
}

// ListDevices returns every device, sorted by id.
func (s *Server) ListDevices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.devices))
	for _, id := range slices.Sorted(maps.Keys(s.devices)) {
		out = append(out, s.deviceViewLocked(s.devices[id]))
	}
	return out
}

// DeleteDevice deletes a device with its modules, twins and pending C2D messages, and drops
// their connections and sessions. ifMatch "" or "*" deletes unconditionally.
func (s *Server) DeleteDevice(id, ifMatch string) error {
	var e effects
	s.mu.Lock()
	err := s.deleteDeviceLocked(id, ifMatch, &e)
	s.mu.Unlock()
	s.apply(e)
	if err != nil {
		return fmt.Errorf("delete device %q: %w", id, err)
	}
	return nil
}

func (s *Server) deleteDeviceLocked(id, ifMatch string, e *effects) error {
	if s.db == nil {
		return errNotRunning
	}
	d, ok := s.devices[id]
	if !ok {
		return ErrNotFound
	}
	if !checkEtag(ifMatch, d.Etag) {
		return fmt.Errorf("%w: etag %q does not match %q", ErrPreconditionFailed, normalizeEtag(ifMatch), d.Etag)
	}
	mods := s.modulesOfLocked(id)
	var b batch
	b.del(bucketDevices, id)
	b.del(bucketTwins, id)
	for _, m := range mods {
		key := identityKey(id, m.ModuleID)
		b.del(bucketModules, key)
		b.del(bucketTwins, key)
	}
	var configKeys []string
	for key := range s.configs {
		if strings.HasPrefix(key, id+"/") {
			configKeys = append(configKeys, key)
			b.del(bucketConfigurations, key)
		}
	}
	if err := b.commit(s.db); err != nil {
		return err
	}
	delete(s.devices, id)
	delete(s.twins, id)
	for _, k := range configKeys {
		delete(s.configs, k)
	}
	for _, m := range mods {
		key := identityKey(id, m.ModuleID)
		delete(s.modules, key)
		delete(s.twins, key)
		s.dropIdentityLocked(key, true, e)
	}
	for _, entry := range s.c2d[id] {
		entry.removed = true
	}
	delete(s.c2d, id)
	s.dropIdentityLocked(id, true, e)
	return nil
}

// PutModule creates or updates a module with the same If-Match rules as PutDevice. The device
// must exist (ErrNotFound). A desired document that ApplyConfigurationContent kept for this
// module is applied to its new twin.
func (s *Server) PutModule(m Module, ifMatch string) (Module, error) {
	if err := iothub.ValidateDeviceID(m.DeviceID); err != nil {
		return Module{}, fmt.Errorf("put module: %w: %w", ErrInvalid, err)
	}
	if err := iothub.ValidateModuleID(m.ModuleID); err != nil {
		return Module{}, fmt.Errorf("put module: %w: %w", ErrInvalid, err)
	}
	now := s.now()
	s.mu.Lock()
	out, err := s.putModuleLocked(m, normalizeEtag(ifMatch), now)
	s.mu.Unlock()
	if err != nil {
		return Module{}, fmt.Errorf("put module %q: %w", identityKey(m.DeviceID, m.ModuleID), err)
	}
	return out, nil
}

func (s *Server) putModuleLocked(req Module, ifMatch string, now time.Time) (Module, error) {
	if s.db == nil {
		return Module{}, errNotRunning
	}
	if _, ok := s.devices[req.DeviceID]; !ok {
		return Module{}, fmt.Errorf("device %q: %w", req.DeviceID, ErrNotFound)
	}
	key := identityKey(req.DeviceID, req.ModuleID)
	cur := s.modules[key]
	switch {
	case cur == nil && ifMatch != "":
		return Module{}, fmt.Errorf("%w (If-Match given for a module that does not exist)", ErrNotFound)
	case cur != nil && ifMatch == "":
		return Module{}, ErrConflict
	case cur != nil && !checkEtag(ifMatch, cur.Etag):
		return Module{}, fmt.Errorf("%w: etag %q does not match %q", ErrPreconditionFailed, ifMatch, cur.Etag)
	}
	var b batch
	if cur == nil {
		m, rec, err := s.newModuleLocked(req, now, &b)
		if err != nil {
			return Module{}, err
		}
		b.put(bucketModules, key, m)
		b.put(bucketTwins, key, rec)
		if err := b.commit(s.db); err != nil {
			return Module{}, err
		}
		s.modules[key] = m
		s.twins[key] = rec
		delete(s.configs, key)
		return s.moduleViewLocked(m), nil
	}
	nm := cloneModule(cur)
	auth, err := normalizeAuth(req.Authentication, &cur.Authentication)
	if err != nil {
		return Module{}, err
	}
	nm.Authentication = auth
	nm.ManagedBy = req.ManagedBy
	if nm.Etag, err = newEtag(); err != nil {
		return Module{}, err
	}
	b.put(bucketModules, key, &nm)
	if err := b.commit(s.db); err != nil {
		return Module{}, err
	}
	s.modules[key] = &nm
	return s.moduleViewLocked(&nm), nil
}

// newModuleLocked builds a new module and its twin, applying a pending deployment document
// (and deleting it in b). Nothing is installed; the caller commits b and installs both.
func (s *Server) newModuleLocked(req Module, now time.Time, b *batch) (*Module, *twinRecord, error) {
	auth, err := normalizeAuth(req.Authentication, nil)
	if err != nil {
		return nil, nil, err
	}
	gen, err := newGenerationID()
	if err != nil {
		return nil, nil, err
	}
	etag, err := newEtag()
	if err != nil {
		return nil, nil, err
	}
	m := &Module{
		ModuleID:        req.ModuleID,
		DeviceID:        req.DeviceID,
		GenerationID:    gen,
		Etag:            etag,
		ConnectionState: stateDisconnected,
		Authentication:  auth,
		ManagedBy:       req.ManagedBy,
	}
	rec := &twinRecord{Twin: twin.New()}
	key := identityKey(req.DeviceID, req.ModuleID)
	if raw, ok := s.configs[key]; ok {
		doc, err := twin.DecodePatch(raw)
		if err == nil {
			_, err = rec.Twin.ReplaceDesired(doc, now)
		}
		if err != nil {
			// The document was validated when it was stored; a failure here means the
			// store was edited by hand.
			return nil, nil, fmt.Errorf("pending deployment for %q: %w", key, err)
		}
		b.del(bucketConfigurations, key)
	}
	return m, rec, nil
}

// GetModule returns a module; ErrNotFound when it or its device is absent.
func (s *Server) GetModule(deviceID, moduleID string) (Module, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.modules[identityKey(deviceID, moduleID)]
	if !ok {
		return Module{}, fmt.Errorf("module %q: %w", identityKey(deviceID, moduleID), ErrNotFound)
	}
	return s.moduleViewLocked(m), nil
}

// ListModules returns a device's modules sorted by id; ErrNotFound for an unknown device.
func (s *Server) ListModules(deviceID string) ([]Module, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.devices[deviceID]; !ok {
		return nil, fmt.Errorf("device %q: %w", deviceID, ErrNotFound)
	}
	var out []Module
	for _, m := range s.modulesOfLocked(deviceID) {
		out = append(out, s.moduleViewLocked(m))
	}
	return out, nil
}

// DeleteModule deletes a module and its twin and drops its connection and session.
func (s *Server) DeleteModule(deviceID, moduleID, ifMatch string) error {
	key := identityKey(deviceID, moduleID)
	var e effects
	s.mu.Lock()
	err := func() error {
		if s.db == nil {
			return errNotRunning
		}
		m, ok := s.modules[key]
		if !ok {
			return ErrNotFound
		}
		if !checkEtag(ifMatch, m.Etag) {
			return fmt.Errorf("%w: etag %q does not match %q", ErrPreconditionFailed, normalizeEtag(ifMatch), m.Etag)
		}
		var b batch
		b.del(bucketModules, key)
		b.del(bucketTwins, key)
		if err := b.commit(s.db); err != nil {
			return err
		}
		delete(s.modules, key)
		delete(s.twins, key)
		s.dropIdentityLocked(key, true, &e)
		return nil
	}()
	s.mu.Unlock()
	s.apply(e)
	if err != nil {
		return fmt.Errorf("delete module %q: %w", key, err)
	}
	return nil
}

// modulesOfLocked returns a device's modules sorted by id.
func (s *Server) modulesOfLocked(deviceID string) []*Module {
	var out []*Module
	for _, m := range s.modules {
		if m.DeviceID == deviceID {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Module) int { return strings.Compare(a.ModuleID, b.ModuleID) })
	return out
}

// deviceViewLocked returns a copy of d with its live counters.
func (s *Server) deviceViewLocked(d *Device) Device {
	out := cloneDevice(d)
	out.CloudToDeviceMessageCount = len(s.c2d[d.DeviceID])
	return out
}

func (s *Server) moduleViewLocked(m *Module) Module { return cloneModule(m) }

func cloneDevice(d *Device) Device {
	out := *d
	out.Authentication = cloneAuth(d.Authentication)
	out.ParentScopes = slices.Clone(d.ParentScopes)
	return out
}

func cloneModule(m *Module) Module {
	out := *m
	out.Authentication = cloneAuth(m.Authentication)
	return out
}

func cloneAuth(a Authentication) Authentication {
	if a.SymmetricKey != nil {
		k := *a.SymmetricKey
		a.SymmetricKey = &k
	}
	if a.X509Thumbprint != nil {
		t := *a.X509Thumbprint
		a.X509Thumbprint = &t
	}
	return a
}
