// A bar chart of device-to-cloud messages per second over the last minute, drawn on a
// canvas. Messages are counted by their enqueued time (the hub's clock); the window ends at
// the browser's clock, which is the same clock when both run on one machine.

const WINDOW_SECONDS = 60;

export class RateChart {
  constructor(canvas, label) {
    this.canvas = canvas;
    this.label = label;
    this.counts = new Map(); // Unix second -> messages enqueued in it
  }

  /** add counts one message enqueued at time (anything Date.parse understands). */
  add(time) {
    const second = Math.floor(Date.parse(time) / 1000);
    if (Number.isNaN(second)) return;
    this.counts.set(second, (this.counts.get(second) || 0) + 1);
  }

  /** draw renders the window ending at nowMs and forgets older seconds. */
  draw(nowMs) {
    const now = Math.floor(nowMs / 1000);
    const first = now - WINDOW_SECONDS + 1;
    const bars = [];
    for (let s = first; s <= now; s++) bars.push(this.counts.get(s) || 0);
    for (const s of this.counts.keys()) if (s < first) this.counts.delete(s);

    const total = bars.reduce((a, b) => a + b, 0);
    const peak = Math.max(0, ...bars);
    const recent = bars.slice(-10).reduce((a, b) => a + b, 0) / 10;
    // The numbers are also data attributes, for tests and for reading without the picture.
    this.canvas.dataset.total = String(total);
    this.canvas.dataset.peak = String(peak);
    this.label.textContent =
      `${recent.toFixed(1)} msg/s over the last 10 s · peak ${peak} msg/s · ${total} in the last ${WINDOW_SECONDS} s`;

    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (this.canvas.width !== Math.round(width * ratio)) this.canvas.width = Math.round(width * ratio);
    if (this.canvas.height !== Math.round(height * ratio)) this.canvas.height = Math.round(height * ratio);
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const style = getComputedStyle(this.canvas);
    const pad = { left: 30, right: 6, top: 8, bottom: 16 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const scale = Math.max(1, peak);

    ctx.strokeStyle = style.getPropertyValue("--grid") || "#ccc";
    ctx.fillStyle = style.getPropertyValue("--axis") || "#666";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.left, pad.top + plotH + 0.5);
    ctx.lineTo(pad.left + plotW, pad.top + plotH + 0.5);
    ctx.moveTo(pad.left, pad.top + 0.5);
    ctx.lineTo(pad.left + plotW, pad.top + 0.5);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(String(scale), pad.left - 4, pad.top + 8);
    ctx.fillText("0", pad.left - 4, pad.top + plotH);
    ctx.textAlign = "left";
    ctx.fillText(`-${WINDOW_SECONDS} s`, pad.left, height - 3);
    ctx.textAlign = "right";
    ctx.fillText("now", pad.left + plotW, height - 3);

    ctx.fillStyle = style.getPropertyValue("--bar") || "#2a6";
    const slot = plotW / WINDOW_SECONDS;
    bars.forEach((n, i) => {
      if (n === 0) return;
      const h = (n / scale) * plotH;
      ctx.fillRect(pad.left + i * slot + 1, pad.top + plotH - h, Math.max(1, slot - 2), h);
    });
  }
}
