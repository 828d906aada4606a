// New project from a template (#/manage/new): the templates ship in include/annotation/templates/.
import { get, post } from './api.js';
import { h, mount, toast } from './dom.js';
import { session } from './main.js';

function templateCard(t, chosen, choose) {
  return h('label', { class: 'card', testid: `template-${t.id}`, style: { display: 'block', cursor: 'pointer', outline: chosen ? '2px solid currentColor' : '' } },
    h('input', { type: 'radio', name: 'template', value: t.id, checked: chosen, onchange: () => choose(t) }),
    h('strong', {}, ` ${t.title}`),
    h('p', {}, t.description),
    h('p', { class: 'muted' }, `${t.kind === 'quality_review' ? 'Quality review' : 'Labels'} · ${t.readers_per_item} reader${t.readers_per_item > 1 ? 's' : ''} per item`,
      t.verification_levels ? ` · ${t.verification_levels} verification level` : '', t.gold_rate ? ` · gold rate ${t.gold_rate}` : '',
      t.modality ? ` · ${[t.modality, t.body_part].filter(Boolean).join(' / ')}` : ''),
    h('ul', {}, t.schema.labels.map((l) => h('li', {}, h('span', { style: { color: l.color } }, '■ '), `${l.name} (${l.kind}${l.required ? ', required' : ''})`))));
}

export async function newProjectPage() {
  const templates = await get('/api/project-templates');
  let chosen = templates[0];
  const name = h('input', { testid: 'new-project-name', size: 40, required: true, placeholder: 'e.g. chest-cr-triage-2027' });
  const k = h('input', { type: 'number', min: 1, max: 50, testid: 'new-project-k', value: chosen.readers_per_item });
  const err = h('p', { class: 'error', testid: 'new-project-error' });
  const cards = h('div', { class: 'templates' });
  const render = () => cards.replaceChildren(...templates.map((t) => templateCard(t, t === chosen, (c) => { chosen = c; k.value = c.readers_per_item; render(); })));
  render();
  mount(h('div', { class: 'page', testid: 'new-project' },
    h('h1', {}, 'New project from a template'),
    session.me?.is_admin ? '' : h('p', { class: 'error' }, 'Only a site admin creates projects; ask one, then manage it here.'),
    h('p', { class: 'muted' }, 'Settings and the label schema can be edited after creation; every schema change becomes a new version.'),
    cards,
    h('div', { class: 'row' }, h('label', {}, 'Project name', name), h('label', {}, 'Readers per item', k)),
    h('button', { class: 'primary', testid: 'new-project-create', onclick: async () => {
      err.textContent = '';
      try {
        const p = await post(`/api/project-templates/${chosen.id}/projects`, { name: name.value.trim(), readers_per_item: Number(k.value) });
        toast(`Project ${p.name} created from “${chosen.title}”.`);
        const me = await get('/api/auth/me'); // the creator is its owner now
        session.me = me;
        location.hash = `#/manage/${p.id}`;
      } catch (e) { err.textContent = e.status === 409 ? 'A project with this name exists.' : e.message; }
    } }, 'Create project'),
    err));
}
