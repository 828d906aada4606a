// Hash router of the single-page app: login, invite, task list, viewer, review, management.
import './style.css';
import { ApiError, get, post } from './api.js';
import { h, mount, toast } from './dom.js';
import { manageProject } from './manage.js';
import { startCase } from './first_case.js';

export const session = { me: null };
let viewerModule = null; // the reading viewer, once imported

async function loadMe() {
  try {
    session.me = await get('/api/auth/me');
  } catch (e) {
    session.me = null;
  }
  renderTopbar();
  return session.me;
}

function roles(pid) {
  return new Set((session.me?.memberships || []).filter((m) => m.project_id === pid).map((m) => m.role));
}
export function can(pid, what) {
  if (session.me?.is_admin) return true;
  const r = roles(pid);
  const any = (...xs) => xs.some((x) => r.has(x));
  return {
    manage: any('owner', 'manager'),
    review: any('owner', 'manager', 'reviewer'),
    export: any('owner', 'manager', 'data_owner'),
    progress: any('owner', 'manager', 'data_owner'),
    read: any('annotator', 'reviewer'),
  }[what];
}

function renderTopbar() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!session.me) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  nav.replaceChildren(h('a', { href: '#/tasks', testid: 'nav-tasks' }, 'Tasks'));
  who.replaceChildren(
    `${session.me.display_name || session.me.username}`,
    h('button', { class: 'link', testid: 'logout', onclick: logout }, 'Log out'),
  );
}

async function logout() {
  try {
    await post('/api/auth/logout');
  } catch (e) {
    /* already gone */
  }
  session.me = null;
  location.hash = '#/login';
}

function loginPage() {
  const user = h('input', { name: 'username', autocomplete: 'username', testid: 'login-username', required: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', testid: 'login-password', required: true });
  const err = h('p', { class: 'error', testid: 'login-error' });
  const form = h('form', {
    class: 'card narrow',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await post('/api/auth/login', { username: user.value, password: pass.value });
        await loadMe();
        location.hash = '#/tasks';
      } catch (e) {
        err.textContent = e.status === 429 ? 'Too many attempts; wait a few minutes.' : 'Wrong username or password.';
      }
    },
  },
  h('h1', {}, 'Sign in'),
  h('label', {}, 'Username', user),
  h('label', {}, 'Password', pass),
  h('button', { type: 'submit', testid: 'login-submit' }, 'Sign in'),
  err);
  mount(form);
}

async function invitePage(token) {
  let info;
  try {
    info = await get(`/api/invites/${encodeURIComponent(token)}`);
  } catch (e) {
    mount(h('div', { class: 'card narrow' }, h('h1', {}, 'Invite'), h('p', { class: 'error', testid: 'invite-error' },
      e.status === 410 ? 'This invite was already used or has expired.' : 'Unknown invite link.')));
    return;
  }
  const user = h('input', { name: 'username', autocomplete: 'username', testid: 'invite-username', required: true });
  const name = h('input', { name: 'display_name', testid: 'invite-display-name' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 10, testid: 'invite-password', required: true });
  const pass2 = h('input', { name: 'password2', type: 'password', autocomplete: 'new-password', testid: 'invite-password2', required: true });
  const err = h('p', { class: 'error', testid: 'invite-error' });
  mount(h('form', {
    class: 'card narrow',
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (pass.value !== pass2.value) {
        err.textContent = 'The passwords differ.';
        return;
      }
      try {
        await post(`/api/invites/${encodeURIComponent(token)}/accept`, { username: user.value, password: pass.value, display_name: name.value });
        history.replaceState(null, '', '#/tasks'); // drop the token from the address bar and history
        await loadMe();
        route();
      } catch (e) {
        err.textContent = e.status === 409 ? 'That username is taken.' : e.status === 422 ? 'Username 3-64 letters/digits; password at least 10 characters.' : e.message;
      }
    },
  },
  h('h1', {}, `Join “${info.project_name}”`),
  h('p', {}, `You are invited as ${info.role}${info.level ? ` (${info.level})` : ''}. Choose a username and a password.`),
  h('label', {}, 'Username', user),
  h('label', {}, 'Name shown to managers (optional)', name),
  h('label', {}, 'Password (10+ characters)', pass),
  h('label', {}, 'Password again', pass2),
  h('button', { type: 'submit', testid: 'invite-submit' }, 'Join and start'),
  err));
}

