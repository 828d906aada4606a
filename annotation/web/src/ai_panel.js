// The AI panel (issue 18): the model's probability per label, a heatmap overlay per label (toggle and
// opacity), suggested boxes in the label's colour that the reader accepts, edits (drag a corner) or
// rejects. Blind first: nothing of the model is shown until the reader answered every label once; that
// unaided answer goes to the server before the reveal. In validation projects every output is rated,
// with a reason to reject or correct. The overlay is one canvas over the viewport, redrawn on every render.
// An accepted or edited box becomes one of the reading's regions of the finding's box label (regionLabel),
// so exports, agreement and consensus see it; the server checks that it is there (annotation/assist.py).
import { Enums as csEnums, utilities as csUtils } from '@cornerstonejs/core';
import { annotation as annotationApi } from '@cornerstonejs/tools';
import { get, post } from './api.js';
import { h, toast } from './dom.js';

const GRAB_PX = 8; // how near a corner (screen pixels) a drag picks it up
const NO_BOX_LABEL = 'suggestion noted, no box label in this project';

// The box label that outlines a finding: `<finding>_box`, else the one box label named after the finding
// ('Nodule region' for 'Nodule'); the same rule as annotation/assist.py region_label.
export function regionLabel(labels, finding) {
  const boxes = labels.filter((l) => l.kind === 'box');
  const byId = boxes.find((l) => l.id === `${finding}_box`);
  if (byId) return byId;
  const named = (labels.find((l) => l.id === finding && l.kind === 'boolean')?.name || '').trim().toLowerCase();
  const byName = boxes.filter((l) => named && `${l.name.trim().toLowerCase()} `.startsWith(`${named} `));
  return byName.length === 1 ? byName[0] : null;
}

