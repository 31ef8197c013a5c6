// The fakehub console: asks once for the service connection string, then shows the hub live.
// Each panel lives in its own module; this one only signs in and wires them together.

import { Hub } from "./api.js";
import { parseConnectionString } from "./sas.js";
import { byId, clearError, showError } from "./dom.js";
import { startDevices } from "./devices.js";
import { startMessages } from "./messages.js";
import { startTwin } from "./twin.js";
import { startDeploy } from "./deploy.js";
import { startMethod } from "./method.js";

// sessionStorage: the string lives as long as this tab, and is not shared with other tabs.
const STORAGE_KEY = "fakehub.console.connectionString";

const login = byId("login");
const loginForm = byId("login-form");
const loginError = byId("login-error");
const input = byId("conn");

loginForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await signIn(input.value);
});
byId("forget").addEventListener("click", () => {
  sessionStorage.removeItem(STORAGE_KEY);
  location.reload();
});

const saved = sessionStorage.getItem(STORAGE_KEY);
if (saved) signIn(saved);

/** signIn checks the connection string against the hub, then opens the console. */
async function signIn(text) {
  clearError(loginError);
  let hub;
  try {
    hub = new Hub(parseConnectionString(text));
    await probe(hub);
  } catch (err) {
    showError(loginError, err);
    return;
  }
  sessionStorage.setItem(STORAGE_KEY, text.trim());
  input.value = "";
  login.hidden = true;
  open(hub);
}

/**
 * probe makes one cheap call that any useful policy may make, so that a wrong key is
 * reported at the sign-in form rather than in every panel. A policy with fewer rights
 * (service, registryRead) still opens the console; the panels it cannot use say why.
 */
async function probe(hub) {
  const calls = [hub.request("GET", "/devices?top=1"), hub.request("GET", "/fake/connections")];
  const results = await Promise.allSettled(calls);
  if (results.every((r) => r.status === "rejected")) throw results[0].reason;
}

function open(hub) {
  const signal = new AbortController().signal; // the console runs until the tab closes
  byId("hub-name").textContent = `${hub.hostName} · policy ${hub.keyName}`;
  byId("forget").hidden = false;
  byId("console").hidden = false;

  const streamState = byId("stream-state");
  const selectTwin = startTwin(hub);
  const selectDeploy = startDeploy(hub);
  const selectMethod = startMethod(hub);
  const deviceList = byId("device-ids");

  startDevices(hub, {
    signal,
    onSelect: (deviceId, moduleId) => {
      selectTwin(deviceId, moduleId);
      selectMethod(deviceId, moduleId);
      selectDeploy(deviceId);
    },
    onDevices: (devices) => {
      const ids = devices.map((d) => d.deviceId).join("\n");
      if (deviceList.dataset.ids === ids) return;
      deviceList.dataset.ids = ids;
      deviceList.replaceChildren(...devices.map((d) => new Option(d.deviceId)));
    },
  });
  startMessages(hub, {
    signal,
    onState: (state) => {
      streamState.textContent = state === "live" ? "live" : state;
      streamState.className = `badge badge-${state}`;
    },
  });
}