async function tasksPage() {
  const data = await get('/api/tasks');
  const projects = await get('/api/projects');
  const progress = h('table', { class: 'grid', testid: 'my-progress' },
    h('tr', {}, h('th', {}, 'Project'), h('th', {}, 'Submitted'), h('th', {}, 'Skipped'), h('th', {}, 'Left for me')),
    data.progress.map((p) => h('tr', {}, h('td', {}, p.project_name), h('td', {}, p.submitted), h('td', {}, p.skipped), h('td', {}, p.open_for_me))));
  const projectLinks = projects.map((p) => h('li', {},
    h('strong', {}, p.name), ' ',
    can(p.id, 'read') ? h('a', { href: `#/task?project=${p.id}`, testid: `start-${p.id}` }, 'Next task') : '', ' ',
    can(p.id, 'review') ? h('a', { href: `#/review/${p.id}`, testid: `review-${p.id}` }, 'Review') : '', ' ',
    (can(p.id, 'manage') || can(p.id, 'export')) ? h('a', { href: `#/manage/${p.id}`, testid: `manage-${p.id}` }, 'Manage') : ''));
  const list = h('table', { class: 'grid', testid: 'task-list' },
    h('tr', {}, h('th', {}, 'Task'), h('th', {}, 'Project'), h('th', {}, 'Kind'), h('th', {}, 'Status'), h('th', {}, 'Submitted'), h('th', {}, '')),
    data.tasks.map((t) => h('tr', { testid: `task-row-${t.id}` },
      h('td', {}, t.status === 'assigned' ? h('a', { href: `#/task?id=${t.id}` }, `#${t.id}`) : `#${t.id}`),
      h('td', {}, t.project_name), h('td', {}, t.kind), h('td', {}, t.status), h('td', {}, t.submitted_at ? t.submitted_at.replace('T', ' ').slice(0, 16) : ''),
      h('td', {}, t.reopenable ? h('button', { class: 'link', testid: `reopen-${t.id}`, title: 'Change this reading (until the round closes); the earlier one is kept on record',
        onclick: () => reopen(t.id) }, 'Reopen') : ''))));
  const anyReader = projects.some((p) => can(p.id, 'read'));
  mount(h('div', { class: 'page' },
    h('h1', {}, 'My tasks'),
    anyReader ? h('p', {}, h('a', { class: 'button', href: '#/task', testid: 'next-task' }, 'Start reading (next task)'), ' Keyboard: see the help in the viewer.') : '',
    h('h2', {}, 'Projects'), h('ul', {}, projectLinks),
    h('h2', {}, 'Progress'), progress,
    h('h2', {}, 'Recent tasks'), list));
}

// A submitted reading back in the reader's hands, opened in the viewer with what was submitted.
async function reopen(taskId) {
  try {
    await post(`/api/tasks/${taskId}/reopen`);
    location.hash = `#/task?id=${taskId}`;
  } catch (e) {
    toast(e.message, 'error');
    route();
  }
}

async function route() {
  const hash = location.hash || '#/tasks';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  // first task page of the visit: claim the case and fetch its first image while the viewer's code loads
  // (signed out, the claim answers 401 and the login page follows as before)
  const early = parts[0] === 'task' && !viewerModule ? startCase(params) : null;
  try {
    if (parts[0] === 'invite' && parts[1]) return await invitePage(parts[1]);
    if (parts[0] === 'login') return loginPage();
    if (!session.me && !(await loadMe())) {
      location.hash = '#/login';
      return;
    }
    if (parts[0] === 'task') {
      viewerModule ||= await import('./viewer.js'); // Cornerstone loads only where it is needed
      return await viewerModule.viewerPage(params, early);
    }
    if (parts[0] === 'review') {
      // review pages paint masks through segmentation.js, which needs Cornerstone: loaded only here, so
      // the login, task list and first case do not parse it in the main chunk
      const { reviewItem, reviewProject } = await import('./review.js');
      if (parts[2] === 'item') return await reviewItem(Number(parts[1]), Number(parts[3]));
      return await reviewProject(Number(parts[1]));
    }
    if (parts[0] === 'manage') return await manageProject(Number(parts[1]));
    return await tasksPage();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.me = null;
      location.hash = '#/login';
      return;
    }
    console.error(e);
    toast(e.message || String(e), 'error');
    mount(h('div', { class: 'card' }, h('p', { class: 'error', testid: 'page-error' }, e.message || String(e))));
  }
}

window.addEventListener('hashchange', () => {
  window.dispatchEvent(new Event('app:leave'));
  route();
});
route();
