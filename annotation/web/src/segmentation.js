// Mask labels: a brush (adjustable radius, erase mode) and a polygon tool paint one mask per label
// and slice (or frame) in image pixels. The masks are drawn on a canvas over the viewport in the
// label's colour with its name, and submitted run-length encoded (annotation/masks.py: row-major
// runs alternating background, foreground, starting with background).
// Pixel (c, r) covers [c, c+1) x [r, r+1) in Cornerstone's image coordinates, so its centre is
// (c + .5, r + .5): the brush marks pixels whose centre lies within the radius of the stroke, the
// polygon those whose centre is inside it (even-odd rule, as the service rasterises outlines).
import { Enums as csEnums, utilities as csUtils } from '@cornerstonejs/core';
import { h } from './dom.js';

const CLOSE_PX = 8; // a click this near the first vertex (screen pixels) closes the polygon
const ALPHA = 0.45;

function rgb(hex) {
  const n = parseInt((hex || '#ffcc00').slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function encodeRuns(mask) {
  const runs = [];
  let value = 0;
  let length = 0;
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i] ? 1 : 0;
    if (v === value) {
      length += 1;
    } else {
      runs.push(length);
      value = v;
      length = 1;
    }
  }
  runs.push(length);
  return runs;
}

export function decodeRuns(runs, rows, columns) {
  const mask = new Uint8Array(rows * columns);
  let at = 0;
  runs.forEach((n, i) => {
    if (i % 2) mask.fill(1, at, at + n);
    at += n;
  });
  return mask;
}

// A stored mask ROI on a 2-D context whose units are image pixels (the review view's canvases).
export function paintMask(ctx, roi, color) {
  const [r, g, b] = rgb(color);
  const data = decodeRuns(roi.rle, roi.rows, roi.columns);
  const img = new ImageData(roi.columns, roi.rows);
  data.forEach((v, i) => v && img.data.set([r, g, b, 255], i * 4));
  const tile = new OffscreenCanvas(roi.columns, roi.rows);
  tile.getContext('2d').putImageData(img, 0, 0);
  ctx.save();
  ctx.globalAlpha = ALPHA;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, 0, 0);
  ctx.restore();
}

export class Segmentation {
  // size(instance): {rows, columns}; onChange(): the reading re-lists regions; onWheel(delta): scroll.
  constructor({ size, onChange, onWheel }) {
    Object.assign(this, { size, onChange, onWheel });
    this.masks = new Map(); // `${labelId}|${imageIndex}` -> {label, index, rows, columns, data: Uint8Array}
    this.label = null;
    this.tool = null; // 'brush' | 'polygon' | null (inactive: events go to Cornerstone)
    this.erase = false;
    this.radius = 8;
    this.vertices = [];
    this.off = [];
  }

  // viewport: the Cornerstone stack viewport on `element`; imageIds/where: its slices and their (instance, frame).
  attach({ viewport, element, imageIds, where }) {
    Object.assign(this, { viewport, element, imageIds, where });
    this.canvas = h('canvas', { class: 'seg-overlay', testid: 'seg-overlay' });
    Object.assign(this.canvas.style, { position: 'absolute', inset: '0', width: '100%', height: '100%', pointerEvents: 'none' });
    element.parentNode.append(this.canvas);
    const on = (target, ev, fn, opts) => {
      target.addEventListener(ev, fn, opts);
      this.off.push(() => target.removeEventListener(ev, fn, opts));
    };
    on(element, csEnums.Events.IMAGE_RENDERED, () => this.render());
    on(this.canvas, 'pointerdown', (e) => this.down(e));
    on(this.canvas, 'pointermove', (e) => this.move(e));
    on(this.canvas, 'pointerup', (e) => this.up(e));
    on(this.canvas, 'dblclick', (e) => { e.preventDefault(); this.closePolygon(); });
    on(this.canvas, 'wheel', (e) => { e.preventDefault(); this.onWheel(Math.sign(e.deltaY)); }, { passive: false });
  }

  destroy() {
    this.off.forEach((fn) => fn());
    this.off = [];
    this.canvas?.remove();
  }

