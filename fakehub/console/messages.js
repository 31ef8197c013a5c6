// The live device-to-cloud panel: captured messages, newest first, and their rate.

import { RateChart } from "./chart.js";
import { lastSeq, follow } from "./stream.js";
import { byId, clock, el, every, showError, clearError } from "./dom.js";

/** How many messages the list keeps, and how many older ones it shows on opening. */
const MAX_SHOWN = 200;
const HISTORY = 20;

/** The system properties worth a glance; the rest is in the row's tooltip. */
const SHOWN_SYSTEM = ["message-id", "correlation-id", "content-type", "content-encoding", "$.on"];

/** startMessages follows the hub's event stream until signal aborts. */
export async function startMessages(hub, { onState, signal }) {
  const list = byId("messages");
  const error = byId("messages-error");
  const count = byId("messages-count");
  const chart = new RateChart(byId("rate"), byId("rate-label"));
  let received = 0;

  byId("messages-clear").addEventListener("click", () => list.replaceChildren());
  every(1000, signal, () => chart.draw(Date.now()));

  let after;
  try {
    after = Math.max(0, (await lastSeq(hub, signal)) - HISTORY);
    clearError(error);
  } catch (err) {
    if (!signal.aborted) showError(error, err);
    onState("failed", err);
    return;
  }
  await follow(hub, after, {
    signal,
    onState: (state, err) => {
      if (err) showError(error, `event stream: ${err.message}; retrying`);
      else clearError(error);
      onState(state, err);
    },
    onEvents: (events) => {
      // events are oldest first; the newest goes on top.
      const items = events.map((e) => {
        chart.add(e.enqueuedTime);
        return messageItem(e);
      }).reverse();
      list.prepend(...items);
      while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
      received += events.length;
      count.textContent = `${received} shown since opening (from seq ${after + 1})`;
      chart.draw(Date.now());
    },
  });
}

function messageItem(e) {
  const sender = e.moduleId ? `${e.deviceId}/${e.moduleId}` : e.deviceId;
  const sys = e.systemProperties || {};
  const props = Object.entries(e.properties || {});
  const shownSys = SHOWN_SYSTEM.filter((k) => sys[k] !== undefined).map((k) => [k, sys[k]]);
  const body = e.bodyText !== undefined ? e.bodyText : `(binary, base64) ${e.body}`;
  return el("li", {
    dataset: { seq: String(e.seq), device: e.deviceId, module: e.moduleId || "" },
    title: Object.entries(sys).map(([k, v]) => `${k}: ${v}`).join("\n"),
  },
  el("div", { className: "meta" },
    el("span", { className: "seq" }, `#${e.seq}`),
    el("span", { className: "time" }, clock(e.enqueuedTime)),
    el("span", { className: "sender" }, sender)),
  props.length + shownSys.length > 0 ? el("div", { className: "props" },
    ...props.map(([k, v]) => el("span", { className: "prop" }, `${k}=${v}`)),
    ...shownSys.map(([k, v]) => el("span", { className: "prop sys" }, `${k}=${v}`))) : null,
  el("pre", { className: "body" }, body));
}
