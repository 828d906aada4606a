// Project management: settings, label schema (versioned), members and competences, invites, items (added
// as rounds) with their reading coverage, progress, rounds, exports; #/manage/new and #/manage/admin.
import { del, get, patch, post, put } from './api.js';
import { h, mount, toast } from './dom.js';
import { can } from './main.js';

function schemaEditor(pid, schema, reload) {
  const labels = (schema?.definition.labels || []).map((l) => ({ ...l }));
  const body = h('tbody');
  const render = () => body.replaceChildren(...labels.map((l, i) => h('tr', {},
    h('td', {}, h('input', { value: l.id, size: 12, oninput: (e) => (l.id = e.target.value) })),
    h('td', {}, h('input', { value: l.name, oninput: (e) => (l.name = e.target.value) })),
    h('td', {}, h('select', { onchange: (e) => (l.kind = e.target.value) },
      ['boolean', 'box', 'freehand', 'mask'].map((k) => h('option', { value: k, selected: k === l.kind }, k)))),
    h('td', {}, h('input', { value: l.instructions || '', size: 30, oninput: (e) => (l.instructions = e.target.value) })),
    h('td', {}, h('input', { type: 'color', value: l.color || '#ffcc00', oninput: (e) => (l.color = e.target.value) })),
    h('td', {}, h('button', { class: 'link', onclick: () => { labels.splice(i, 1); render(); } }, 'remove')))));
  render();
  const instructions = h('textarea', { rows: 2, cols: 60 }, schema?.definition.instructions || '');
  return h('section', { testid: 'schema' },
    h('h2', {}, `Label schema ${schema ? `(version ${schema.version})` : '(none yet)'}`),
    h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, ['id', 'name', 'kind', 'instructions', 'colour', ''].map((c) => h('th', {}, c)))), body),
    h('button', { onclick: () => { labels.push({ id: `label${labels.length + 1}`, name: 'New label', kind: 'boolean', instructions: '', color: '#ffcc00' }); render(); } }, 'Add label'),
    h('label', {}, 'Instructions for readers', instructions),
    h('button', { class: 'primary', testid: 'schema-save', onclick: async () => {
      try {
        await post(`/api/projects/${pid}/schema`, { labels, instructions: instructions.value });
        toast('Schema saved as a new version; earlier annotations keep theirs.');
        reload();
      } catch (e) { toast(e.message, 'error'); }
    } }, 'Save as new version'));
}

function settingsForm(pid, p, reload) {
  const k = h('input', { type: 'number', min: 1, max: 50, value: p.readers_per_item, testid: 'k' });
  const gold = h('input', { type: 'number', min: 0, max: 1, step: 0.05, value: p.gold_rate });
  const ver = h('select', {}, [0, 1, 2].map((v) => h('option', { value: v, selected: v === p.verification_levels }, v === 0 ? 'none' : `${v} level${v > 1 ? 's' : ''}`)));
  const round = h('input', { type: 'number', min: 1, value: p.current_round });
  const hook = h('input', { type: 'url', value: p.webhook_url || '', size: 40, placeholder: 'https://pipeline/hooks/annotation' });
  return h('section', {}, h('h2', {}, 'Settings'),
    h('label', {}, 'Readers per item (k)', k), h('label', {}, 'Gold rate (0-1)', gold),
    h('label', {}, 'Verification by a higher-ranked reader', ver), h('label', {}, 'Current round', round),
    h('label', {}, 'Completion webhook', hook),
    h('button', { class: 'primary', onclick: async () => {
      try {
        await patch(`/api/projects/${pid}`, { readers_per_item: Number(k.value), gold_rate: Number(gold.value),
          verification_levels: Number(ver.value), current_round: Number(round.value), webhook_url: hook.value || null });
        toast('Settings saved.');
        reload();
      } catch (e) { toast(e.message, 'error'); }
    } }, 'Save settings'));
}

const competenceText = (cs) => cs.map((c) => [c.modality, c.body_part].filter(Boolean).join('/')).join(', ');
// "CT/CHEST, MR" -> [{modality: 'CT', body_part: 'CHEST'}, {modality: 'MR', body_part: ''}]
const parseCompetences = (text) => text.split(',').map((s) => s.trim()).filter(Boolean)
  .map((s) => { const [modality, body_part = ''] = s.split('/').map((x) => x.trim().toUpperCase()); return { modality, body_part }; });

