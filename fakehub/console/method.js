// The direct method panel: POST /twins/{d}[/modules/{m}]/methods and the device's answer.

import { twinPath } from "./api.js";
import { byId, clearError, clock, parseJSON, pretty, showError } from "./dom.js";

/** startMethod wires the method panel; it returns select(deviceId, moduleId). */
export function startMethod(hub) {
  const device = byId("method-device");
  const module = byId("method-module");
  const name = byId("method-name");
  const payload = byId("method-payload");
  const timeout = byId("method-timeout");
  const connectTimeout = byId("method-connect-timeout");
  const button = byId("method-invoke");
  const result = byId("method-result");
  const status = byId("method-status");
  const error = byId("method-error");

  byId("method-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(error);
    result.textContent = "";
    delete result.dataset.status;
    status.textContent = "";
    const deviceId = device.value.trim();
    const moduleId = module.value.trim();
    try {
      if (deviceId === "") throw new Error("enter a device id");
      if (name.value.trim() === "") throw new Error("enter a method name");
      const request = {
        methodName: name.value.trim(),
        payload: payload.value.trim() === "" ? null : parseJSON(payload.value, "the payload"),
        responseTimeoutInSeconds: Number(timeout.value),
        connectTimeoutInSeconds: Number(connectTimeout.value),
      };
      button.disabled = true;
      status.textContent = `calling ${request.methodName} on ${deviceId}${moduleId ? "/" + moduleId : ""}; waiting up to ${request.responseTimeoutInSeconds + request.connectTimeoutInSeconds} s`;
      const { body } = await hub.request("POST", `${twinPath(deviceId, moduleId)}/methods`, { body: request });
      status.textContent = `answered at ${clock(Date.now())} with status ${body.status}`;
      result.dataset.status = String(body.status);
      result.textContent = pretty(body.payload);
    } catch (err) {
      status.textContent = "";
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  });

  return (deviceId, moduleId) => {
    device.value = deviceId;
    module.value = moduleId;
  };
}
