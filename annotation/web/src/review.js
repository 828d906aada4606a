// Review: the project's reader heatmap and item list, and the per-item discrepancy view where every
// reader's labels and ROIs sit side by side. Images here are drawn on a plain canvas from the raw
// 16-bit frame the server sends, with window/level computed in JS (under 1 ms per 512x512 update).
import { get } from './api.js';
import { paintMask } from './segmentation.js';
import { h, mount } from './dom.js';

// Viridis (matplotlib's perceptually uniform sequential map), 9 stops, interpolated linearly:
// lightness rises with the value, so 100 % reads as the brightest, never as a warning colour.
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
  [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];

export function viridis(v) {
  const x = Math.max(0, Math.min(1, v)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const t = x - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * t));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function heat(v) {
  return v === null || v === undefined ? '#eee' : viridis(v);
}

function legend(testid) {
  const stops = [0, 0.25, 0.5, 0.75, 1];
  return h('div', { class: 'legend', testid },
    h('div', { class: 'legend-bar', style: { background: `linear-gradient(to right, ${stops.map((v) => `${viridis(v)} ${v * 100}%`).join(', ')})` } }),
    h('div', { class: 'legend-ticks' }, stops.map((v) => h('span', {}, `${v * 100}%`))),
    h('div', { class: 'muted' }, 'grey: no shared readings'));
}

function heatTable(testid, rowNames, colNames, values, fmt) {
  return h('table', { class: 'heatmap', testid },
    h('tr', {}, h('th', {}, ''), colNames.map((c) => h('th', {}, c))),
    rowNames.map((r, i) => h('tr', {}, h('th', {}, r), colNames.map((_, j) => {
      const v = values[i][j];
      return h('td', { style: { background: heat(v), color: v !== null && v > 0.6 ? '#111' : '#fff' },
        title: v === null ? 'no data' : String(v), 'data-value': v === null ? '' : v }, v === null ? '–' : fmt(v));
    }))));
}

function kappaTable(stats, names) {
  const f = (v) => (v === null || v === undefined ? '–' : v.toFixed(2));
  return h('table', { class: 'grid', testid: 'kappa' },
    h('tr', {}, h('th', {}, 'Label'), h('th', {}, 'Raw agreement'), h('th', {}, "Fleiss' κ"), h('th', {}, '95% CI'),
      h('th', {}, 'Items (readers each)')),
    stats.kappa.map((k) => h('tr', { testid: `kappa-${k.label}` },
      h('td', {}, names[k.label] || k.label),
      h('td', {}, k.raw_agreement === null ? '–' : `${Math.round(k.raw_agreement * 100)}%`),
      h('td', { testid: `kappa-${k.label}-value` }, k.kappa === null ? (k.items ? 'undefined (all answers equal)' : '–') : f(k.kappa)),
      h('td', {}, k.ci_low === null ? '–' : `${f(k.ci_low)} to ${f(k.ci_high)}`),
      h('td', {}, k.items ? `${k.items} (${k.readers})` : 'too few'))));
}