function memberRow(pid, m, reload) {
  const comp = h('input', { value: competenceText(m.competences), size: 14, placeholder: 'all (e.g. CT/CHEST, MR)', testid: `competences-${m.username}` });
  const level = m.role === 'annotator'
    ? h('select', { testid: `level-${m.username}` }, ['junior', 'senior'].map((l) => h('option', { value: l, selected: l === m.level }, l))) : '';
  return h('tr', { testid: `member-${m.username}` }, h('td', {}, m.display_name || m.username), h('td', {}, m.role), h('td', {}, level),
    h('td', {}, comp),
    h('td', {}, h('button', { class: 'link', testid: `member-save-${m.username}`, onclick: async () => {
      try {
        await patch(`/api/projects/${pid}/members/${m.id}`, { competences: parseCompetences(comp.value), ...(level ? { level: level.value } : {}) });
        toast(`Saved ${m.username}: reads ${competenceText(parseCompetences(comp.value)) || 'every item'}.`);
        reload();
      } catch (e) { toast(e.message, 'error'); }
    } }, 'save'), ' ',
    h('button', { class: 'link', onclick: async () => {
      try { await del(`/api/projects/${pid}/members/${m.id}`); reload(); } catch (e) { toast(e.message, 'error'); }
    } }, 'remove')));
}

const inviteRows = (invites) => invites.map((i) => h('tr', {}, h('td', {}, i.role), h('td', {}, i.level || ''), h('td', {}, i.note),
  h('td', {}, i.expires_at.slice(0, 16)), h('td', {}, i.used ? 'yes' : 'no')));

function membersSection(pid, members, invites, reload) {
  const role = h('select', { testid: 'invite-role' }, ['annotator', 'reviewer', 'data_owner', 'manager'].map((r) => h('option', { value: r }, r)));
  const level = h('select', { testid: 'invite-level' }, ['junior', 'senior'].map((l) => h('option', { value: l }, l)));
  const note = h('input', { placeholder: 'note (e.g. who it is for)', testid: 'invite-note' });
  const comp = h('input', { placeholder: 'competences (e.g. CT/CHEST)', size: 18, testid: 'invite-competences' });
  const link = h('p', { testid: 'invite-link', class: 'invite-link' });
  const inviteBody = h('tbody', { testid: 'invite-rows' }, inviteRows(invites));
  return h('section', { testid: 'members' }, h('h2', {}, 'Members'),
    h('table', { class: 'grid' }, h('tr', {}, ['user', 'role', 'level', 'competences (modality/body part)', ''].map((c) => h('th', {}, c))),
      members.map((m) => memberRow(pid, m, reload))),
    h('h3', {}, 'Invite an expert (single-use link, expires)'),
    h('div', { class: 'row' }, role, level, comp, note,
      h('button', { class: 'primary', testid: 'invite-create', onclick: async () => {
        try {
          const inv = await post(`/api/projects/${pid}/invites`, { role: role.value, level: role.value === 'annotator' ? level.value : null,
            note: note.value, competences: parseCompetences(comp.value) });
          link.textContent = `${location.origin}${inv.path}`;
          inviteBody.replaceChildren(...inviteRows(await get(`/api/projects/${pid}/invites`)));
          toast('Invite created: send the link; it works once.');
        } catch (e) { toast(e.message, 'error'); }
      } }, 'Create invite link')),
    link,
    h('table', { class: 'grid', testid: 'invites' }, h('thead', {}, h('tr', {}, ['role', 'level', 'note', 'expires', 'used'].map((c) => h('th', {}, c)))),
      inviteBody));
}

