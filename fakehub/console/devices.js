// The devices panel: the identity registry and, for every IoT Edge device, its modules as
// the edge agent reports them in the $edgeAgent twin (edge-runtime-behaviour.md B.1),
// refreshed every two seconds.

import { twinPath } from "./api.js";
import { byId, clearError, clock, el, every, showError } from "./dom.js";

const REFRESH_MS = 2000;

/**
 * startDevices keeps the panel up to date until signal aborts. onSelect(deviceId, moduleId)
 * is called when a row is clicked; onDevices(devices) after every registry read.
 */
export function startDevices(hub, { onSelect, onDevices, signal }) {
  const table = byId("devices");
  const error = byId("devices-error");
  const edges = byId("edge-devices");
  const updated = byId("devices-updated");
  let shownDevices = "";
  const shownEdges = new Map(); // device id -> JSON of what its block shows

  every(REFRESH_MS, signal, async () => {
    let devices;
    try {
      devices = (await hub.request("GET", "/devices?top=1000", { signal })).body;
      clearError(error);
    } catch (err) {
      if (!signal.aborted) showError(error, err);
      return;
    }
    devices.sort((a, b) => a.deviceId.localeCompare(b.deviceId));
    onDevices(devices);
    const key = JSON.stringify(devices);
    if (key !== shownDevices) {
      shownDevices = key;
      table.tBodies[0].replaceChildren(...devices.map((d) => deviceRow(d, onSelect)));
    }

    const edgeDevices = devices.filter((d) => d.capabilities?.iotEdge);
    const blocks = await Promise.all(edgeDevices.map((d) => edgeState(hub, d.deviceId, signal)));
    if (signal.aborted) return;
    const wanted = new Set(edgeDevices.map((d) => d.deviceId));
    for (const id of shownEdges.keys()) {
      if (!wanted.has(id)) {
        shownEdges.delete(id);
        edges.querySelector(`[data-edge="${CSS.escape(id)}"]`)?.remove();
      }
    }
    blocks.forEach((state) => {
      const blockKey = JSON.stringify(state);
      if (shownEdges.get(state.deviceId) === blockKey) return;
      shownEdges.set(state.deviceId, blockKey);
      const block = edgeBlock(state, onSelect);
      const old = edges.querySelector(`[data-edge="${CSS.escape(state.deviceId)}"]`);
      if (old) old.replaceWith(block);
      else edges.append(block);
    });
    updated.textContent = `updated ${clock(Date.now())}`;
  });
}

function deviceRow(d, onSelect) {
  const row = el("tr", { dataset: { device: d.deviceId }, className: "clickable", title: "show this device's twin" },
    el("td", { className: "id" }, d.deviceId),
    el("td", {}, d.capabilities?.iotEdge ? "edge" : ""),
    el("td", { className: `conn conn-${d.connectionState}` }, d.connectionState),
    el("td", {}, d.status),
    el("td", {}, clock(d.lastActivityTime)),
    el("td", { className: "num" }, d.cloudToDeviceMessageCount));
  row.addEventListener("click", () => onSelect(d.deviceId, ""));
  return row;
}

/**
 * edgeState reads what the edge block shows: the modules of the desired deployment and of
 * the agent's report, and how far the agent got with the deployment.
 */
async function edgeState(hub, deviceId, signal) {
  try {
    const twin = (await hub.request("GET", twinPath(deviceId, "$edgeAgent"), { signal })).body;
    return summarize(deviceId, twin.properties?.desired || {}, twin.properties?.reported || {});
  } catch (err) {
    return { deviceId, error: err.message, modules: [] };
  }
}

/** summarize joins desired and reported module entries by name, system modules first. */
export function summarize(deviceId, desired, reported) {
  const modules = [];
  const add = (name, moduleId, want, got) => modules.push({
    name,
    moduleId,
    desiredStatus: want?.status ?? (want ? "running" : ""),
    runtimeStatus: got?.runtimeStatus ?? "",
    statusDescription: got?.statusDescription ?? (got ? "" : "not reported by the agent"),
    restartCount: got?.restartCount ?? "",
    exitCode: got?.exitCode ?? "",
    image: got?.settings?.image ?? want?.settings?.image ?? "",
  });
  for (const name of ["edgeAgent", "edgeHub"]) {
    const want = desired.systemModules?.[name];
    const got = reported.systemModules?.[name];
    if (want || got) add(name, `$${name}`, want, got);
  }
  const names = new Set([...Object.keys(desired.modules || {}), ...Object.keys(reported.modules || {})]);
  for (const name of [...names].sort()) add(name, name, desired.modules?.[name], reported.modules?.[name]);
  return {
    deviceId,
    desiredVersion: desired.$version ?? null,
    lastDesiredVersion: reported.lastDesiredVersion ?? null,
    lastDesiredStatus: reported.lastDesiredStatus ?? null,
    reportedAt: reported.$metadata?.$lastUpdated ?? "",
    modules,
  };
}

function edgeBlock(state, onSelect) {
  const block = el("div", { className: "edge", dataset: { edge: state.deviceId } },
    el("h3", {}, `Edge device ${state.deviceId}`));
  if (state.error) {
    block.append(el("p", { className: "error", role: "alert" }, state.error));
    return block;
  }
  const lds = state.lastDesiredStatus;
  block.append(el("p", { className: "deployment" },
    `deployment: desired version ${state.desiredVersion ?? "none"}, agent applied ${state.lastDesiredVersion ?? "none"}`,
    lds ? el("span", { className: `lds lds-${lds.code === 200 ? "ok" : "bad"}` },
      ` · lastDesiredStatus ${lds.code}${lds.description ? " " + lds.description : ""}`) : " · no report from the agent yet",
    state.reportedAt ? ` · reported ${clock(state.reportedAt)}` : ""));
  if (state.modules.length === 0) {
    block.append(el("p", { className: "hint" }, "No modules: apply a deployment below."));
    return block;
  }
  const rows = state.modules.map((m) => {
    const row = el("tr", {
      className: "clickable", title: "show this module's twin",
      dataset: { device: state.deviceId, module: m.name, moduleId: m.moduleId },
    },
    el("td", { className: "id" }, m.name),
    el("td", {}, m.desiredStatus),
    el("td", { className: `runtime-status rs-${m.runtimeStatus || "none"}` }, m.runtimeStatus || "—"),
    el("td", { className: "desc" }, m.statusDescription),
    el("td", { className: "num" }, m.restartCount),
    el("td", { className: "num" }, m.exitCode),
    el("td", { className: "image" }, m.image));
    row.addEventListener("click", () => onSelect(state.deviceId, m.moduleId));
    return row;
  });
  block.append(el("table", { className: "modules" },
    el("thead", {}, el("tr", {}, ...["Module", "Desired", "Runtime status", "Description", "Restarts", "Exit", "Image"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)));
  return block;
}
