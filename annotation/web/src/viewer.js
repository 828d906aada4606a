// The reading viewer: Cornerstone3D decodes the DICOM in the browser, so window/level acts on the
// original (16-bit, rescaled) values. Tools: window/level, zoom (incl. 1:1), pan, slice/frame scroll,
// invert, reset, rectangle and freehand ROIs with edit and delete; labels with six confidence grades;
// submit and skip; time from image fully loaded to submit, active versus idle, per label.
import {
  Enums as csEnums,
  RenderingEngine,
  eventTarget,
  getRenderingEngine,
  imageLoader,
  init as csInit,
  isCornerstoneInitialized,
  utilities as csUtils,
} from '@cornerstonejs/core';
import { init as dicomLoaderInit, prefetchPart10Instance } from '@cornerstonejs/dicom-image-loader';
import * as cstools from '@cornerstonejs/tools';
import { get, post } from './api.js';
import { h, mount, toast } from './dom.js';
import { AiPanel } from './ai_panel.js';
import { Segmentation } from './segmentation.js';
import { instanceUrl } from './first_case.js';

const {
  ToolGroupManager, WindowLevelTool, ZoomTool, PanTool, StackScrollTool, RectangleROITool, PlanarFreehandROITool,
  Enums: toolEnums, annotation: annotationApi,
} = cstools;

const CONFIDENCES = [0, 20, 40, 60, 80, 100];
// Quality review (PRIMAGE's three outcomes); exclude and quarantine need the reader's reason.
const QUALITY_DECISIONS = [
  { id: 'approve', name: 'Approve', key: 'A', needsReason: false },
  { id: 'exclude', name: 'Exclude', key: 'X', needsReason: true },
  { id: 'quarantine', name: 'Quarantine', key: 'Q', needsReason: true },
];
const IDLE_AFTER_MS = 30000;
const PRESETS = [
  { name: 'Default', key: 'default' },
  { name: 'Soft tissue', ww: 400, wc: 40 },
  { name: 'Lung', ww: 1500, wc: -600 },
  { name: 'Bone', ww: 1800, wc: 400 },
  { name: 'Brain', ww: 80, wc: 40 },
];
// Text beside a region: its label's name always; then the area (compact), every statistic (full) or nothing (off).
const STATS_MODES = [
  { id: 'compact', name: 'Stats: area' },
  { id: 'full', name: 'Stats: all' },
  { id: 'off', name: 'Stats: off' },
];
const RE_ID = 'annotation-engine';
const VP_ID = 'reading-viewport';
const TG_ID = 'reading-tools';
let initialised = false;

async function initCornerstone() {
  if (initialised) return;
  // One WebGL context, not Cornerstone's default pool of 7: the reader has one viewport, and each
  // context of the pool is created eagerly with the engine (issue 17 point 14: main-thread time).
  if (!isCornerstoneInitialized()) await csInit({ rendering: { webGlContextCount: 1 } });
  dicomLoaderInit({ maxWebWorkers: 1 });
  cstools.init();
  for (const Tool of [WindowLevelTool, ZoomTool, PanTool, StackScrollTool, RectangleROITool, PlanarFreehandROITool]) {
    cstools.addTool(Tool);
  }
  initialised = true;
}

// imageIds: one per instance, or one per frame of a multi-frame instance (wadouri ?frame= is 1-based)
function imageIdsFor(item) {
  const ids = [];
  const where = [];
  item.instances.forEach((inst) => {
    const base = `wadouri:${instanceUrl(item.id, inst.position)}`;
    if (inst.frames > 1) {
      for (let f = 0; f < inst.frames; f++) {
        ids.push(`${base}?frame=${f + 1}`);
        where.push({ instance: inst.position, frame: f });
      }
    } else {
      ids.push(base);
      where.push({ instance: inst.position, frame: 0 });
    }
  });
  return { ids, where };
}

// The case claimed ahead ({task, remaining, project}): the queue serves held cases oldest first, so it
// is what `next` would answer once the current case is submitted.
let aheadCase = null;

// `early` (first_case.js startCase): the first case of a visit, claimed and its first image fetched while
// this module loaded.
export async function viewerPage(params, early = null) {
  performance.mark('viewer:start'); // phases of opening a case (issue 17 point 14), readable in DevTools
  let data;
  if (early) {
    data = await early.data;
  } else if (params.get('id')) {
    data = { task: await get(`/api/tasks/${params.get('id')}`), remaining: null };
  } else if (aheadCase && aheadCase.project === params.get('project')) {
    data = aheadCase; // claimed and prefetched while the previous case was read: no round trip
    aheadCase = null;
  } else {
    const pid = params.get('project');
    data = await post(`/api/tasks/next${pid ? `?project_id=${pid}` : ''}`);
  }
  if (!data.task) {
    mount(h('div', { class: 'card', testid: 'no-task' }, h('h1', {}, 'No task left for you'),
      h('p', {}, 'Thank you. New items appear here when the pipeline dispatches them.'), h('a', { href: '#/tasks' }, 'Back to my tasks')));
    return;
  }
  performance.mark('viewer:case');
  await initCornerstone();
  performance.mark('viewer:cornerstone');
  await new Reading(data.task, data.remaining, params.get('project')).start(early?.firstImage);
}

// The first slice's bytes fetched early go into Cornerstone's metadata cache, where its wadouri loader
// looks before requesting an instance; without them (fetch failed) the loader requests it as usual.
async function primeFirstImage(firstImage) {
  const first = await firstImage;
  if (!first) return;
  try {
    await prefetchPart10Instance(first.baseImageId, first.bytes);
  } catch (e) {
    console.warn('first image not primed; the loader requests it', e);
  }
}