// heat in [0, 1] -> RGBA (transparent where cold, red to yellow where hot); opacity applies on top
function colourise(grey) {
  const c = document.createElement('canvas');
  c.width = grey.width;
  c.height = grey.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(grey, 0, 0);
  const img = ctx.getImageData(0, 0, c.width, c.height);
  for (let i = 0; i < img.data.length; i += 4) {
    const v = img.data[i];
    img.data[i] = 255;
    img.data[i + 1] = v;
    img.data[i + 2] = 0;
    img.data[i + 3] = v;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

export class AiPanel {
  constructor(reading) {
    this.r = reading;
    this.pred = null;
    this.heat = {}; // label -> {on, opacity, maps: [{instance_position, frame, canvas}]}
    this.boxes = []; // [{label, score, original, box, action, reason}]
    this.calls = {}; // validation: label -> {action, reason}
    this.validation = reading.task.project_kind === 'validation';
    this.colours = Object.fromEntries(reading.schema.labels.map((l) => [l.id, l.color || '#ffcc00']));
    this.names = Object.fromEntries(reading.schema.labels.map((l) => [l.id, l.name]));
    this.el = h('section', { class: 'ai-panel', testid: 'ai-panel' });
    this.canvas = h('canvas', { class: 'ai-overlay', testid: 'ai-overlay' });
  }

  // Loads the item's suggestions; no panel when the model has none for this item.
  async load(slot, wrap) {
    try {
      this.pred = await get(`/api/items/${this.r.task.item.id}/predictions`);
    } catch (e) {
      toast(`AI suggestions could not be loaded: ${e.message}`, 'error');
      return false;
    }
    if (!this.pred.hidden && !this.pred.model) return false; // no model ran on this item
    slot.append(this.el);
    wrap.append(this.canvas);
    const el = this.r.element;
    this.r.listen(el, csEnums.Events.IMAGE_RENDERED, () => this.draw());
    const grab = (e) => this.grab(e); // capture: a corner drag never reaches the viewport's tools
    wrap.addEventListener('mousedown', grab, true);
    this.r.cleanup.push(() => wrap.removeEventListener('mousedown', grab, true));
    this.r.listen(window, 'mousemove', (e) => this.dragTo(e));
    this.r.listen(window, 'mouseup', () => {
      const b = this.dragging?.b;
      this.dragging = null;
      if (b) this.placeRegion(b).then(() => this.draw()); // the edited box becomes the region
    });
    if (this.pred.hidden) this.renderHidden();
    else await this.show(this.pred);
    return true;
  }

  answeredAll() {
    return this.r.schema.labels.filter((l) => l.kind === 'boolean')
      .every((l) => this.r.labels[l.id]?.value !== undefined && this.r.labels[l.id]?.confidence !== undefined);
  }

  labelsChanged() {
    if (this.revealBtn) this.revealBtn.disabled = !this.answeredAll();
  }

  renderHidden() {
    this.revealBtn = h('button', { testid: 'ai-reveal', disabled: true, onclick: () => this.reveal() }, 'Show the model\'s suggestions');
    this.el.replaceChildren(h('h3', {}, 'AI suggestions'),
      h('p', { class: 'muted', testid: 'ai-hidden' }, 'Blind first: answer every label once, then the model\'s suggestions are shown (your first answer is kept).'),
      this.revealBtn);
    this.labelsChanged();
  }

  async reveal() {
    const labels = Object.entries(this.r.labels).map(([label, v]) => ({ label, value: v.value, confidence: v.confidence }));
    try {
      await this.show(await post(`/api/tasks/${this.r.task.id}/unaided`, { labels }));
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  async show(pred) {
    this.pred = pred;
    this.revealBtn = null;
    for (const m of pred.heatmaps) {
      const img = new Image();
      img.src = `data:image/png;base64,${m.png_base64}`;
      await img.decode();
      const entry = this.heat[m.label] || (this.heat[m.label] = { on: false, opacity: 0.5, maps: [] });
      entry.maps.push({ ...m, canvas: colourise(img) });
    }
    this.boxes = pred.boxes.map((b) => ({ ...b, original: [b.x0, b.y0, b.x1, b.y1], box: [b.x0, b.y0, b.x1, b.y1], action: null,
      reason: '', region: regionLabel(this.r.schema.labels, b.label), ann: null }));
    const rows = Object.entries(pred.probabilities).map(([label, p]) => this.labelRow(label, p));
    const boxes = this.boxes.map((b, i) => this.boxRow(b, i));
    this.el.replaceChildren(h('h3', {}, 'AI suggestions'),
      h('p', { class: 'muted', testid: 'ai-model' }, `${pred.model.name} ${pred.model.version} · a suggestion, not a diagnosis`),
      h('div', { testid: 'ai-labels' }, rows),
      ...(boxes.length ? [h('h4', {}, 'Suggested regions'), h('div', { testid: 'ai-boxes' }, boxes)] : []));
    await this.resume();
    this.draw();
  }

  reasonInput(target, testid) {
    if (!this.validation) return '';
    target.reasonEl = h('input', { testid, placeholder: 'Reason (to reject or correct)', maxlength: 2000,
      oninput: (e) => { target.reason = e.target.value; } });
    return target.reasonEl;
  }

  // A reopened reading: what the reader did with each suggestion before is shown again, and an accepted or
  // edited box is linked to its region the viewer restored (so it is not placed twice).
  async resume() {
    const prev = this.r.task.annotation?.assist;
    const model = this.pred?.model;
    if (!prev?.suggestions || this.r.task.status !== 'assigned' || !model
      || prev.model?.name !== model.name || prev.model?.version !== model.version) return;
    const free = new Set(this.r.rois().map((a) => a.annotationUID));
    const mark = (target, s) => {
      target.action = s.action;
      target.reason = s.reason || '';
      if (target.reasonEl) target.reasonEl.value = target.reason;
      target.buttons?.forEach((btn) => btn.classList.toggle('on', btn.dataset.action === s.action));
    };
    for (const s of prev.suggestions) {
      if (s.box_index === null || s.box_index === undefined) {
        if (this.calls[s.label]) mark(this.calls[s.label], s);
        continue;
      }
      const b = this.boxes[s.box_index];
      if (!b || b.label !== s.label) continue;
      mark(b, s);
      if (s.action === 'reject' || !s.box) continue;
      b.box = [...s.box];
      const uid = b.region && [...free].find((id) => this.r.roiLabel[id] === b.region.id
        && (this.boxOf(id) || []).every((v, k) => Math.abs(v - s.box[k]) <= 0.5));
      if (uid) {
        b.ann = uid;
        free.delete(uid);
      } else await this.placeRegion(b); // a reading from before suggestions became regions
      this.noteOf(b);
    }
  }

  actionButtons(target, prefix, actions, after) {
    const btns = actions.map(([id, text]) => h('button', { testid: `${prefix}-${id}`, onclick: () => {
      target.action = id;
      btns.forEach((b) => b.classList.toggle('on', b.dataset.action === id));
      after?.();
    }, 'data-action': id }, text));
    target.buttons = btns;
    return btns;
  }

  labelRow(label, p) {
    const heat = this.heat[label];
    const pct = Math.round(100 * p);
    const call = this.calls[label] = { action: null, reason: '' };
    return h('div', { class: 'ai-label', testid: `ai-label-${label}` },
      h('span', { class: 'swatch', style: { background: this.colours[label] } }),
      h('span', {}, this.names[label] || label),
      h('span', { class: 'ai-prob', testid: `ai-prob-${label}` }, `${pct}%`),
      h('span', { class: 'ai-bar' }, h('span', { style: { width: `${pct}%`, background: this.colours[label] } })),
      heat ? h('label', {}, h('input', { type: 'checkbox', testid: `ai-heat-${label}`, onchange: (e) => { heat.on = e.target.checked; this.draw(); } }), ' heatmap') : '',
      heat ? h('input', { type: 'range', min: 0, max: 100, value: Math.round(heat.opacity * 100), testid: `ai-opacity-${label}`,
        'aria-label': `Heatmap opacity ${label}`, oninput: (e) => { heat.opacity = e.target.value / 100; this.draw(); } }) : '',
      this.validation ? h('div', { class: 'ai-actions' },
        this.actionButtons(call, `ai-call-${label}`, [['accept', 'Agree'], ['edit', 'Correct'], ['reject', 'Reject']]),
        this.reasonInput(call, `ai-call-reason-${label}`)) : '');
  }

  boxRow(b, i) {
    b.note = h('span', { class: 'muted', testid: `ai-box-note-${i}` });
    return h('div', { class: 'ai-box', testid: `ai-box-${i}` },
      h('span', { class: 'swatch', style: { background: this.colours[b.label] } }),
      `${this.names[b.label] || b.label} ${Math.round(100 * b.score)}% (image ${b.instance_position + 1})`,
      h('div', { class: 'ai-actions' },
        this.actionButtons(b, `ai-box-${i}`, [['accept', 'Accept'], ['edit', 'Edit'], ['reject', 'Reject']], async () => {
          if (b.action !== 'edit') b.box = [...b.original];
          if (b.action === 'reject') this.dropRegion(b);
          else await this.placeRegion(b);
          this.noteOf(b);
          this.draw();
        }),
        this.reasonInput(b, `ai-box-reason-${i}`)), b.note);
  }

  noteOf(b) {
    if (!b.note) return;
    if (b.action && b.action !== 'reject' && !b.region) b.note.textContent = NO_BOX_LABEL;
    else if (b.ann) b.note.textContent = `→ your region: ${b.region.name}`;
    else b.note.textContent = '';
  }

  // The suggestion as a region of its box label at b.box (replacing the one placed before), drawn,
  // listed and deletable like a region the reader drew.
  async placeRegion(b) {
    if (!b.region) return;
    this.dropRegion(b);
    const [x0, y0, x1, y1] = b.box;
    const points = [[Math.min(x0, x1), Math.min(y0, y1)], [Math.max(x0, x1), Math.max(y0, y1)]];
    const ann = await this.r.restoreRoi({ label: b.region.id, kind: 'box', instance: b.instance_position, frame: b.frame, points });
    if (!ann) return void toast(`The suggested ${b.region.name} could not be placed on the image.`, 'error');
    b.ann = ann.annotationUID;
    this.noteOf(b);
  }

  dropRegion(b) {
    const uid = b.ann;
    if (!uid) return;
    b.ann = null;
    if (this.r.roiLabel[uid]) {
      annotationApi.state.removeAnnotation(uid);
      delete this.r.roiLabel[uid];
      this.r.viewport.render();
      this.r.renderRois();
    }
  }

  // The region's box in image pixels now (the reader may have moved its corners with the region tools),
  // rounded as the viewer's region payload is.
  regionBox(b) {
    return b.ann ? this.boxOf(b.ann) : null;
  }

  boxOf(uid) {
    const ann = annotationApi.state.getAnnotation(uid);
    if (!ann) return null;
    const imageId = ann.metadata.referencedImageId;
    const pts = ann.data.handles.points.map((p) => csUtils.worldToImageCoords(imageId, p).map((v) => Math.round(v * 100) / 100));
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }

  // Called whenever the viewer's regions change: a suggestion whose region the reader deleted is rejected.
  regionsChanged() {
    for (const b of this.boxes || []) {
      if (!b.ann || this.r.roiLabel[b.ann]) continue;
      b.ann = null;
      b.action = 'reject';
      b.buttons?.forEach((btn) => btn.classList.toggle('on', btn.dataset.action === 'reject'));
      this.noteOf(b);
      if (b.note) b.note.textContent = 'region deleted: suggestion rejected';
    }
    this.draw();
  }

  // Image pixel -> canvas pixel through the two image corners (stack viewports: no rotation here).
  frameOf() {
    const idx = this.r.viewport.getCurrentImageIdIndex();
    return this.r.where[idx] || { instance: 0, frame: 0 };
  }

  mapping() {
    const vp = this.r.viewport;
    const img = vp.getImageData();
    if (!img) return null;
    const [cols, rows] = img.dimensions;
    const a = vp.worldToCanvas(img.imageData.indexToWorld([0, 0, 0]));
    const b = vp.worldToCanvas(img.imageData.indexToWorld([cols, rows, 0]));
    // voxel centres: index 0 is the first pixel's centre, so its edge lies half a pixel before it
    const sx = (b[0] - a[0]) / cols;
    const sy = (b[1] - a[1]) / rows;
    const ox = a[0] - sx / 2;
    const oy = a[1] - sy / 2;
    return { cols, rows, toCanvas: (x, y) => [ox + x * sx, oy + y * sy], toImage: (cx, cy) => [(cx - ox) / sx, (cy - oy) / sy] };
  }

  draw() {
    const wrap = this.canvas.parentElement;
    if (!wrap || !this.pred || this.pred.hidden) return;
    const dpr = window.devicePixelRatio || 1;
    const w = wrap.clientWidth;
    const hgt = wrap.clientHeight;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(hgt * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(hgt * dpr);
    }
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const m = this.mapping();
    if (!m) return;
    const here = this.frameOf();
    const at = (o) => o.instance_position === here.instance && o.frame === here.frame;
    for (const heat of Object.values(this.heat)) {
      if (!heat.on) continue;
      for (const map of heat.maps.filter(at)) {
        const [x0, y0] = m.toCanvas(0, 0);
        const [x1, y1] = m.toCanvas(m.cols, m.rows);
        ctx.globalAlpha = heat.opacity;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(map.canvas, x0, y0, x1 - x0, y1 - y0);
      }
    }
    ctx.globalAlpha = 1;
    this.boxes.forEach((b) => {
      if (!at(b) || b.action === 'reject') return;
      if (b.ann && this.dragging?.b !== b) b.box = this.regionBox(b) || b.box; // moved with the region tools
      if (b.ann && b.action === 'accept') return; // drawn by the viewer as the reader's region
      const [x0, y0] = m.toCanvas(b.box[0], b.box[1]);
      const [x1, y1] = m.toCanvas(b.box[2], b.box[3]);
      ctx.strokeStyle = this.colours[b.label];
      ctx.lineWidth = b.action ? 2 : 1.5;
      ctx.setLineDash(b.action ? [] : [6, 4]); // dashed: not yet decided
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      if (b.action === 'edit') {
        ctx.fillStyle = this.colours[b.label];
        for (const [cx, cy] of [[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) ctx.fillRect(cx - 4, cy - 4, 8, 8);
      }
    });
    ctx.setLineDash([]);
  }

  // A corner of a box in edit mode under the pointer: dragged here, not passed to the viewport's tools.
  grab(e) {
    const m = this.mapping();
    if (!m || e.button !== 0) return;
    const rect = this.canvas.getBoundingClientRect();
    const px = e.clientX - rect.left;
    const py = e.clientY - rect.top;
    const here = this.frameOf();
    for (const b of this.boxes) {
      if (b.action !== 'edit' || b.instance_position !== here.instance || b.frame !== here.frame) continue;
      for (const [ix, iy] of [[0, 1], [2, 1], [0, 3], [2, 3]]) {
        const [cx, cy] = m.toCanvas(b.box[ix], b.box[iy]);
        if (Math.abs(cx - px) <= GRAB_PX && Math.abs(cy - py) <= GRAB_PX) {
          this.dragging = { b, ix, iy, rect };
          e.stopPropagation();
          e.preventDefault();
          return;
        }
      }
    }
  }

  dragTo(e) {
    const d = this.dragging;
    if (!d) return;
    const m = this.mapping();
    const [x, y] = m.toImage(e.clientX - d.rect.left, e.clientY - d.rect.top);
    d.b.box[d.ix] = Math.min(m.cols, Math.max(0, x));
    d.b.box[d.iy] = Math.min(m.rows, Math.max(0, y));
    this.draw();
  }

  // What blocks the submission (validation projects: every output rated, a reason to reject or correct).
  problems() {
    if (!this.validation || !this.pred || this.pred.hidden) return [];
    const out = [];
    Object.entries(this.calls).forEach(([label, c]) => {
      if (!c.action) out.push(`rate the model's call on ${this.names[label] || label}`);
      else if (c.action !== 'accept' && !c.reason.trim()) out.push(`give a reason for ${this.names[label] || label}`);
    });
    this.boxes.forEach((b, i) => {
      if (!b.action) out.push(`rate suggested region ${i + 1}`);
      else if (b.action !== 'accept' && !b.reason.trim()) out.push(`give a reason for region ${i + 1}`);
    });
    return out;
  }

  // The reading's assist record (the server adds the unaided answer it holds and what was shown).
  record() {
    if (!this.pred || !this.pred.model) return null;
    const suggestions = [];
    Object.entries(this.calls).forEach(([label, c]) => {
      if (c.action) suggestions.push({ label, action: c.action, reason: c.reason });
    });
    this.boxes.forEach((b, i) => {
      if (!b.action) return;
      const s = { label: b.label, box_index: i, action: b.action, reason: b.reason };
      if (b.action !== 'reject') {
        const [x0, y0, x1, y1] = this.regionBox(b) || b.box; // the region as submitted, where there is one
        s.box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)].map((v) => Math.round(v * 100) / 100);
      }
      suggestions.push(s);
    });
    return { model: this.pred.model, shown: true, suggestions };
  }
}
