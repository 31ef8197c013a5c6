// The live device-to-cloud stream: GET /fake/events/stream (Server-Sent Events) read with
// fetch(), because EventSource cannot send the Authorization header and a token must not
// travel in a URL. The frames are parsed here; on any break the stream is opened again
// after the last event seen, so no event is skipped or shown twice.

import { errorFromResponse } from "./api.js";
import { sleep } from "./dom.js";

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10000;

/**
 * lastSeq finds the seq of the newest captured event (0 when there is none), so that the
 * console can start a little before it instead of replaying up to 100,000 retained events.
 * The API has no "newest" query, but GET /fake/events?after=X&limit=1 is non-empty exactly
 * when X < newest (seqs are contiguous): a doubling then a bisection, about 2*log2(newest)
 * tiny requests.
 */
export async function lastSeq(hub, signal) {
  const newerThan = async (x) =>
    (await hub.request("GET", `/fake/events?after=${x}&limit=1`, { signal })).body.length > 0;
  if (!(await newerThan(0))) return 0;
  let lo = 0; // newest > lo
  let hi = 1;
  while (await newerThan(hi)) {
    lo = hi;
    hi *= 2;
  }
  // newest > lo and newest <= hi
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await newerThan(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * follow reads events with seq > after until signal aborts, calling onEvents with each
 * batch (oldest first) and onState with "live", or "reconnecting" and the error.
 */
export async function follow(hub, after, { onEvents, onState, signal }) {
  let retry = RETRY_MIN_MS;
  while (!signal.aborted) {
    try {
      const path = "/fake/events/stream";
      const resp = await fetch(`${path}?after=${after}`, {
        headers: { Authorization: await hub.authorization(), Accept: "text/event-stream" },
        cache: "no-store",
        signal,
      });
      if (!resp.ok) throw errorFromResponse("GET", path, resp, await resp.text());
      onState("live");
      retry = RETRY_MIN_MS;
      for await (const batch of frames(resp.body)) {
        const events = batch.map((data) => JSON.parse(data));
        if (events.length === 0) continue;
        after = events[events.length - 1].seq;
        onEvents(events);
      }
      throw new Error("the hub closed the event stream");
    } catch (err) {
      if (signal.aborted) return;
      onState("reconnecting", err);
      await sleep(retry, signal);
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    }
  }
}

/**
 * frames yields, per chunk read, the data of the complete SSE events it finished. Comments
 * (": keep-alive") and the id field are skipped: each event's JSON carries its seq.
 */
async function* frames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const batch = [];
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") {
          if (data.length > 0) batch.push(data.join("\n"));
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      }
      if (batch.length > 0) yield batch;
    }
  } finally {
    reader.releaseLock();
  }
}
