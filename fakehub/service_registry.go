package fakehub

import (
	"fmt"
	"net/http"
	"strconv"
)

// Identity registry endpoints (protocol notes section 7):
//
//	GET    /devices?top=N
//	PUT    /devices/{d}            If-Match: "*" | etag to update; absent to create
//	GET    /devices/{d}
//	DELETE /devices/{d}            If-Match optional
//	GET    /devices/{d}/modules
//	PUT    /devices/{d}/modules/{m}
//	GET    /devices/{d}/modules/{m}
//	DELETE /devices/{d}/modules/{m}
//
// Path ids are percent-decoded once by ServeMux ("a%25b" is the id "a%b").

// maxListTop is IoT Hub's cap on GET /devices?top=N (and the default).
const maxListTop = 1000

func (a *restAPI) listDevices(w http.ResponseWriter, r *http.Request) {
	top := maxListTop
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListTop {
			a.writeError(w, r, argumentInvalid(fmt.Sprintf("query parameter top=%s: want an integer from 1 to %d", quote(v), maxListTop)))
			return
		}
		top = n
	}
	devices := a.s.ListDevices()
	if len(devices) > top {
		devices = devices[:top]
	}
	if devices == nil {
		devices = []Device{}
	}
	a.writeJSON(w, http.StatusOK, devices)
}

func (a *restAPI) putDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("d")
	var d Device
	if err := decodeJSON(w, r, &d); err != nil {
		a.writeError(w, r, err)
		return
	}
	if d.DeviceID == "" {
		d.DeviceID = id
	}
	if d.DeviceID != id {
		a.writeError(w, r, argumentInvalid(fmt.Sprintf("deviceId %q in the body does not match %q in the path", d.DeviceID, id)))
		return
	}
	out, err := a.s.PutDevice(d, ifMatch(r))
	if err != nil {
		a.writeError(w, r, a.coreError(err, id, ""))
		return
	}
	setETag(w, out.Etag)
	a.writeJSON(w, http.StatusOK, out)
}

func (a *restAPI) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("d")
	d, err := a.s.GetDevice(id)
	if err != nil {
		a.writeError(w, r, a.coreError(err, id, ""))
		return
	}
	setETag(w, d.Etag)
	a.writeJSON(w, http.StatusOK, d)
}

func (a *restAPI) deleteDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("d")
	if err := a.s.DeleteDevice(id, ifMatch(r)); err != nil {
		a.writeError(w, r, a.coreError(err, id, ""))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *restAPI) listModules(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("d")
	modules, err := a.s.ListModules(id)
	if err != nil {
		a.writeError(w, r, a.coreError(err, id, ""))
		return
	}
	if modules == nil {
		modules = []Module{}
	}
	a.writeJSON(w, http.StatusOK, modules)
}

func (a *restAPI) putModule(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	var m Module
	if err := decodeJSON(w, r, &m); err != nil {
		a.writeError(w, r, err)
		return
	}
	if m.DeviceID == "" {
		m.DeviceID = deviceID
	}
	if m.ModuleID == "" {
		m.ModuleID = moduleID
	}
	if m.DeviceID != deviceID || m.ModuleID != moduleID {
		a.writeError(w, r, argumentInvalid(fmt.Sprintf("deviceId/moduleId %q/%q in the body do not match %q/%q in the path",
			m.DeviceID, m.ModuleID, deviceID, moduleID)))
		return
	}
	out, err := a.s.PutModule(m, ifMatch(r))
	if err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, moduleID))
		return
	}
	setETag(w, out.Etag)
	a.writeJSON(w, http.StatusOK, out)
}

func (a *restAPI) getModule(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	m, err := a.s.GetModule(deviceID, moduleID)
	if err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, moduleID))
		return
	}
	setETag(w, m.Etag)
	a.writeJSON(w, http.StatusOK, m)
}

func (a *restAPI) deleteModule(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	if err := a.s.DeleteModule(deviceID, moduleID, ifMatch(r)); err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, moduleID))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
