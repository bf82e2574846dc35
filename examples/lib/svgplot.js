// A small dependency-free SVG line-plot writer: one or more stacked panels, each with
// axes, "nice" ticks, axis labels, a title and a legend; each series is a <polyline>.
//
//   const { writePlot } = require('./lib/svgplot');
//   writePlot('out.svg', {
//     title: 'Integrator',
//     panels: [{ ylabel: 'loss', xlabel: 'iteration', logY: true,
//                series: [{ name: 'D_RTRL', y: [...] }, { name: 'BPTT', x: [...], y: [...] }] }],
//   });
'use strict';
const fs = require('fs');

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** About `n` round tick values covering [lo, hi]. */
function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  const start = Math.floor(lo / step) * step;
  const ticks = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function fmtTick(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(6)));
}

function fmtLogTick(e) {
  // e: integer power of 10
  if (e >= -3 && e <= 3) return String(Number(Math.pow(10, e).toPrecision(3)));
  return `1e${e}`;
}

/**
 * Renders a plot to an SVG string.
 * @param {object} spec { title?, width = 720, panelHeight = 260, panels: [{ title?, xlabel?, ylabel?, logY?, yMin?, yMax?, series: [{ name, x?, y, color?, dash? }] }] }
 */
function renderPlot(spec) {
  const W = spec.width ?? 720;
  const PH = spec.panelHeight ?? 260;
  const panels = spec.panels ?? [];
  const top = spec.title ? 34 : 10;
  const H = top + panels.length * PH + 6;
  const m = { left: 72, right: 150, top: 26, bottom: 44 };
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  if (spec.title) out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  panels.forEach((p, pi) => {
    const y0 = top + pi * PH;
    const px = m.left;
    const py = y0 + m.top;
    const pw = W - m.left - m.right;
    const ph = PH - m.top - m.bottom;
    const series = (p.series ?? []).map((s, si) => {
      const ys = Array.from(s.y);
      const xs = s.x ? Array.from(s.x) : ys.map((_, i) => i);
      return { ...s, xs, ys, color: s.color ?? COLORS[si % COLORS.length] };
    });
    const logY = Boolean(p.logY);
    const tr = (v) => (logY ? Math.log10(Math.max(v, 1e-30)) : v);
    let xmin = Infinity;
    let xmax = -Infinity;
    let ymin = Infinity;
    let ymax = -Infinity;
    for (const s of series) {
      s.xs.forEach((x, i) => {
        const y = s.ys[i];
        if (!Number.isFinite(x) || !Number.isFinite(y) || (logY && !(y > 0))) return;
        xmin = Math.min(xmin, x);
        xmax = Math.max(xmax, x);
        ymin = Math.min(ymin, tr(y));
        ymax = Math.max(ymax, tr(y));
      });
    }
    if (!Number.isFinite(xmin)) {
      xmin = 0;
      xmax = 1;
      ymin = 0;
      ymax = 1;
    }
    if (p.yMin !== undefined) ymin = tr(p.yMin);
    if (p.yMax !== undefined) ymax = tr(p.yMax);
    let yt;
    if (logY) {
      const lo = Math.floor(ymin);
      const hi = Math.ceil(ymax === lo ? lo + 1 : ymax);
      yt = [];
      const stride = Math.max(1, Math.ceil((hi - lo) / 6));
      for (let e = lo; e <= hi; e += stride) yt.push(e);
      if (yt[yt.length - 1] < hi) yt.push(yt[yt.length - 1] + stride);
    } else {
      yt = niceTicks(ymin, ymax, 5);
    }
    const xt = niceTicks(xmin, xmax, 6);
    const ax0 = xt[0];
    const ax1 = xt[xt.length - 1];
    const ay0 = yt[0];
    const ay1 = yt[yt.length - 1];
    const sx = (x) => px + ((x - ax0) / (ax1 - ax0 || 1)) * pw;
    const sy = (y) => py + ph - ((tr(y) - ay0) / (ay1 - ay0 || 1)) * ph;
    const syRaw = (t) => py + ph - ((t - ay0) / (ay1 - ay0 || 1)) * ph;
    out.push(`<g class="panel">`);
    if (p.title) out.push(`<text x="${px + pw / 2}" y="${py - 8}" text-anchor="middle" font-size="13">${esc(p.title)}</text>`);
    // grid and ticks
    for (const t of yt) {
      const y = syRaw(t).toFixed(1);
      out.push(`<line x1="${px}" y1="${y}" x2="${px + pw}" y2="${y}" stroke="#e5e5e5"/>`);
      out.push(`<line x1="${px - 4}" y1="${y}" x2="${px}" y2="${y}" stroke="black"/>`);
      out.push(`<text x="${px - 7}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(logY ? fmtLogTick(t) : fmtTick(t))}</text>`);
    }
    for (const t of xt) {
      const x = sx(t).toFixed(1);
      out.push(`<line x1="${x}" y1="${py}" x2="${x}" y2="${py + ph}" stroke="#f0f0f0"/>`);
      out.push(`<line x1="${x}" y1="${py + ph}" x2="${x}" y2="${py + ph + 4}" stroke="black"/>`);
      out.push(`<text x="${x}" y="${py + ph + 17}" text-anchor="middle">${esc(fmtTick(t))}</text>`);
    }
    out.push(`<rect x="${px}" y="${py}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
    if (p.xlabel) out.push(`<text x="${px + pw / 2}" y="${py + ph + 36}" text-anchor="middle">${esc(p.xlabel)}</text>`);
    if (p.ylabel) {
      const cy = py + ph / 2;
      out.push(`<text x="${px - 54}" y="${cy}" text-anchor="middle" transform="rotate(-90 ${px - 54} ${cy})">${esc(p.ylabel + (logY ? ' (log)' : ''))}</text>`);
    }
    // series
    series.forEach((s) => {
      const pts = [];
      s.xs.forEach((x, i) => {
        const y = s.ys[i];
        if (!Number.isFinite(x) || !Number.isFinite(y) || (logY && !(y > 0))) return;
        pts.push(`${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      });
      const dash = s.dash ? ` stroke-dasharray="${esc(s.dash)}"` : '';
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.6"${dash} points="${pts.join(' ')}"><title>${esc(s.name ?? '')}</title></polyline>`);
    });
    // legend
    series.forEach((s, si) => {
      const lx = px + pw + 14;
      const ly = py + 10 + si * 18;
      const dash = s.dash ? ` stroke-dasharray="${esc(s.dash)}"` : '';
      out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
      out.push(`<text x="${lx + 28}" y="${ly}" dominant-baseline="middle">${esc(s.name ?? `series ${si + 1}`)}</text>`);
    });
    out.push(`</g>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes renderPlot(spec) to `file`. */
function writePlot(file, spec) {
  fs.writeFileSync(file, renderPlot(spec));
}

module.exports = { renderPlot, writePlot, niceTicks };