  // The panel's controls (brush / polygon, erase, radius in image pixels) and the list of painted slices.
  controls() {
    this.brushBtn = h('button', { testid: 'seg-brush', title: 'paint (G)', onclick: () => this.setTool('brush') }, '◍ Brush');
    this.polygonBtn = h('button', { testid: 'seg-polygon', title: 'click vertices; click the first one, double-click or Enter closes (L)', onclick: () => this.setTool('polygon') }, '⬠ Polygon');
    this.eraseBtn = h('button', { testid: 'seg-erase', title: 'erase instead of paint (E)', onclick: () => this.setErase(!this.erase) }, 'Erase');
    this.radiusInput = h('input', { type: 'range', min: 1, max: 60, value: this.radius, testid: 'seg-radius', 'aria-label': 'Brush radius',
      oninput: (e) => this.setRadius(Number(e.target.value)) });
    this.radiusText = h('span', { testid: 'seg-radius-text' }, `${this.radius} px`);
    this.list = h('ul', { class: 'roi-list', testid: 'mask-list' });
    this.panel = h('div', { class: 'seg-controls', testid: 'seg-controls', style: { display: 'none' } },
      h('div', { class: 'row' }, this.brushBtn, this.polygonBtn, this.eraseBtn),
      h('label', { class: 'row' }, 'Radius ([ ])', this.radiusInput, this.radiusText));
    return h('div', { class: 'seg' }, this.panel, this.list);
  }

  start(label) {
    this.label = label;
    this.panel.style.display = '';
    this.setTool(this.tool || 'brush');
  }

  stop() {
    this.tool = null;
    this.label = null;
    this.vertices = [];
    if (this.panel) this.panel.style.display = 'none';
    if (!this.canvas) return;
    this.canvas.style.pointerEvents = 'none';
    this.canvas.style.cursor = '';
    this.render();
  }

  setTool(tool) {
    this.tool = tool;
    this.vertices = [];
    this.canvas.style.pointerEvents = 'auto';
    this.canvas.style.cursor = 'crosshair';
    this.brushBtn.classList.toggle('on', tool === 'brush');
    this.polygonBtn.classList.toggle('on', tool === 'polygon');
    this.render();
  }

  setErase(erase) {
    this.erase = erase;
    this.eraseBtn.classList.toggle('on', erase);
  }

  setRadius(r) {
    this.radius = Math.max(1, Math.min(60, Math.round(r)));
    this.radiusInput.value = this.radius;
    this.radiusText.textContent = `${this.radius} px`;
  }

  active() {
    return !!(this.tool && this.label);
  }

  // Keys while a mask label is chosen: G brush, L polygon, E erase, [ ] radius, Enter closes, Esc drops the polygon.
  key(k) {
    if (!this.active()) return false;
    const actions = { g: () => this.setTool('brush'), l: () => this.setTool('polygon'), e: () => this.setErase(!this.erase),
      '[': () => this.setRadius(this.radius - 1), ']': () => this.setRadius(this.radius + 1),
      enter: () => this.closePolygon(), escape: () => { this.vertices = []; this.render(); } };
    if (!actions[k]) return false;
    actions[k]();
    return true;
  }

  imageIndex() {
    return this.viewport.getCurrentImageIdIndex();
  }

  toImage(e) {
    const rect = this.canvas.getBoundingClientRect();
    const world = this.viewport.canvasToWorld([e.clientX - rect.left, e.clientY - rect.top]);
    return csUtils.worldToImageCoords(this.imageIds[this.imageIndex()], world);
  }

  maskFor(index, create) {
    const key = `${this.label.id}|${index}`;
    let m = this.masks.get(key);
    if (!m && create) {
      const { rows, columns } = this.size(this.where[index].instance);
      m = { label: this.label, index, rows, columns, data: new Uint8Array(rows * columns) };
      this.masks.set(key, m);
    }
    return m;
  }

