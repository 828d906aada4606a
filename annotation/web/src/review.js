// Review: the project's reader heatmap and item list, and the per-item discrepancy view where every
// reader's labels and ROIs sit side by side. Images here are drawn on a plain canvas from the raw
// 16-bit frame the server sends, with window/level computed in JS (under 1 ms per 512x512 update).
import { get } from './api.js';
import { h, mount } from './dom.js';

function heat(v) {
  if (v === null || v === undefined) return '#eee';
  const r = Math.round(255 * v);
  const b = Math.round(255 * (1 - v));
  return `rgb(${r},${Math.round(90 + 60 * (1 - Math.abs(v - 0.5) * 2))},${b})`;
}

function heatTable(testid, rowNames, colNames, values, fmt) {
  return h('table', { class: 'heatmap', testid },
    h('tr', {}, h('th', {}, ''), colNames.map((c) => h('th', {}, c))),
    rowNames.map((r, i) => h('tr', {}, h('th', {}, r), colNames.map((_, j) => {
      const v = values[i][j];
      return h('td', { style: { background: heat(v) }, title: v === null ? 'no data' : String(v) }, v === null ? '–' : fmt(v));
    }))));
}

export async function reviewProject(pid) {
  const [project, stats, items] = await Promise.all([
    get(`/api/projects/${pid}`), get(`/api/projects/${pid}/statistics`), get(`/api/projects/${pid}/items`),
  ]);
  const pct = (v) => `${Math.round(v * 100)}%`;
  mount(h('div', { class: 'page' },
    h('h1', {}, `Review · ${project.name}`),
    h('h2', {}, 'Positive rate by label and reader'),
    stats.readers.length ? heatTable('heatmap-labels', stats.labels, stats.readers, stats.positive_rate, pct) : h('p', {}, 'No readings yet.'),
    h('h2', {}, 'Agreement between readers (share of equal answers on shared items)'),
    stats.readers.length ? heatTable('heatmap-agreement', stats.readers, stats.readers, stats.pairwise_agreement, pct) : '',
    Object.keys(stats.gold_accuracy).length ? h('p', {}, 'Gold accuracy: ', Object.entries(stats.gold_accuracy).map(([k, v]) => `${k} ${pct(v)}`).join(', ')) : '',
    h('h2', {}, 'Items'),
    h('table', { class: 'grid', testid: 'review-items' },
      h('tr', {}, h('th', {}, 'Item'), h('th', {}, 'Round'), h('th', {}, 'Readings'), h('th', {}, 'Complete'), h('th', {}, '')),
      items.map((it) => h('tr', {}, h('td', {}, it.external_id), h('td', {}, it.round), h('td', {}, it.submitted),
        h('td', {}, it.complete ? 'yes' : 'no'),
        h('td', {}, h('a', { href: `#/review/${pid}/item/${it.id}`, testid: `review-item-${it.id}` }, 'Compare readers')))))));
}

async function loadFrame(itemId, instance, frame) {
  const res = await fetch(`/api/items/${itemId}/instances/${instance}/frames/${frame}`, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`frame ${res.status}`);
  const buf = await res.arrayBuffer();
  const dtype = res.headers.get('x-dtype');
  const rows = Number(res.headers.get('x-rows'));
  const cols = Number(res.headers.get('x-columns'));
  const Ctor = { '<i2': Int16Array, '<u2': Uint16Array, '|u1': Uint8Array, '<u1': Uint8Array, '|i1': Int8Array }[dtype] || Uint16Array;
  const slope = Number(res.headers.get('x-rescale-slope') || 1);
  const intercept = Number(res.headers.get('x-rescale-intercept') || 0);
  const wc = res.headers.get('x-window-center');
  const ww = res.headers.get('x-window-width');
  return { pixels: new Ctor(buf), rows, cols, slope, intercept, wc: wc ? Number(wc) : null, ww: ww ? Number(ww) : null };
}

