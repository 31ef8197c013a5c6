// The deployment panel: POST /devices/{d}/applyConfigurationContent with a deployment
// manifest ({"modulesContent": {"$edgeAgent": {"properties.desired": ...}, ...}}).

import { byId, clearError, clock, parseJSON, showError } from "./dom.js";

/** A minimal valid manifest (edge-runtime-behaviour.md A.4) with the images scripts/images.sh builds. */
const EXAMPLE = {
  modulesContent: {
    $edgeAgent: {
      "properties.desired": {
        schemaVersion: "1.1",
        runtime: { type: "docker", settings: { minDockerVersion: "v1.25" } },
        systemModules: {
          edgeAgent: { type: "docker", settings: { image: "outpost/edgeagent:dev", createOptions: "" } },
          edgeHub: {
            type: "docker", status: "running", restartPolicy: "always", startupOrder: 0,
            settings: { image: "outpost/edgehub:dev", createOptions: "" },
          },
        },
        modules: {
          tempSensor: {
            version: "1.0", type: "docker", status: "running", restartPolicy: "always", startupOrder: 1,
            env: { MessageCount: { value: "-1" } },
            settings: { image: "outpost/tempsensor:dev", createOptions: "{}" },
          },
        },
      },
    },
    $edgeHub: {
      "properties.desired": {
        schemaVersion: "1.1",
        routes: { upstream: "FROM /messages/* INTO $upstream" },
        storeAndForwardConfiguration: { timeToLiveSecs: 7200 },
      },
    },
  },
};

/** startDeploy wires the deployment panel; it returns select(deviceId) to preset the device. */
export function startDeploy(hub) {
  const device = byId("deploy-device");
  const content = byId("deploy-content");
  const status = byId("deploy-status");
  const error = byId("deploy-error");

  byId("deploy-example").addEventListener("click", () => {
    content.value = JSON.stringify(EXAMPLE, null, 2);
  });
  byId("deploy-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(error);
    status.textContent = "";
    const deviceId = device.value.trim();
    try {
      if (deviceId === "") throw new Error("enter the edge device id");
      let manifest = parseJSON(content.value, "the deployment");
      // Deployment files from tooling often wrap the content: {"content": {"modulesContent": ...}}.
      if (manifest?.content?.modulesContent) manifest = manifest.content;
      if (!manifest?.modulesContent || typeof manifest.modulesContent !== "object") {
        throw new Error('the deployment has no "modulesContent" object');
      }
      await hub.request("POST", `/devices/${encodeURIComponent(deviceId)}/applyConfigurationContent`,
        { body: { modulesContent: manifest.modulesContent } });
      status.textContent = `applied to ${deviceId} at ${clock(Date.now())}; the edge agent picks it up from its twin`;
    } catch (err) {
      showError(error, err);
    }
  });

  return (deviceId) => { device.value = deviceId; };
}