export async function reviewProject(pid) {
  const [project, stats, items, schema] = await Promise.all([
    get(`/api/projects/${pid}`), get(`/api/projects/${pid}/statistics`), get(`/api/projects/${pid}/items`),
    get(`/api/projects/${pid}/schema`).catch(() => null),
  ]);
  const pct = (v) => `${Math.round(v * 100)}%`;
  const names = Object.fromEntries((schema?.definition?.labels || []).map((l) => [l.id, l.name]));
  const byItem = Object.fromEntries(stats.items.map((d) => [d.item_id, d]));
  const filter = h('select', { testid: 'disagreement-filter', onchange: () => renderItems() },
    h('option', { value: 'all' }, 'all items'), h('option', { value: 'any' }, 'with disagreement'),
    h('option', { value: 'labels' }, 'label disagreement'), h('option', { value: 'regions' }, 'region disagreement'),
    h('option', { value: 'none' }, 'readers agree'));
  const sort = h('select', { testid: 'disagreement-sort', onchange: () => renderItems() },
    h('option', { value: 'item' }, 'item order'), h('option', { value: 'disagreement' }, 'most disagreement first'));
  const table = h('table', { class: 'grid', testid: 'review-items' });
  function renderItems() {
    const d = (it) => byItem[it.id] || { disagreement: 0, label_disagreements: [], roi_disagreements: 0, roi_missing: 0, roi_misplaced: 0 };
    const keep = {
      all: () => true, any: (it) => d(it).disagreement > 0, labels: (it) => d(it).label_disagreements.length > 0,
      regions: (it) => d(it).roi_disagreements > 0, none: (it) => d(it).disagreement === 0,
    }[filter.value];
    let rows = items.filter(keep);
    if (sort.value === 'disagreement') rows = [...rows].sort((a, b) => d(b).disagreement - d(a).disagreement || a.id - b.id);
    table.replaceChildren(
      h('tr', {}, h('th', {}, 'Item'), h('th', {}, 'Round'), h('th', {}, 'Readings'), h('th', {}, 'Complete'),
        h('th', {}, 'Disagreement'), h('th', {}, '')),
      ...rows.map((it) => {
        const x = d(it);
        const what = [x.label_disagreements.length ? `labels: ${x.label_disagreements.map((l) => names[l] || l).join(', ')}` : '',
          x.roi_missing ? `${x.roi_missing} region${x.roi_missing > 1 ? 's' : ''} missing` : '',
          x.roi_misplaced ? `${x.roi_misplaced} misplaced (IoU < ${stats.iou_threshold})` : ''].filter(Boolean).join('; ');
        return h('tr', { testid: 'review-item-row', 'data-item': it.id, 'data-disagreement': x.disagreement },
          h('td', {}, it.external_id), h('td', {}, it.round), h('td', {}, it.submitted), h('td', {}, it.complete ? 'yes' : 'no'),
          h('td', { class: x.disagreement ? 'disagree' : '', testid: `disagreement-${it.id}` }, x.disagreement ? `${x.disagreement} · ${what}` : '0'),
          h('td', {}, h('a', { href: `#/review/${pid}/item/${it.id}`, testid: `review-item-${it.id}` }, 'Compare readers')));
      }));
  }
  renderItems();
  mount(h('div', { class: 'page' },
    h('h1', {}, `Review · ${project.name}`),
    h('h2', {}, 'Agreement per label'),
    stats.kappa.length ? kappaTable(stats, names) : h('p', {}, 'No labels yet.'),
    h('h2', {}, 'Positive rate by label and reader'),
    stats.readers.length ? [heatTable('heatmap-labels', stats.labels.map((l) => names[l] || l), stats.readers, stats.positive_rate, pct), legend('legend-labels')] : h('p', {}, 'No readings yet.'),
    h('h2', {}, 'Agreement between readers (share of equal answers on shared items)'),
    stats.readers.length ? [heatTable('heatmap-agreement', stats.readers, stats.readers, stats.pairwise_agreement, pct), legend('legend-agreement')] : '',
    Object.keys(stats.gold_accuracy).length ? h('p', {}, 'Gold accuracy: ', Object.entries(stats.gold_accuracy).map(([k, v]) => `${k} ${pct(v)}`).join(', ')) : '',
    h('h2', {}, 'Items'),
    h('div', { class: 'row' }, 'Show ', filter, ' sorted by ', sort),
    table));
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
  const photometric = res.headers.get('x-photometric-interpretation') || 'MONOCHROME2';
  const samples = Number(res.headers.get('x-samples-per-pixel') || 1);
  return { pixels: new Ctor(buf), rows, cols, slope, intercept, photometric, samples,
    wc: wc ? Number(wc) : null, ww: ww ? Number(ww) : null };
}

// Linear VOI (DICOM's LINEAR_EXACT: lower = wc - ww/2 maps to 0, upper to 255, as Cornerstone does);
// MONOCHROME1 is inverted after the window (low values bright), RGB is windowed per channel.
export function render(img, voi) {
  const out = new ImageData(img.cols, img.rows);
  const lo = voi.wc - voi.ww / 2;
  const scale = 255 / Math.max(1e-6, voi.ww);
  const { pixels, slope, intercept } = img;
  const d = out.data;
  if (img.samples === 3) {
    for (let i = 0, j = 0; i < pixels.length; i += 3, j += 4) {
      d[j] = (pixels[i] - lo) * scale;
      d[j + 1] = (pixels[i + 1] - lo) * scale;
      d[j + 2] = (pixels[i + 2] - lo) * scale;
      d[j + 3] = 255;
    }
    return out;
  }
  const invert = img.photometric === 'MONOCHROME1';
  for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
    let v = Math.max(0, Math.min(255, ((pixels[i] * slope + intercept) - lo) * scale));
    if (invert) v = 255 - v;
    d[j] = d[j + 1] = d[j + 2] = v;
    d[j + 3] = 255;
  }
  return out;
}