class Reading {
  constructor(task, remaining, projectParam) {
    this.task = task;
    this.remaining = remaining;
    this.projectParam = projectParam;
    this.schema = task.schema_version?.definition || { labels: [] };
    this.isQualityReview = task.project_kind === 'quality_review';
    this.qualityDecision = null;
    this.labels = {}; // label id -> {value, confidence}
    this.roiLabel = {}; // annotationUID -> label id
    this.currentRoi = null;
    this.currentLabel = null;
    this.activeMs = 0;
    this.idleMs = 0;
    this.labelMs = {};
    this.lastInput = performance.now();
    this.lastTick = performance.now();
    this.loaded = false;
    this.cleanup = [];
  }

  async start(firstImage = null) {
    const t = this.task;
    const boolLabels = this.schema.labels.filter((l) => l.kind === 'boolean');
    const roiLabels = this.schema.labels.filter((l) => l.kind !== 'boolean');
    this.element = h('div', { class: 'viewport', testid: 'viewport', oncontextmenu: (e) => e.preventDefault() });
    this.overlay = h('div', { class: 'overlay', testid: 'overlay' });
    this.voiText = h('span', { testid: 'voi' });
    this.zoomText = h('span', { testid: 'zoom' });
    this.sliceText = h('span', { testid: 'slice' });
    this.overlay.append(this.voiText, ' · ', this.zoomText, ' · ', this.sliceText);
    this.roiList = h('ul', { class: 'roi-list', testid: 'roi-list' });
    this.submitBtn = h('button', { class: 'primary', testid: 'submit', onclick: () => this.submit() }, 'Submit (Ctrl+Enter)');
    const toolBtn = (name, tool, key) => h('button', { testid: `tool-${name}`, 'data-tool': tool, onclick: () => this.setTool(tool), title: key }, `${name} (${key})`);
    const toolbar = h('div', { class: 'toolbar', testid: 'toolbar' },
      toolBtn('W/L', WindowLevelTool.toolName, 'W'), toolBtn('Zoom', ZoomTool.toolName, 'Z'), toolBtn('Pan', PanTool.toolName, 'P'),
      h('button', { testid: 'zoom-1to1', onclick: () => this.fullResolution(), title: 'O' }, '1:1 (O)'),
      h('button', { testid: 'invert', onclick: () => this.invert(), title: 'I' }, 'Invert (I)'),
      h('button', { testid: 'reset', onclick: () => this.reset(), title: 'R' }, 'Reset (R)'),
      this.presetSelect = h('select', { testid: 'preset', onchange: (e) => this.preset(e.target.value) },
        PRESETS.map((p, i) => h('option', { value: i }, p.ww ? `${p.name} ${p.ww}/${p.wc}` : p.name))),
      this.statsBtn = h('button', { testid: 'stats-toggle', title: 'T: region statistics', onclick: () => this.toggleStats() }, STATS_MODES[0].name),
      h('button', { testid: 'slice-prev', onclick: () => this.scroll(-1) }, '▲'),
      h('button', { testid: 'slice-next', onclick: () => this.scroll(1) }, '▼'));
    const roiButtons = roiLabels.map((l, i) => h('button', {
      class: 'roi-label', testid: `roi-${l.id}`, style: { borderColor: l.color },
      onclick: () => this.startRoi(l), title: l.instructions || '',
    }, l.kind === 'mask' ? `◍ ${l.name} (M)` : `${l.kind === 'box' ? '▭' : '✎'} ${l.name}${i < 9 ? ` (${l.kind === 'box' ? 'B' : 'F'})` : ''}`));
    // mask labels: brush and polygon painting per slice (segmentation.js)
    const sizes = Object.fromEntries(t.item.instances.map((inst) => [inst.position, { rows: inst.rows, columns: inst.columns }]));
    this.segmentation = new Segmentation({ size: (instance) => sizes[instance], onChange: () => this.renderRois(),
      onWheel: (delta) => this.scroll(delta) });
    const maskControls = roiLabels.some((l) => l.kind === 'mask') ? this.segmentation.controls() : '';
    const labelRows = boolLabels.map((l) => this.labelRow(l));
    const ctx = t.item.context || {};
    const context = h('div', { class: 'context', testid: 'context' },
      h('p', { class: 'case-line' }, [ctx.age_bracket && `Age ${ctx.age_bracket}`, ctx.sex && `Sex ${ctx.sex}`, t.item.modality, t.item.body_part].filter(Boolean).join(' · '),
        (ctx.comorbidities || []).length ? ` · ${ctx.comorbidities.join(', ')}` : ''),
      ctx.report_text ? h('details', { open: true }, h('summary', {}, 'Report'), h('pre', { class: 'report', testid: 'report' }, ctx.report_text)) : '');
    const verify = t.kind === 'verify' ? this.verifyPanel() : '';
    const quality = this.isQualityReview ? this.qualityPanel(ctx.quality || {}) : '';
    // Three parts so that at 1280x720 the labels and Submit stay on screen with the image: the case
    // summary on top, the questions in the middle (scrolls when long), comment and Submit always at the bottom.
    const side = h('aside', { class: 'panel' },
      h('div', { class: 'panel-head' },
        h('div', { class: 'taskhead' }, h('strong', { testid: 'task-id' }, `Task #${t.id}`), ` ${t.project_name} · ${t.kind}${t.kind === 'verify' ? ` L${t.verify_level}` : ''}`,
          this.remaining !== null ? h('span', { class: 'muted', testid: 'remaining' }, ` · ${this.remaining} left`) : ''),
        context),
      h('div', { class: 'panel-body', testid: 'panel-body' },
        this.schema.instructions ? h('p', { class: 'muted' }, this.schema.instructions) : '',
        verify,
        quality,
        this.aiSlot = h('div', { class: 'ai-slot' }),
        boolLabels.length || !this.isQualityReview ? [h('h3', {}, 'Labels'), h('div', { testid: 'labels' }, labelRows)] : '',
        roiLabels.length || !this.isQualityReview ? [h('h3', {}, 'Regions'), h('div', { class: 'roi-buttons' }, roiButtons), maskControls, this.roiList] : '',
        h('details', {}, h('summary', {}, 'Keyboard'), h('p', { class: 'muted' },
          'W window/level (left drag), Z zoom, P pan, right drag zoom, middle drag pan, wheel or ↑/↓ slices, O full resolution (1:1), I invert, R reset, T region statistics (area / all / off), B/F first box/freehand label, M first mask label (then G brush, L polygon, E erase, [ ] radius, Enter closes the polygon), Delete removes the selected region, Y/N and 0-5 set the focused label, Ctrl+Enter submit, Ctrl+S skip.' + (this.isQualityReview ? ' Quality review: A approve, X exclude, Q quarantine.' : '')))),
      h('div', { class: 'panel-foot' },
        this.comment = h('textarea', { rows: 1, testid: 'comment', maxlength: 4000, placeholder: 'Comment (optional)', 'aria-label': 'Comment' }),
        h('div', { class: 'actions' }, this.submitBtn,
          h('button', { testid: 'skip', onclick: () => this.skip() }, 'Skip (Ctrl+S)'))));
    const warnings = t.item.geometry_warnings || [];
    const geometry = warnings.length ? h('div', { class: 'geometry-warning', testid: 'geometry-warnings' },
      `Slice order (${t.item.slice_order === 'position' ? 'by position along the slice normal' : t.item.slice_order === 'instance_number' ? 'by instance number' : 'as registered'}): `,
      warnings.join('; ')) : '';
    mount(h('div', { class: 'reader' }, h('div', { class: 'stage' }, toolbar, geometry, h('div', { class: 'viewport-wrap' }, this.element, this.overlay)), side));

    // Issue 17 point 14: the engine (its WebGL context) outlives the case; each case enables its new element in it.
    this.engine = getRenderingEngine(RE_ID) || new RenderingEngine(RE_ID);
    this.engine.enableElement({ viewportId: VP_ID, type: csEnums.ViewportType.STACK, element: this.element });
    this.viewport = this.engine.getViewport(VP_ID);
    ToolGroupManager.destroyToolGroup(TG_ID);
    this.tools = ToolGroupManager.createToolGroup(TG_ID);
    for (const Tool of [WindowLevelTool, ZoomTool, PanTool, StackScrollTool, RectangleROITool, PlanarFreehandROITool]) {
      this.tools.addTool(Tool.toolName);
    }
    this.tools.addViewport(VP_ID, RE_ID);
    this.tools.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: toolEnums.MouseBindings.Secondary }] });
    this.tools.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: toolEnums.MouseBindings.Auxiliary }] });
    this.tools.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: toolEnums.MouseBindings.Wheel }] });
    this.tools.setToolPassive(RectangleROITool.toolName);
    this.tools.setToolPassive(PlanarFreehandROITool.toolName);
    this.statsMode = 'compact';
    for (const name of [RectangleROITool.toolName, PlanarFreehandROITool.toolName]) {
      const base = this.tools.getToolInstance(name).configuration.getTextLines;
      this.tools.setToolConfiguration(name, { getTextLines: (data, targetId) => {
        const title = data.label ? [data.label] : [];
        if (this.statsMode === 'off') return title;
        const stats = base(data, targetId) || [];
        return [...title, ...(this.statsMode === 'compact' ? stats.slice(0, 1) : stats)];
      } });
    }
    this.setTool(WindowLevelTool.toolName);

    performance.mark('viewer:tools');
    const { ids, where } = imageIdsFor(t.item);
    this.imageIds = ids;
    this.where = where;
    this.segmentation.attach({ viewport: this.viewport, element: this.element, imageIds: ids, where });
    this.cleanup.push(() => this.segmentation.destroy());
    this.listen(this.element, csEnums.Events.VOI_MODIFIED, () => this.updateOverlay());
    this.listen(this.element, csEnums.Events.CAMERA_MODIFIED, () => this.updateOverlay());
    this.listen(this.element, csEnums.Events.STACK_NEW_IMAGE, () => this.updateOverlay());
    this.listen(eventTarget, toolEnums.Events.ANNOTATION_COMPLETED, (e) => this.roiCompleted(e.detail.annotation));
    this.listen(eventTarget, toolEnums.Events.ANNOTATION_MODIFIED, () => this.renderRois());
    this.listen(eventTarget, toolEnums.Events.ANNOTATION_REMOVED, () => this.renderRois());
    for (const ev of ['mousemove', 'mousedown', 'keydown', 'wheel', 'touchstart']) this.listen(window, ev, () => this.touch());
    this.listen(window, 'keydown', (e) => this.key(e));
    this.listen(window, 'resize', () => this.engine?.resize(true, false));
    this.timer = setInterval(() => this.tick(), 500);
    this.cleanup.push(() => clearInterval(this.timer));
    window.addEventListener('app:leave', () => this.destroy(), { once: true });

    if (firstImage) await primeFirstImage(firstImage);
    performance.mark('viewer:stack');
    await this.viewport.setStack(this.imageIds, 0);
    performance.mark('viewer:image');
    this.viewport.render();
    // The starting display (the DICOM's window; MONOCHROME1 shown inverted) is what Reset returns to.
    this.initialVoi = { ...this.viewport.getProperties().voiRange };
    this.initialInvert = !!this.viewport.getProperties().invert;
    this.element.dataset.photometric = this.viewport.getImageData()?.metadata?.PhotometricInterpretation || '';
    this.updateOverlay();
    // time per case starts when the image is fully loaded and shown (MarkIt's definition)
    // not awaited: the image is on screen now; a case claimed ahead that is no longer this reader's
    // (lease ran out and another reader took it) is refused here, and the queue is asked again
    if (this.task.status === 'assigned') post(`/api/tasks/${t.id}/loaded`).catch((e) => this.lostCase(e));
    this.loaded = true;
    this.lastTick = performance.now();
    this.element.dataset.loaded = 'true';
    this.prefetch();
    await this.restoreReading(); // a reopened case: the reading submitted before, to change
    this.prefetchNext();
    this.ai = new AiPanel(this); // model suggestions, where the item has any
    if (!(await this.ai.load(this.aiSlot, this.element.parentElement))) this.ai = null;
  }

  prefetch() {
    // Fetch the other slices in the background so scrolling is instant.
    this.slicesLoaded = Promise.allSettled(this.imageIds.slice(1, 200).map((id) => imageLoader.loadAndCacheImage(id)));
  }

  // Issue 17 point 14: once this case's slices are in, claim the next case (`ahead=1`, not opened: no
  // reading clock) and decode its images into Cornerstone's cache, so after Submit the next image is
  // drawn without waiting for the network. An unused claim expires with the queue's lease.
  async prefetchNext() {
    if (this.task.kind !== 'annotate' || this.task.status !== 'assigned') return;
    await this.slicesLoaded;
    if (!this.engine) return; // the reader already moved on
    try {
      const pid = this.projectParam ? `&project_id=${this.projectParam}` : '';
      const ahead = await post(`/api/tasks/next?ahead=1${pid}`);
      if (!ahead.task || !this.engine) return;
      aheadCase = { ...ahead, project: this.projectParam };
      await Promise.allSettled(imageIdsFor(ahead.task.item).ids.slice(0, 200).map((id) => imageLoader.loadAndCacheImage(id)));
      this.element.dataset.prefetched = String(ahead.task.id);
    } catch (e) {
      /* prefetch is an optimisation: the next case loads normally */
    }
  }

  lostCase(e) {
    if (!this.engine || (e.status !== 403 && e.status !== 409)) return;
    toast(`Task #${this.task.id} is no longer yours (its hold ran out); taking the next one.`, 'error');
    aheadCase = null;
    this.next();
  }

  // Reopened case (task in hand that already has a reading): show that reading to change, labels,
  // comment, quality decision and box/freehand regions; the submit replaces it (kept as a revision).
  async restoreReading() {
    const prev = this.task.annotation;
    if (!prev || this.task.status !== 'assigned' || this.task.kind !== 'annotate') return;
    prev.labels.forEach((l) => this.rows?.[l.label] && this.setLabel(l.label, { value: l.value, confidence: l.confidence }));
    this.comment.value = prev.comment || '';
    if (prev.quality && this.qualityButtons) {
      this.setQuality(prev.quality.decision);
      this.qualityReason.value = prev.quality.reason || '';
    }
    let lost = 0;
    for (const roi of prev.rois) if (!(await this.restoreRoi(roi))) lost += 1;
    this.viewport.render();
    this.renderRois();
    this.element.dataset.reopened = 'true';
    toast(`Reopened task #${this.task.id}: your submitted reading is shown; Submit replaces it${lost ? ` (${lost} region(s) could not be shown: draw them again)` : ''}.`);
  }

  async restoreRoi(roi) {
    const label = this.schema.labels.find((l) => l.id === roi.label);
    const idx = this.where.findIndex((w) => w.instance === roi.instance && w.frame === roi.frame);
    if (label && idx >= 0 && roi.kind === 'mask') return this.segmentation.restore(roi, idx, label);
    if (!label || idx < 0 || (roi.kind !== 'box' && roi.kind !== 'freehand')) return false;
    const imageId = this.imageIds[idx];
    try {
      await imageLoader.loadAndCacheImage(imageId); // its geometry (image plane) is needed to place the points
    } catch (e) {
      return false;
    }
    const toWorld = (p) => csUtils.imageToWorldCoords(imageId, p);
    const { viewPlaneNormal, viewUp } = this.viewport.getCamera();
    const box = roi.kind === 'box';
    let ann;
    try {
      const [[x0, y0], [x1, y1]] = roi.points;
      const polyline = box ? [] : roi.points.map(toWorld);
      // what the tool itself would have made: a box's four corners, a freehand's closed polyline
      ann = {
        annotationUID: csUtils.uuidv4(), highlighted: false, invalidated: true, isLocked: false, isVisible: true,
        metadata: { toolName: box ? RectangleROITool.toolName : PlanarFreehandROITool.toolName, referencedImageId: imageId,
          FrameOfReferenceUID: this.viewport.getFrameOfReferenceUID(), viewPlaneNormal: [...viewPlaneNormal], viewUp: [...viewUp] },
        data: {
          label: label.name, cachedStats: {},
          handles: { points: box ? [[x0, y0], [x1, y0], [x0, y1], [x1, y1]].map(toWorld) : [polyline[0], polyline[polyline.length - 1]],
            activeHandleIndex: null, textBox: { hasMoved: false, worldPosition: [0, 0, 0], worldBoundingBox: { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] } } },
          ...(box ? {} : { contour: { polyline, closed: true }, isOpenUShapeContour: false }),
        },
      };
      annotationApi.state.addAnnotation(ann, this.element);
    } catch (e) {
      return false;
    }
    const prevRoi = this.currentRoi;
    this.currentRoi = label;
    this.roiCompleted(ann); // labelled and drawn in the label's colour like a region just drawn
    this.currentRoi = prevRoi;
    return ann; // the AI panel keeps it: an accepted suggestion's region
  }

  listen(target, ev, fn) {
    target.addEventListener(ev, fn);
    this.cleanup.push(() => target.removeEventListener(ev, fn));
  }

  destroy() {
    this.cleanup.forEach((fn) => fn());
    this.cleanup = [];
    try {
      annotationApi.state.removeAllAnnotations();
      ToolGroupManager.destroyToolGroup(TG_ID);
      this.engine?.disableElement(VP_ID); // the engine is kept for the next case
    } catch (e) {
      /* page is going away */
    }
    this.engine = null;
  }

  touch() {
    this.lastInput = performance.now();
  }

  tick() {
    const now = performance.now();
    const dt = now - this.lastTick;
    this.lastTick = now;
    if (!this.loaded) return;
    if (now - this.lastInput < IDLE_AFTER_MS && document.visibilityState === 'visible') {
      this.activeMs += dt;
      if (this.currentLabel) this.labelMs[this.currentLabel] = (this.labelMs[this.currentLabel] || 0) + dt;
    } else {
      this.idleMs += dt;
    }
  }

  labelRow(l) {
    const yes = h('button', { class: 'yn', testid: `label-${l.id}-yes`, onclick: () => this.setLabel(l.id, { value: true }) }, 'Yes');
    const no = h('button', { class: 'yn', testid: `label-${l.id}-no`, onclick: () => this.setLabel(l.id, { value: false }) }, 'No');
    const conf = CONFIDENCES.map((c) => h('button', { class: 'conf', testid: `label-${l.id}-conf-${c}`, onclick: () => this.setLabel(l.id, { confidence: c }) }, `${c}%`));
    const row = h('div', { class: 'label-row', testid: `label-${l.id}`, onclick: () => this.focusLabel(l.id), title: l.instructions || '' },
      h('div', { class: 'label-name' }, l.name, l.required ? h('span', { class: 'required', title: 'required' }, ' *') : '',
        l.instructions ? h('span', { class: 'muted' }, ` — ${l.instructions}`) : ''),
      h('div', { class: 'label-controls' }, yes, no, h('span', { class: 'conf-group' }, conf)));
    row._yes = yes;
    row._no = no;
    row._conf = conf;
    (this.rows ||= {})[l.id] = row;
    return row;
  }

  focusLabel(id) {
    this.currentLabel = id;
    Object.entries(this.rows || {}).forEach(([k, r]) => r.classList.toggle('focused', k === id));
  }

  setLabel(id, change) {
    this.focusLabel(id);
    const cur = { ...(this.labels[id] || {}), ...change };
    this.labels[id] = cur;
    this.ai?.labelsChanged();
    const row = this.rows[id];
    row._yes.classList.toggle('on', cur.value === true);
    row._no.classList.toggle('on', cur.value === false);
    row._conf.forEach((b, i) => b.classList.toggle('on', cur.confidence === CONFIDENCES[i]));
    row.classList.toggle('complete', cur.value !== undefined && cur.confidence !== undefined);
    if (cur.value !== undefined && cur.confidence !== undefined) row.classList.remove('missing');
  }

  // The series' quality decision: the model's assessment (decision, score, reason, metrics) beside the
  // reader's choice of approve / exclude / quarantine with a reason.
  qualityPanel(model) {
    const metrics = Object.entries(model.metrics || {});
    this.qualityButtons = QUALITY_DECISIONS.map((d) => h('button', {
      class: `quality-choice ${d.id}`, testid: `quality-${d.id}`, title: d.key,
      onclick: () => this.setQuality(d.id),
    }, `${d.name} (${d.key})`));
    this.qualityReason = h('textarea', { rows: 3, testid: 'quality-reason', maxlength: 4000,
      placeholder: 'Reason (required to exclude or quarantine)' });
    return h('div', { class: 'quality', testid: 'quality-panel' },
      h('h3', {}, 'Quality decision'),
      h('div', { class: 'row' }, this.qualityButtons),
      h('label', {}, 'Reason', this.qualityReason),
      h('div', { class: 'model-quality', testid: 'model-quality' },
        h('h4', {}, `Quality model${model.model ? ` (${model.model})` : ''}`),
        h('p', {}, h('span', { testid: 'model-decision' }, model.decision ? `says ${model.decision}` : 'no decision given'),
          model.score !== undefined && model.score !== null ? h('span', { testid: 'model-score' }, ` · score ${model.score}`) : ''),
        model.reason ? h('p', { class: 'model-reason', testid: 'model-reason' }, model.reason) : '',
        metrics.length ? h('table', { class: 'grid', testid: 'quality-metrics' },
          h('tr', {}, h('th', {}, 'metric'), h('th', {}, 'value')),
          metrics.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, String(Math.round(v * 10000) / 10000))))) : ''));
  }

  setQuality(id) {
    this.qualityDecision = id;
    this.qualityButtons.forEach((b) => b.classList.toggle('on', b.dataset.testid === `quality-${id}`));
    if (QUALITY_DECISIONS.find((d) => d.id === id).needsReason) this.qualityReason.focus();
  }

  verifyPanel() {
    const r = this.task.reviewed || { labels: [], rois: [] };
    this.decision = null;
    const btn = (d, text) => h('button', { testid: `decision-${d}`, onclick: (e) => {
      this.decision = d;
      e.target.parentNode.querySelectorAll('button').forEach((b) => b.classList.toggle('on', b === e.target));
    } }, text);
    return h('div', { class: 'verify', testid: 'verify' },
      h('h3', {}, 'Reading to verify'),
      h('ul', {}, r.labels.map((l) => h('li', {}, `${l.label}: ${l.value ? 'yes' : 'no'} (${l.confidence}%)`)),
        r.rois.map((roi) => h('li', {}, `${roi.kind} ${roi.label} on image ${roi.instance + 1}${roi.frame ? ` frame ${roi.frame + 1}` : ''}`))),
      h('div', {}, btn('accept', 'Accept'), btn('reject', 'Reject'), btn('correct', 'Correct (use my labels)')));
  }

  setTool(toolName) {
    this.segmentation?.stop();
    for (const name of [WindowLevelTool.toolName, RectangleROITool.toolName, PlanarFreehandROITool.toolName]) {
      if (name !== toolName) this.tools.setToolPassive(name);
    }
    // Zoom/Pan keep their right/middle bindings; left goes to the chosen tool.
    const keep = { [ZoomTool.toolName]: toolEnums.MouseBindings.Secondary, [PanTool.toolName]: toolEnums.MouseBindings.Auxiliary };
    for (const [name, button] of Object.entries(keep)) {
      const bindings = [{ mouseButton: button }];
      if (name === toolName) bindings.push({ mouseButton: toolEnums.MouseBindings.Primary });
      this.tools.setToolActive(name, { bindings });
    }
    if (!(toolName in keep)) this.tools.setToolActive(toolName, { bindings: [{ mouseButton: toolEnums.MouseBindings.Primary }] });
    this.activeTool = toolName;
    document.querySelectorAll('[data-tool]').forEach((b) => b.classList.toggle('on', b.dataset.tool === toolName));
    if (toolName !== RectangleROITool.toolName && toolName !== PlanarFreehandROITool.toolName) {
      this.currentRoi = null;
      document.querySelectorAll('.roi-label').forEach((b) => b.classList.remove('on'));
    }
  }

  startRoi(label) {
    if (label.kind === 'mask') return void this.startMask(label);
    this.setTool(label.kind === 'box' ? RectangleROITool.toolName : PlanarFreehandROITool.toolName);
    this.currentRoi = label;
    this.currentLabel = label.id;
    document.querySelectorAll('.roi-label').forEach((b) => b.classList.toggle('on', b.dataset.testid === `roi-${label.id}`));
  }

  // A mask label: left button paints (the overlay takes it from Cornerstone's tools); right/middle as before.
  startMask(label) {
    this.setTool(WindowLevelTool.toolName);
    this.segmentation.start(label);
    this.currentRoi = label;
    this.currentLabel = label.id;
    document.querySelectorAll('.roi-label').forEach((b) => b.classList.toggle('on', b.dataset.testid === `roi-${label.id}`));
  }

  roiCompleted(ann) {
    if (!ann || this.roiLabel[ann.annotationUID]) return;
    const label = this.currentRoi;
    if (!label) {
      annotationApi.state.removeAnnotation(ann.annotationUID);
      toast('Choose a region label first.', 'error');
      return;
    }
    this.roiLabel[ann.annotationUID] = label.id;
    ann.data.label = label.name;
    // drawn in the label's colour (a little thicker while selected), named in its text box
    const c = label.color || '#ffcc00';
    annotationApi.config.style.setAnnotationStyles(ann.annotationUID, {
      color: c, colorHighlighted: c, colorSelected: c, colorActive: c,
      textBoxColor: c, textBoxColorHighlighted: c, textBoxColorSelected: c, textBoxColorActive: c,
      lineWidthSelected: '3',
    });
    this.viewport.render();
    this.renderRois();
  }

  rois() {
    const all = annotationApi.state.getAllAnnotations();
    return all.filter((a) => this.roiLabel[a.annotationUID]);
  }

  renderRois() {
    this.ai?.regionsChanged(); // a deleted region of an accepted suggestion rejects it
    const byId = Object.fromEntries(this.schema.labels.map((l) => [l.id, l]));
    this.roiList.replaceChildren(...this.rois().map((a, i) => {
      const label = byId[this.roiLabel[a.annotationUID]];
      const idx = this.imageIds.indexOf(a.metadata.referencedImageId);
      return h('li', { testid: 'roi-item', style: { borderLeft: `4px solid ${label?.color || '#ffcc00'}`, paddingLeft: '.3rem' } },
        h('button', { class: 'link', testid: `roi-goto-${i}`, title: 'show this region', onclick: () => this.goTo(idx) },
          `${label?.kind === 'box' ? '▭' : '✎'} ${label?.name || '?'} · image ${idx + 1}`), ' ',
        h('button', { class: 'link', testid: `roi-delete-${i}`, onclick: () => {
          annotationApi.state.removeAnnotation(a.annotationUID);
          delete this.roiLabel[a.annotationUID];
          this.viewport.render();
          this.renderRois();
        } }, 'delete'));
    }));
  }

  roiPayload() {
    const out = [];
    for (const a of this.rois()) {
      const imageId = a.metadata.referencedImageId;
      const idx = this.imageIds.indexOf(imageId);
      if (idx < 0) continue;
      const where = this.where[idx];
      const label = this.schema.labels.find((l) => l.id === this.roiLabel[a.annotationUID]);
      const toImage = (p) => csUtils.worldToImageCoords(imageId, p).map((v) => Math.round(v * 100) / 100);
      if (label.kind === 'box') {
        const pts = a.data.handles.points.map(toImage);
        const xs = pts.map((p) => p[0]);
        const ys = pts.map((p) => p[1]);
        out.push({ label: label.id, kind: 'box', instance: where.instance, frame: where.frame,
          points: [[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]] });
      } else {
        let pts = (a.data.contour?.polyline || []).map(toImage);
        const step = Math.ceil(pts.length / 2000);
        if (step > 1) pts = pts.filter((_, i) => i % step === 0);
        if (pts.length >= 3) out.push({ label: label.id, kind: 'freehand', instance: where.instance, frame: where.frame, points: pts });
      }
    }
    out.push(...this.segmentation.payload());
    return out;
  }

  updateOverlay() {
    if (!this.viewport) return;
    const voi = this.viewport.getProperties().voiRange;
    if (voi) {
      const { windowWidth, windowCenter } = csUtils.windowLevel.toWindowLevel(voi.lower, voi.upper);
      this.voiText.textContent = `W ${Math.round(windowWidth)} L ${Math.round(windowCenter)}`;
      this.voiText.dataset.ww = windowWidth;
      this.voiText.dataset.wc = windowCenter;
    } else {
      // colour shown as decoded (no window): the identity on 8-bit values
      this.voiText.textContent = 'colour';
      this.voiText.dataset.ww = 255;
      this.voiText.dataset.wc = 127.5;
    }
    // Zoom as screen pixels per image pixel: 100% is one-to-one (Cornerstone's own zoom is relative to fit).
    const scale = this.pixelScale();
    this.zoomText.textContent = `zoom ${Math.round(scale * 100)}%`;
    this.zoomText.dataset.zoom = scale;
    this.zoomText.dataset.fitZoom = this.viewport.getZoom();
    const origin = this.imageOrigin();
    if (origin) this.zoomText.dataset.origin = origin.join(',');
    const i = this.viewport.getCurrentImageIdIndex();
    this.sliceText.textContent = `image ${i + 1}/${this.imageIds.length}`;
    this.sliceText.dataset.index = i;
  }

  pixelScale() {
    const spacing = this.viewport.getImageData()?.spacing || [1, 1, 1];
    const canvas = this.viewport.canvas;
    const cssHeight = canvas.clientHeight || canvas.height;
    const { parallelScale } = this.viewport.getCamera();
    return parallelScale ? (cssHeight * spacing[1]) / (2 * parallelScale) : 1;
  }

  // Canvas position (CSS pixels) of the top-left corner of the first image pixel.
  imageOrigin() {
    const imageId = this.viewport.getCurrentImageId();
    if (!imageId) return null;
    try {
      return this.viewport.worldToCanvas(csUtils.imageToWorldCoords(imageId, [0, 0]));
    } catch (e) {
      return null;
    }
  }

  fullResolution() {
    // One image pixel per screen pixel: parallelScale is half the viewport height in world units;
    // then pan by under a pixel so image pixels fall on screen pixels (no resampling blur at 1:1).
    const spacing = this.viewport.getImageData()?.spacing || [1, 1, 1];
    const canvas = this.viewport.canvas;
    const cssHeight = canvas.clientHeight || canvas.height;
    this.viewport.setCamera({ parallelScale: (cssHeight / 2) * spacing[1] });
    const origin = this.imageOrigin();
    if (origin) {
      const [x, y] = origin;
      const dx = Math.round(x) - x;
      const dy = Math.round(y) - y;
      if (Math.abs(dx) > 1e-3 || Math.abs(dy) > 1e-3) {
        const camera = this.viewport.getCamera();
        const a = this.viewport.canvasToWorld([0, 0]);
        const b = this.viewport.canvasToWorld([-dx, -dy]);
        const shift = [0, 1, 2].map((k) => b[k] - a[k]);
        this.viewport.setCamera({
          focalPoint: camera.focalPoint.map((v, k) => v + shift[k]),
          position: camera.position.map((v, k) => v + shift[k]),
        });
      }
    }
    this.viewport.render();
    this.updateOverlay();
  }

  invert() {
    const { invert } = this.viewport.getProperties();
    this.viewport.setProperties({ invert: !invert });
    this.viewport.render();
  }

  reset() {
    // Back to the starting display: camera, the DICOM's window, MONOCHROME1 still inverted, preset menu on Default.
    this.viewport.resetCamera();
    this.viewport.setProperties({ voiRange: { ...this.initialVoi }, invert: this.initialInvert });
    this.presetSelect.value = '0';
    this.viewport.render();
    this.updateOverlay();
  }

  preset(index) {
    const p = PRESETS[Number(index)];
    if (p.key === 'default') {
      this.viewport.setProperties({ voiRange: { ...this.initialVoi } });
    } else {
      this.viewport.setProperties({ voiRange: csUtils.windowLevel.toLowHighRange(p.ww, p.wc) });
    }
    this.viewport.render();
    this.updateOverlay();
  }

  toggleStats() {
    const next = STATS_MODES[(STATS_MODES.findIndex((m) => m.id === this.statsMode) + 1) % STATS_MODES.length];
    this.statsMode = next.id;
    this.statsBtn.textContent = next.name;
    this.statsBtn.dataset.mode = next.id;
    this.viewport.render();
  }

  // Region list: a click shows the region's slice (or frame).
  async goTo(index) {
    if (index < 0) return;
    await this.viewport.setImageIdIndex(index);
    this.updateOverlay();
  }

  async scroll(delta) {
    const n = this.imageIds.length;
    const i = Math.min(n - 1, Math.max(0, this.viewport.getCurrentImageIdIndex() + delta));
    await this.viewport.setImageIdIndex(i);
    this.updateOverlay();
  }

  key(e) {
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(e.target.tagName)) return;
    const k = e.key.toLowerCase();
    if (e.ctrlKey && k === 'enter') return void this.submit();
    if (e.ctrlKey && k === 's') {
      e.preventDefault();
      return void this.skip();
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (this.segmentation.key(k)) return void e.preventDefault();
    const roiLabels = this.schema.labels.filter((l) => l.kind !== 'boolean');
    const actions = {
      w: () => this.setTool(WindowLevelTool.toolName), z: () => this.setTool(ZoomTool.toolName), p: () => this.setTool(PanTool.toolName),
      i: () => this.invert(), r: () => this.reset(), o: () => this.fullResolution(), t: () => this.toggleStats(),
      b: () => roiLabels.find((l) => l.kind === 'box') && this.startRoi(roiLabels.find((l) => l.kind === 'box')),
      f: () => roiLabels.find((l) => l.kind === 'freehand') && this.startRoi(roiLabels.find((l) => l.kind === 'freehand')),
      m: () => roiLabels.find((l) => l.kind === 'mask') && this.startRoi(roiLabels.find((l) => l.kind === 'mask')),
      arrowup: () => this.scroll(-1), arrowdown: () => this.scroll(1),
      delete: () => this.deleteSelected(), backspace: () => this.deleteSelected(),
      y: () => this.currentLabelBool() && this.setLabel(this.currentLabel, { value: true }),
      n: () => this.currentLabelBool() && this.setLabel(this.currentLabel, { value: false }),
    };
    if (this.isQualityReview) {
      const choice = QUALITY_DECISIONS.find((d) => d.key.toLowerCase() === k);
      if (choice) {
        e.preventDefault();
        this.setQuality(choice.id);
        return;
      }
    }
    if (/^[0-5]$/.test(k) && this.currentLabelBool()) {
      this.setLabel(this.currentLabel, { confidence: CONFIDENCES[Number(k)] });
      return;
    }
    if (actions[k]) {
      e.preventDefault();
      actions[k]();
    }
  }

  currentLabelBool() {
    return this.schema.labels.some((l) => l.id === this.currentLabel && l.kind === 'boolean');
  }

  deleteSelected() {
    const selected = annotationApi.selection.getAnnotationsSelected() || [];
    selected.forEach((a) => {
      annotationApi.state.removeAnnotation(a.annotationUID);
      delete this.roiLabel[a.annotationUID];
    });
    this.viewport.render();
    this.renderRois();
  }

  async submit() {
    const labels = Object.entries(this.labels)
      .filter(([, v]) => v.value !== undefined && v.confidence !== undefined)
      .map(([label, v]) => ({ label, value: v.value, confidence: v.confidence }));
    // Name every label that stops the submission: half-answered, required and unanswered, or nothing answered at all.
    const byId = Object.fromEntries(this.schema.labels.map((l) => [l.id, l]));
    const partial = Object.entries(this.labels).filter(([, v]) => v.value === undefined || v.confidence === undefined)
      .map(([id, v]) => `${byId[id]?.name || id} (${v.value === undefined ? 'Yes/No' : 'confidence'} missing)`);
    const drawn = new Set([...Object.values(this.roiLabel), ...this.segmentation.labelsDrawn()]);
    const missing = this.schema.labels.filter((l) => l.required && !(l.kind === 'boolean' ? labels.some((x) => x.label === l.id) : drawn.has(l.id)))
      .map((l) => l.name);
    const questions = this.schema.labels.filter((l) => l.kind === 'boolean');
    const empty = !this.isQualityReview && this.task.kind !== 'verify' && questions.length && !labels.length && !drawn.size;
    const problems = [];
    if (partial.length) problems.push(`Each label needs Yes/No and a confidence: ${partial.join(', ')}`);
    if (missing.length && !this.isQualityReview && (this.task.kind !== 'verify' || this.decision === 'correct')) problems.push(`Required: ${missing.join(', ')}`);
    if (empty && !missing.length) problems.push(`No label answered: ${questions.map((l) => l.name).join(', ')}`);
    if (problems.length) {
      toast(problems.join('. '), 'error');
      this.markMissing([...Object.keys(this.labels).filter((id) => partial.some((p) => p.startsWith(byId[id]?.name || id))),
        ...this.schema.labels.filter((l) => missing.includes(l.name) || (empty && l.kind === 'boolean')).map((l) => l.id)]);
      return;
    }
    if (this.task.kind === 'verify' && !this.decision) {
      toast('Choose accept, reject or correct.', 'error');
      return;
    }
    const needsQuality = this.isQualityReview && (this.task.kind !== 'verify' || this.decision === 'correct');
    const reason = this.qualityReason ? this.qualityReason.value.trim() : '';
    if (needsQuality && !this.qualityDecision) {
      toast('Choose approve, exclude or quarantine.', 'error');
      return;
    }
    if (needsQuality && QUALITY_DECISIONS.find((d) => d.id === this.qualityDecision).needsReason && !reason) {
      toast(`Give a reason to ${this.qualityDecision}.`, 'error');
      this.qualityReason.focus();
      return;
    }
    this.tick();
    const body = {
      labels, rois: this.roiPayload(), comment: this.comment.value,
      active_ms: Math.round(this.activeMs), idle_ms: Math.round(this.idleMs),
      label_ms: Object.fromEntries(Object.entries(this.labelMs).map(([k, v]) => [k, Math.round(v)])),
    };
    if (this.task.kind === 'verify') body.decision = this.decision;
    if (needsQuality) body.quality = { decision: this.qualityDecision, reason };
    const aiProblems = this.ai && this.task.kind !== 'verify' ? this.ai.problems() : [];
    if (aiProblems.length) return void toast(`AI suggestions: ${aiProblems.join('; ')}`, 'error');
    const assist = this.task.kind !== 'verify' && this.ai ? this.ai.record() : null;
    if (assist) body.assist = assist;
    if (this.task.kind === 'verify' && this.decision !== 'correct') {
      body.labels = [];
      body.rois = [];
    }
    this.submitBtn.disabled = true;
    try {
      await post(`/api/tasks/${this.task.id}/submit`, body);
      toast(`Task #${this.task.id} submitted.`);
      this.next();
    } catch (e) {
      toast(e.message, 'error');
      this.submitBtn.disabled = false;
    }
  }

  markMissing(ids) {
    Object.entries(this.rows || {}).forEach(([id, row]) => row.classList.toggle('missing', ids.includes(id)));
  }

  async skip() {
    const reason = window.prompt('Why skip this case? (e.g. not diagnostic, artefact, outside my expertise)');
    if (!reason) return;
    await post(`/api/tasks/${this.task.id}/skip`, { reason });
    toast(`Task #${this.task.id} skipped.`);
    this.next();
  }

  next() {
    this.destroy();
    const target = `#/task${this.projectParam ? `?project=${this.projectParam}` : ''}`;
    const bump = location.hash === target ? `${target}${this.projectParam ? '&' : '?'}n=${Date.now()}` : target;
    location.hash = bump;
  }
}