function draw(canvas, img, voi, rois, colors) {
  canvas.width = img.cols;
  canvas.height = img.rows;
  const ctx = canvas.getContext('2d');
  const out = ctx.createImageData(img.cols, img.rows);
  const lo = voi.wc - voi.ww / 2;
  const scale = 255 / Math.max(1, voi.ww);
  const { pixels, slope, intercept } = img;
  for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
    const v = Math.max(0, Math.min(255, ((pixels[i] * slope + intercept) - lo) * scale));
    out.data[j] = out.data[j + 1] = out.data[j + 2] = v;
    out.data[j + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  ctx.lineWidth = Math.max(1, img.cols / 256);
  for (const roi of rois) {
    ctx.strokeStyle = colors[roi.label] || '#ff0';
    ctx.beginPath();
    if (roi.kind === 'box') {
      const [[x0, y0], [x1, y1]] = roi.points;
      ctx.rect(x0, y0, x1 - x0, y1 - y0);
    } else {
      roi.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
    }
    ctx.stroke();
  }
}

export async function reviewItem(pid, itemId) {
  const data = await get(`/api/items/${itemId}/review`);
  const labels = data.schema_version?.definition.labels || [];
  const colors = Object.fromEntries(labels.map((l) => [l.id, l.color]));
  const names = Object.fromEntries(labels.map((l) => [l.id, l.name]));
  const frames = [];
  data.item.instances.forEach((inst) => { for (let f = 0; f < inst.frames; f++) frames.push([inst.position, f]); });
  let index = 0;
  const firstWithRoi = data.readings.flatMap((r) => r.rois)[0];
  if (firstWithRoi) index = Math.max(0, frames.findIndex(([i, f]) => i === firstWithRoi.instance && f === firstWithRoi.frame));
  const readings = data.readings.filter((r) => r.kind === 'annotate' || r.decision === 'correct');
  const canvases = readings.map(() => h('canvas', { class: 'review-canvas' }));
  const sliceText = h('span', { testid: 'review-slice' });
  let voi = null;
  let img = null;
  async function show() {
    const [inst, f] = frames[index];
    img = await loadFrame(itemId, inst, f);
    if (!voi) voi = img.wc !== null ? { wc: img.wc, ww: img.ww } : { wc: 2048, ww: 4096 };
    readings.forEach((r, k) => draw(canvases[k], img, voi, r.rois.filter((roi) => roi.instance === inst && roi.frame === f), colors));
    sliceText.textContent = `image ${index + 1}/${frames.length}`;
  }
  const disagree = new Set(data.disagreements);
  const panels = readings.map((r, k) => h('div', { class: 'reader-panel', testid: 'reader-panel' },
    h('h3', {}, `${r.reader} `, h('span', { class: 'muted' }, `${r.level || ''} · ${r.status}${r.decision ? ` · ${r.decision}` : ''}`)),
    canvases[k],
    h('ul', {}, r.labels.map((l) => h('li', { class: disagree.has(l.label) ? 'disagree' : '' },
      `${names[l.label] || l.label}: ${l.value ? 'yes' : 'no'} (${l.confidence}%)`)),
      r.rois.map((roi) => h('li', {}, `${roi.kind} ${names[roi.label] || roi.label} · image ${roi.instance + 1}`)),
      r.skip_reason ? h('li', {}, `skipped: ${r.skip_reason}`) : ''),
    h('p', { class: 'muted' }, r.wall_ms !== null ? `time ${(r.wall_ms / 1000).toFixed(1)} s, active ${((r.active_ms || 0) / 1000).toFixed(1)} s` : '')));
  const wl = (dw, dc) => { voi = { ww: Math.max(1, voi.ww * dw), wc: voi.wc + dc * voi.ww }; show(); };
  mount(h('div', { class: 'page' },
    h('p', {}, h('a', { href: `#/review/${pid}` }, '← project review')),
    h('h1', {}, `Discrepancy view · item ${data.item.external_id}`),
    h('p', { testid: 'disagreements' }, data.disagreements.length ? `Readers disagree on: ${data.disagreements.map((d) => names[d] || d).join(', ')}` : 'Readers agree on every label.'),
    h('div', { class: 'toolbar' },
      h('button', { onclick: () => { index = Math.max(0, index - 1); show(); } }, '▲'),
      h('button', { onclick: () => { index = Math.min(frames.length - 1, index + 1); show(); } }, '▼'), sliceText,
      h('button', { onclick: () => wl(0.8, 0) }, 'narrower'), h('button', { onclick: () => wl(1.25, 0) }, 'wider'),
      h('button', { onclick: () => wl(1, -0.1) }, 'brighter'), h('button', { onclick: () => wl(1, 0.1) }, 'darker')),
    h('div', { class: 'side-by-side', testid: 'discrepancy' }, panels.length ? panels : h('p', {}, 'No readings yet.'))));
  if (frames.length) await show();
}
