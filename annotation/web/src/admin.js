// Site admin (#/manage/admin): users, site and project roles, deactivate, password reset, login audit.
import { get, patch, post } from './api.js';
import { h, mount, toast } from './dom.js';
import { session } from './main.js';

const when = (t) => (t ? `${t.replace('T', ' ').slice(0, 16)} UTC` : '');

function userRow(u, projects, reload) {
  const self = u.id === session.me.id;
  const act = (label, testid, fn) => h('button', { class: 'link', testid: `${testid}-${u.username}`, onclick: async () => {
    try { reload(await fn()); } catch (e) { toast(e.message, 'error'); }
  } }, label);
  const project = h('select', { testid: `role-project-${u.username}` }, projects.map((p) => h('option', { value: p.id }, p.name)));
  const role = h('select', { testid: `role-name-${u.username}` }, ['annotator', 'reviewer', 'data_owner', 'manager', 'owner'].map((r) => h('option', { value: r }, r)));
  return h('tr', { testid: `user-${u.username}`, class: u.is_active ? '' : 'muted' },
    h('td', {}, u.username, u.is_service ? ' (service)' : ''), h('td', {}, u.display_name),
    h('td', { testid: `user-active-${u.username}` }, u.is_active ? 'active' : 'deactivated'),
    h('td', {}, u.is_admin ? 'site admin' : ''),
    h('td', {}, u.memberships.map((m) => `${m.project_name}: ${m.role}${m.level ? ` (${m.level})` : ''}`).join('; ')),
    h('td', {}, when(u.last_login_at)), h('td', {}, u.live_sessions),
    h('td', {}, u.is_service ? 'service tokens: curate annotation token' : [
      self ? '' : act(u.is_active ? 'deactivate' : 'reactivate', 'toggle-active', () => patch(`/api/users/${u.id}`, { is_active: !u.is_active })), ' ',
      self ? '' : act(u.is_admin ? 'revoke admin' : 'make admin', 'toggle-admin', () => patch(`/api/users/${u.id}`, { is_admin: !u.is_admin })), ' ',
      act('reset password', 'reset', async () => {
        const r = await post(`/api/admin/users/${u.id}/reset-password`);
        return `New password for ${r.username} (shown once; their sessions were ended): ${r.password}`;
      }),
      projects.length ? h('span', { class: 'row' }, project, role, act('add role', 'add-role', () => post(`/api/projects/${project.value}/members`,
        { user_id: u.id, role: role.value, level: role.value === 'annotator' ? 'junior' : null }))) : '',
    ]));
}

// `notice`: a line to show after the reload (a reset password, which is never fetched again).
export async function adminPage(notice = '') {
  const reload = (text) => adminPage(typeof text === 'string' ? text : '');
  if (!session.me?.is_admin) {
    mount(h('div', { class: 'card' }, h('p', { class: 'error', testid: 'page-error' }, 'Site administration is for site admins.')));
    return;
  }
  const [users, projects, audit] = await Promise.all([get('/api/admin/users'), get('/api/projects'), get('/api/admin/logins')]);
  const shown = h('p', { class: 'invite-link', testid: 'reset-password' }, notice);
  const username = h('input', { testid: 'new-user-name', placeholder: 'username' });
  const display = h('input', { testid: 'new-user-display', placeholder: 'name shown' });
  const password = h('input', { type: 'password', testid: 'new-user-password', placeholder: 'password (10+ characters)', autocomplete: 'new-password' });
  mount(h('div', { class: 'page', testid: 'admin' },
    h('h1', {}, 'Site administration'),
    h('section', {}, h('h2', {}, 'Users'),
      h('table', { class: 'grid', testid: 'users' },
        h('tr', {}, ['user', 'name', 'state', 'site role', 'project roles', 'last login', 'live sessions', ''].map((c) => h('th', {}, c))),
        users.map((u) => userRow(u, projects, reload))),
      shown,
      h('h3', {}, 'New user'),
      h('div', { class: 'row' }, username, display, password,
        h('button', { class: 'primary', testid: 'new-user-create', onclick: async () => {
          try {
            await post('/api/users', { username: username.value.trim(), display_name: display.value, password: password.value });
            toast(`User ${username.value} created.`);
            reload();
          } catch (e) { toast(e.status === 409 ? 'That username is taken.' : e.message, 'error'); }
        } }, 'Create user'))),
    h('section', { testid: 'login-audit' }, h('h2', {}, 'Logins'),
      h('p', { class: 'muted' }, 'Logins whose session is still on record (logging out removes it) and failed logins still counted by the rate limit (a successful login clears its user\'s).'),
      h('table', { class: 'grid', testid: 'login-sessions' }, h('tr', {}, ['user', 'signed in', 'expires', ''].map((c) => h('th', {}, c))),
        audit.sessions.map((s) => h('tr', {}, h('td', {}, s.username), h('td', {}, when(s.started_at)), h('td', {}, when(s.expires_at)), h('td', {}, s.live ? 'live' : 'expired')))),
      h('h3', {}, 'Failed logins'),
      h('table', { class: 'grid', testid: 'login-failures' }, h('tr', {}, ['by', 'value', 'at'].map((c) => h('th', {}, c))),
        audit.failures.map((f) => h('tr', {}, h('td', {}, f.subject), h('td', {}, f.value), h('td', {}, when(f.at))))))));
}