  down(e) {
    if (!this.active() || e.button !== 0) return;
    e.preventDefault();
    const p = this.toImage(e);
    if (this.tool === 'brush') {
      this.canvas.setPointerCapture(e.pointerId);
      this.stroke = p;
      this.disk(p);
      this.render();
    } else if (this.tool === 'polygon') {
      const first = this.vertices[0];
      if (first && this.vertices.length >= 3 && this.screenDistance(first, p) <= CLOSE_PX) {
        this.closePolygon();
      } else {
        this.vertices.push(p);
        this.render();
      }
    }
  }

  move(e) {
    if (this.tool === 'brush' && this.stroke && (e.buttons & 1)) {
      const p = this.toImage(e);
      const [x0, y0] = this.stroke;
      const steps = Math.ceil(Math.hypot(p[0] - x0, p[1] - y0) / Math.max(0.25, this.radius / 4));
      for (let s = 1; s <= steps; s++) this.disk([x0 + ((p[0] - x0) * s) / steps, y0 + ((p[1] - y0) * s) / steps]);
      this.stroke = p;
      this.render();
    } else if (this.tool === 'polygon' && this.vertices.length) {
      this.hover = this.toImage(e);
      this.render();
    }
  }

  up() {
    if (this.stroke) {
      this.stroke = null;
      this.changed();
    }
  }

  screenDistance(a, b) {
    const imageId = this.imageIds[this.imageIndex()];
    const pa = this.viewport.worldToCanvas(csUtils.imageToWorldCoords(imageId, a));
    const pb = this.viewport.worldToCanvas(csUtils.imageToWorldCoords(imageId, b));
    return Math.hypot(pa[0] - pb[0], pa[1] - pb[1]);
  }

