// A progress bar for the examples: `\r[########--------] 40% loss 0.123` on a TTY,
// plain periodic lines otherwise (logs, CI, child processes).
'use strict';

class Progress {
  /**
   * @param {number} total  number of steps
   * @param {object} [opts] { label, width = 24, every (non-TTY: print every n steps, default total/10), stream }
   */
  constructor(total, opts = {}) {
    this.total = Math.max(1, total);
    this.label = opts.label ? `${opts.label} ` : '';
    this.width = opts.width ?? 24;
    this.stream = opts.stream ?? process.stdout;
    this.tty = Boolean(this.stream.isTTY);
    this.every = opts.every ?? Math.max(1, Math.round(this.total / 10));
    this.start = Date.now();
    this.lastDraw = 0;
  }
  /** Step `i` (1-based count of finished steps) with metrics { loss: 0.12, acc: 0.8 }. */
  tick(i, metrics = {}) {
    const text = Object.entries(metrics)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`)
      .join('  ');
    const frac = Math.min(1, i / this.total);
    if (this.tty) {
      const now = Date.now();
      if (i < this.total && now - this.lastDraw < 50) return; // at most ~20 redraws per second
      this.lastDraw = now;
      const full = Math.round(frac * this.width);
      const bar = '#'.repeat(full) + '-'.repeat(this.width - full);
      const pct = String(Math.round(frac * 100)).padStart(3);
      this.stream.write(`\r${this.label}[${bar}] ${pct}% ${text}\x1b[K`);
      if (i >= this.total) {
        this.stream.write('\n');
        this.finished = true;
      }
    } else if (i === 1 || i % this.every === 0 || i >= this.total) {
      const secs = ((Date.now() - this.start) / 1000).toFixed(1);
      this.stream.write(`${this.label}${String(i).padStart(String(this.total).length)}/${this.total}  ${text}  (${secs} s)\n`);
    }
  }
  /** Ends the bar early (e.g. a target reached before the last step). */
  done() {
    if (this.tty && this.lastDraw !== 0 && !this.finished) this.stream.write('\n');
    this.finished = true;
  }
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
  return v.toFixed(4);
}

module.exports = { Progress };