// Items: added as a round (readers per item, deadline, gold share) from de-identified URIs; coverage per item.
function addItemsSection(pid, project, reload) {
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, '');
  const lines = h('textarea', { rows: 4, cols: 90, testid: 'items-uris',
    placeholder: 'one item per line: [EXTERNAL_ID] URI [URI ...]  (file:// or s3:// in the deid/derived zone, or an allow-listed de-identified DICOMweb URL)' });
  const modality = h('input', { size: 6, placeholder: 'CT', testid: 'items-modality' });
  const body = h('input', { size: 10, placeholder: 'CHEST', testid: 'items-body-part' });
  const name = h('input', { value: `manual-${stamp}`, size: 22, testid: 'round-name' });
  const k = h('input', { type: 'number', min: 1, max: 50, value: project.readers_per_item, testid: 'round-k' });
  const deadline = h('input', { type: 'datetime-local', testid: 'round-deadline' });
  const gold = h('input', { type: 'number', min: 0, max: 1, step: 0.05, value: 0, testid: 'round-gold' });
  const err = h('p', { class: 'error', testid: 'add-items-error' });
  return h('section', { testid: 'add-items' }, h('h2', {}, 'Add items (a new round)'),
    h('p', { class: 'muted' }, 'Items are de-identified series from the store\'s deid or derived zone, or from an allow-listed archive of de-identified data; ',
      'anything else is refused. The pipeline offers no catalog browser over HTTP yet: paste the URIs its dispatch step or ',
      h('code', {}, 'curate'), ' lists (several URIs on one line make one series).'),
    lines,
    h('div', { class: 'row' }, h('label', {}, 'Modality', modality), h('label', {}, 'Body part', body), h('label', {}, 'Round name', name),
      h('label', {}, 'Readers per item', k), h('label', {}, 'Deadline (UTC)', deadline), h('label', {}, 'Gold share', gold)),
    h('button', { class: 'primary', testid: 'items-add', onclick: async () => {
      err.textContent = '';
      const items = lines.value.split('\n').map((l) => l.trim().split(/\s+/).filter(Boolean)).filter((t) => t.length)
        .map((t, n) => {
          const own = !t[0].includes('://');
          return { external_id: own ? t[0] : `${name.value}-${n + 1}`, uris: own ? t.slice(1) : t,
            modality: modality.value.trim().toUpperCase(), body_part: body.value.trim().toUpperCase() };
        });
      if (!items.length) { err.textContent = 'Paste at least one URI.'; return; }
      try {
        const r = await post(`/api/projects/${pid}/rounds`, { name: name.value, readers_per_item: Number(k.value), gold_share: Number(gold.value),
          deadline: deadline.value ? `${deadline.value}:00Z` : null, items });
        toast(`Round ${r.round.number}: ${r.created.length} items added, ${r.existing.length} already there.`);
        reload();
      } catch (e) { err.textContent = e.message; }
    } }, 'Add items'),
    err);
}

function coverageSection(cov, reload) {
  const stuck = cov.items.filter((c) => c.state === 'no eligible reader left');
  return h('section', { testid: 'coverage' }, h('h2', {}, 'Items'),
    cov.stuck || cov.short
      ? h('p', { class: 'error', testid: 'stuck-summary' },
        `${cov.stuck} item${cov.stuck === 1 ? '' : 's'} nobody left can read` +
        (stuck.length ? ` (${stuck.map((c) => c.external_id).slice(0, 8).join(', ')})` : '') +
        `; ${cov.short} short of readers. Invite readers or widen competences.`)
      : h('p', { class: 'muted', testid: 'stuck-summary' }, 'Every open reading has a reader who may take it.'),
    h('table', { class: 'grid' },
      h('tr', {}, ['item', 'round', 'modality / body part', 'required', 'submitted', 'in hand', 'open', 'skipped', 'readers left', 'state', 'gold'].map((c) => h('th', {}, c))),
      cov.items.map((c) => h('tr', { testid: `coverage-${c.external_id}` },
        h('td', {}, c.external_id), h('td', {}, c.round), h('td', {}, [c.modality, c.body_part].filter(Boolean).join(' / ')),
        [c.required, c.submitted, c.in_hand, c.open, c.skipped, c.eligible_readers].map((v) => h('td', {}, v)),
        h('td', { class: ['no eligible reader left', 'short of readers'].includes(c.state) ? 'error' : '', testid: `state-${c.external_id}` }, c.state),
        h('td', {}, h('button', { class: 'link', testid: `gold-${c.external_id}`, onclick: async () => {
          try { await put(`/api/items/${c.item_id}/gold`, { is_gold: !c.is_gold }); reload(); } catch (e) { toast(e.message, 'error'); }
        } }, c.is_gold ? 'unmark gold' : 'make gold'))))));
}

