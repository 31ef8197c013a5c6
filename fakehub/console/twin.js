// The twin panel: read a device or module twin, and change its tags and desired properties
// with a merge patch (PATCH) or a replacement (PUT), guarded by the twin's etag.

import { twinPath } from "./api.js";
import { byId, clearError, clock, parseJSON, pretty, showError } from "./dom.js";

/** startTwin wires the twin panel; it returns select(deviceId, moduleId), which loads one. */
export function startTwin(hub) {
  const device = byId("twin-device");
  const module = byId("twin-module");
  const view = byId("twin-view");
  const editor = byId("twin-editor");
  const status = byId("twin-status");
  const error = byId("twin-error");
  let loaded = null; // {deviceId, moduleId, etag} of the twin in the editor

  async function load() {
    clearError(error);
    const deviceId = device.value.trim();
    const moduleId = module.value.trim();
    if (deviceId === "") {
      showError(error, "enter a device id (and a module id for a module twin)");
      return;
    }
    try {
      const { body, etag } = await hub.request("GET", twinPath(deviceId, moduleId));
      loaded = { deviceId, moduleId, etag: etag || body.etag };
      view.textContent = pretty(body);
      editor.value = pretty(editable(body));
      status.textContent = `${moduleId ? "module" : "device"} twin ${deviceId}${moduleId ? "/" + moduleId : ""}, version ${body.version}, read ${clock(Date.now())}`;
    } catch (err) {
      showError(error, err);
    }
  }

  async function write(method) {
    clearError(error);
    if (!loaded) {
      showError(error, "load a twin first");
      return;
    }
    try {
      const doc = parseJSON(editor.value, "the twin document");
      const { body } = await hub.request(method, twinPath(loaded.deviceId, loaded.moduleId), { body: doc, ifMatch: loaded.etag });
      loaded.etag = body.etag;
      view.textContent = pretty(body);
      editor.value = pretty(editable(body));
      status.textContent = `${method === "PATCH" ? "merged" : "replaced"} at ${clock(Date.now())}: version ${body.version}`;
    } catch (err) {
      showError(error, err);
    }
  }

  byId("twin-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  byId("twin-patch").addEventListener("click", () => write("PATCH"));
  byId("twin-replace").addEventListener("click", () => write("PUT"));

  return (deviceId, moduleId) => {
    device.value = deviceId;
    module.value = moduleId;
    load();
  };
}

/** editable is the part of a twin the service may change: tags and desired properties. */
function editable(twin) {
  const desired = { ...(twin.properties?.desired || {}) };
  delete desired.$metadata;
  delete desired.$version;
  return { tags: twin.tags || {}, properties: { desired } };
}
