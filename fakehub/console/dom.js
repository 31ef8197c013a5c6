// Small DOM helpers shared by the panels. Text always goes in through textContent, never
// innerHTML: device ids, properties and bodies come from devices and are not trusted.

/** el creates an element with properties (className, dataset, textContent, ...) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** byId returns the element with id or throws: a missing element is a bug in index.html. */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`index.html has no element #${id}`);
  return node;
}

/** showError shows err (an Error or a string) in the inline error paragraph p. */
export function showError(p, err) {
  p.textContent = typeof err === "string" ? err : err.message || String(err);
  p.hidden = false;
}

/** clearError hides the inline error paragraph p. */
export function clearError(p) {
  p.textContent = "";
  p.hidden = true;
}

/** clock formats a time as HH:MM:SS.mmm in local time; "" for IoT Hub's zero time. */
export function clock(value) {
  const t = new Date(value);
  if (Number.isNaN(t.getTime()) || t.getUTCFullYear() <= 1) return "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

/** parseJSON parses text, naming the field in the error when it is not JSON. */
export function parseJSON(text, field) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${field} is not valid JSON: ${err.message}`);
  }
}

/** pretty renders a value as indented JSON. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** sleep resolves after ms, or at once when signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * every runs fn now and then every ms after each run ends, until signal aborts. A run that
 * throws is a bug in the page (API errors are shown by the panels): it is logged to the
 * browser console and the next run still happens.
 */
export async function every(ms, signal, fn) {
  while (!signal.aborted) {
    try {
      await fn();
    } catch (err) {
      console.error("fakehub console: periodic update failed:", err);
    }
    await sleep(ms, signal);
  }
}