  disk([cx, cy]) {
    const m = this.maskFor(this.imageIndex(), !this.erase);
    if (!m) return;
    const r = this.radius;
    const value = this.erase ? 0 : 1;
    const c0 = Math.max(0, Math.floor(cx - r - 0.5));
    const c1 = Math.min(m.columns - 1, Math.ceil(cx + r - 0.5));
    const r0 = Math.max(0, Math.floor(cy - r - 0.5));
    const r1 = Math.min(m.rows - 1, Math.ceil(cy + r - 0.5));
    for (let y = r0; y <= r1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = c0; x <= c1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r * r) m.data[y * m.columns + x] = value;
      }
    }
  }

  closePolygon() {
    if (this.tool !== 'polygon' || this.vertices.length < 3) return;
    const m = this.maskFor(this.imageIndex(), !this.erase);
    const pts = this.vertices;
    this.vertices = [];
    this.hover = null;
    if (m) {
      const value = this.erase ? 0 : 1;
      const ys = pts.map((p) => p[1]);
      const r0 = Math.max(0, Math.floor(Math.min(...ys)));
      const r1 = Math.min(m.rows - 1, Math.ceil(Math.max(...ys)));
      for (let y = r0; y <= r1; y++) {
        const yc = y + 0.5;
        const xs = [];
        for (let i = 0; i < pts.length; i++) {
          const [ax, ay] = pts[i];
          const [bx, by] = pts[(i + 1) % pts.length];
          if ((ay > yc) !== (by > yc)) xs.push(ax + ((yc - ay) * (bx - ax)) / (by - ay));
        }
        xs.sort((a, b) => a - b);
        for (let k = 0; k + 1 < xs.length; k += 2) {
          // pixel centres x + .5 with xs[k] <= x + .5 < xs[k + 1]
          const from = Math.max(0, Math.ceil(xs[k] - 0.5));
          const to = Math.min(m.columns - 1, Math.ceil(xs[k + 1] - 0.5) - 1);
          for (let x = from; x <= to; x++) m.data[y * m.columns + x] = value;
        }
      }
    }
    this.changed();
    this.render();
  }

  changed() {
    for (const [key, m] of this.masks) if (!m.data.some((v) => v)) this.masks.delete(key);
    this.renderList();
    this.onChange();
  }

  remove(key) {
    this.masks.delete(key);
    this.changed();
    this.render();
  }

  // A reopened reading's mask (its slice index in this viewer), painted again so Submit keeps it.
  restore(roi, index, label) {
    if (roi.rows !== this.size(roi.instance)?.rows || roi.columns !== this.size(roi.instance)?.columns) return false;
    this.masks.set(`${label.id}|${index}`, { label, index, rows: roi.rows, columns: roi.columns, data: decodeRuns(roi.rle, roi.rows, roi.columns) });
    this.renderList();
    this.render();
    return true;
  }

  labelsDrawn() {
    return [...this.masks.values()].map((m) => m.label.id);
  }

  renderList() {
    const entries = [...this.masks.entries()].sort(([, a], [, b]) => a.index - b.index);
    this.list.replaceChildren(...entries.map(([key, m], i) => {
      const pixels = m.data.reduce((s, v) => s + v, 0);
      return h('li', { testid: 'mask-item', style: { borderLeft: `4px solid ${m.label.color || '#ffcc00'}`, paddingLeft: '.3rem' } },
        h('button', { class: 'link', testid: `mask-goto-${i}`, title: 'show this slice', onclick: () => this.goTo(m.index) },
          `◍ ${m.label.name} · image ${m.index + 1} · ${pixels} px`), ' ',
        h('button', { class: 'link', testid: `mask-delete-${i}`, onclick: () => this.remove(key) }, 'delete'));
    }));
  }

  async goTo(index) {
    await this.viewport.setImageIdIndex(index);
  }

  payload() {
    return [...this.masks.values()].filter((m) => m.data.some((v) => v)).map((m) => ({
      label: m.label.id, kind: 'mask', instance: this.where[m.index].instance, frame: this.where[m.index].frame,
      rows: m.rows, columns: m.columns, rle: encodeRuns(m.data),
    }));
  }

  render() {
    const canvas = this.canvas;
    if (!canvas) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr);
    const hgt = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== hgt) Object.assign(canvas, { width: w, height: hgt });
    const ctx = canvas.getContext('2d');
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const index = this.imageIndex();
    const imageId = this.imageIds[index];
    if (!imageId) return;
    let toCanvas;
    try {
      toCanvas = (p) => this.viewport.worldToCanvas(csUtils.imageToWorldCoords(imageId, p));
      toCanvas([0, 0]);
    } catch (e) {
      return; // not displayed yet
    }
    for (const m of this.masks.values()) {
      if (m.index !== index) continue;
      const [r, g, b] = rgb(m.label.color);
      const img = new ImageData(m.columns, m.rows);
      let minX = Infinity;
      let minY = Infinity;
      for (let i = 0; i < m.data.length; i++) {
        if (!m.data[i]) continue;
        img.data.set([r, g, b, 255 * ALPHA], i * 4);
        const x = i % m.columns;
        const y = (i - x) / m.columns;
        if (y < minY || (y === minY && x < minX)) [minX, minY] = [x, y];
      }
      const tile = new OffscreenCanvas(m.columns, m.rows);
      tile.getContext('2d').putImageData(img, 0, 0);
      const o = toCanvas([0, 0]);
      const ex = toCanvas([1, 0]);
      const ey = toCanvas([0, 1]);
      ctx.setTransform(dpr * (ex[0] - o[0]), dpr * (ex[1] - o[1]), dpr * (ey[0] - o[0]), dpr * (ey[1] - o[1]), dpr * o[0], dpr * o[1]);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(tile, 0, 0);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      if (minY !== Infinity) {
        // the label's name beside the mask, in its colour (issue 17 point 7)
        const at = toCanvas([minX, minY]);
        ctx.font = '12px system-ui, sans-serif';
        ctx.fillStyle = m.label.color || '#ffcc00';
        ctx.fillText(m.label.name, at[0], Math.max(12, at[1] - 4));
      }
    }
    if (this.tool === 'polygon' && this.vertices.length && this.label) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.strokeStyle = this.label.color || '#ffcc00';
      ctx.lineWidth = 1.5;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      [...this.vertices, ...(this.hover ? [this.hover] : [])].map(toCanvas).forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    canvas.dataset.rendered = String(index);
  }
}