function progressSection(p) {
  return h('section', { testid: 'progress' }, h('h2', {}, 'Progress'),
    h('p', {}, `${p.complete_items}/${p.items} items complete · tasks open ${p.tasks_open}, in hand ${p.tasks_assigned}, submitted ${p.tasks_submitted}, skipped ${p.tasks_skipped}`),
    h('table', { class: 'grid' }, h('tr', {}, ['reader', 'submitted', 'skipped', 'in hand', 'median time (s)', 'median active (s)'].map((c) => h('th', {}, c))),
      p.readers.map((r) => h('tr', {}, [r.reader, r.submitted, r.skipped, r.assigned, r.median_wall_s ?? '', r.median_active_s ?? ''].map((v) => h('td', {}, v))))));
}

// Rounds (made by the pipeline or by Add items): state, deadline, completion; closing one refuses later readings.
function roundsSection(pid, rounds, reload) {
  return h('section', { testid: 'rounds' }, h('h2', {}, 'Rounds'),
    rounds.length ? h('table', { class: 'grid' },
      h('tr', {}, ['round', 'name', 'state', 'deadline', 'items complete', 'readings', 'k', ''].map((c) => h('th', {}, c))),
      rounds.map((r) => h('tr', { testid: `round-${r.number}` },
        h('td', {}, r.number), h('td', {}, r.name), h('td', { testid: `round-${r.number}-state` }, r.state),
        h('td', { class: r.overdue ? 'error' : '' }, r.deadline ? `${r.deadline.slice(0, 16)} UTC${r.overdue ? ' (overdue)' : ''}` : ''),
        h('td', {}, `${r.complete_items}/${r.items}`), h('td', {}, `${r.readings_submitted}/${r.readings_required}`),
        h('td', {}, r.readers_per_item),
        h('td', {}, r.state === 'closed' ? '' : h('button', { class: 'link', testid: `round-${r.number}-close`, onclick: async () => {
          if (!window.confirm(`Close round ${r.number}? Readings not yet submitted will be refused.`)) return;
          try { await post(`/api/projects/${pid}/rounds/${r.number}/close`); reload(); } catch (e) { toast(e.message, 'error'); }
        } }, 'close'))))) : h('p', { class: 'muted' }, 'No round yet: add items above, or the pipeline creates one.'));
}

function exportSection(pid, kind) {
  const a = (fmt, text) => h('a', { class: 'button', href: `/api/projects/${pid}/export/${fmt}`, download: `project-${pid}.${fmt === 'sr' || fmt === 'seg' ? `${fmt}.zip` : fmt}`, testid: `export-${fmt}` }, text);
  return h('section', { testid: 'exports' }, h('h2', {}, 'Export'),
    h('p', {}, a('csv', 'CSV'), ' ', a('json', 'JSON'), ' ', a('sr', 'DICOM SR (TID 1500)'), ' ', a('seg', 'DICOM SEG'),
      kind === 'quality_review' ? [' ', a('quality', 'Quality decisions (JSON)')] : ''));
}

export async function manageProject(pid) {
  if (Number.isNaN(pid)) { // #/manage/new and #/manage/admin: the pages without a project
    const page = location.hash.split('/')[2];
    if (page === 'admin') return (await import('./admin.js')).adminPage();
    return (await import('./templates.js')).newProjectPage();
  }
  const reload = () => manageProject(pid);
  const project = await get(`/api/projects/${pid}`);
  const manage = can(pid, 'manage');
  const parts = [h('h1', {}, `Manage · ${project.name}`)];
  if (manage) {
    const [schema, members, invites] = await Promise.all([
      get(`/api/projects/${pid}/schema`).catch(() => null), get(`/api/projects/${pid}/members`), get(`/api/projects/${pid}/invites`),
    ]);
    parts.push(settingsForm(pid, project, reload), schemaEditor(pid, schema, reload), membersSection(pid, members, invites, reload));
  }
  if (can(pid, 'progress')) {
    parts.push(progressSection(await get(`/api/projects/${pid}/progress`)));
    if (can(pid, 'manage') || can(pid, 'export')) parts.push(addItemsSection(pid, project, reload));
    parts.push(coverageSection(await get(`/api/projects/${pid}/coverage`), reload));
    parts.push(roundsSection(pid, await get(`/api/projects/${pid}/rounds`), reload));
  }
  if (can(pid, 'export')) parts.push(exportSection(pid, project.kind));
  mount(h('div', { class: 'page' }, parts));
}