function draw(canvas, img, voi, rois, colors) {
  canvas.width = img.cols;
  canvas.height = img.rows;
  canvas.dataset.photometric = img.photometric;
  canvas.dataset.wc = voi.wc;
  canvas.dataset.ww = voi.ww;
  const ctx = canvas.getContext('2d');
  ctx.putImageData(render(img, voi), 0, 0);
  ctx.lineWidth = Math.max(1, img.cols / 256);
  for (const roi of rois) {
    if (roi.kind === 'mask') { // painted pixels, in the label's colour
      paintMask(ctx, roi, colors[roi.label] || '#ff0');
      continue;
    }
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
    if (!voi) voi = { wc: img.wc, ww: img.ww };
    readings.forEach((r, k) => draw(canvases[k], img, voi, r.rois.filter((roi) => roi.instance === inst && roi.frame === f), colors));
    sliceText.textContent = `image ${index + 1}/${frames.length}`;
    sliceText.dataset.index = index;
    thumbs.forEach((t, k) => t.classList.toggle('on', k === index));
  }
  // Thumbnails: every image of the item (first 60) at full resolution, scaled down by CSS; each in its own window.
  const thumbs = frames.slice(0, 60).map(([inst, f], k) => h('canvas', {
    class: 'thumb', testid: 'thumb', title: `image ${k + 1}`,
    onclick: () => { index = k; show(); },
  }));
  async function drawThumbs() {
    for (let k = 0; k < thumbs.length; k++) {
      const [inst, f] = frames[k];
      const t = await loadFrame(itemId, inst, f);
      draw(thumbs[k], t, { wc: t.wc, ww: t.ww }, [], colors);
      thumbs[k].dataset.instance = inst;
      thumbs[k].dataset.frame = f;
    }
    thumbStrip.dataset.loaded = 'true';
  }
  const thumbStrip = h('div', { class: 'thumbs', testid: 'thumbs' }, thumbs);
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
    h('h1', { testid: 'review-title' }, `Discrepancy view · item ${data.item.external_id}`),
    h('p', { testid: 'disagreements' }, data.disagreements.length ? `Readers disagree on: ${data.disagreements.map((d) => names[d] || d).join(', ')}` : 'Readers agree on every label.'),
    data.roi_disagreements.length ? h('ul', { testid: 'roi-disagreements' }, data.roi_disagreements.map((d) => h('li', { class: 'disagree' },
      d.kind === 'missing' ? `${names[d.label] || d.label}: drawn by ${d.drawn_by}, missing for ${d.missing_for} (image ${d.instance + 1})`
        : `${names[d.label] || d.label}: ${d.readers.join(' and ')} overlap only ${Math.round(d.iou * 100)}% (IoU < ${data.iou_threshold}, image ${d.instance + 1})`)))
      : h('p', { testid: 'roi-disagreements' }, 'Regions agree.'),
    h('div', { class: 'toolbar' },
      h('button', { onclick: () => { index = Math.max(0, index - 1); show(); } }, '▲'),
      h('button', { onclick: () => { index = Math.min(frames.length - 1, index + 1); show(); } }, '▼'), sliceText,
      h('button', { onclick: () => wl(0.8, 0) }, 'narrower'), h('button', { onclick: () => wl(1.25, 0) }, 'wider'),
      h('button', { onclick: () => wl(1, -0.1) }, 'brighter'), h('button', { onclick: () => wl(1, 0.1) }, 'darker')),
    (data.item.geometry_warnings || []).length ? h('p', { class: 'geometry-warning', testid: 'geometry-warnings' }, data.item.geometry_warnings.join('; ')) : '',
    thumbStrip,
    h('div', { class: 'side-by-side', testid: 'discrepancy' }, panels.length ? panels : h('p', {}, 'No readings yet.'))));
  if (frames.length) await show();
  const discrepancy = document.querySelector('[data-testid=discrepancy]');
  if (discrepancy) discrepancy.dataset.loaded = 'true';
  drawThumbs();
}
