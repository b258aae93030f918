// The management view: renders the WebSocket snapshot, then applies acquired/released events.
const locks = new Map();
const main = document.getElementById('locks');
const connection = document.getElementById('connection');
const template = document.getElementById('lock-card');
const signIn = document.getElementById('sign-in');
const filter = document.getElementById('filter');

// AUTH_MODE=kubernetes: a bearer token, kept for this tab only. It travels in the Authorization
// header and, for the WebSocket, in Kubernetes' bearer subprotocol: never in a URL.
let token = sessionStorage.getItem('retrospective-token') ?? '';
/** What the signed-in user may do, per lock (GET api/me), and who they are. */
let permissions = {};
let me;

const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});
const api = (path, init = {}) =>
  fetch(path, {
    ...init,
    headers: { Accept: 'application/json', ...authHeaders(), ...init.headers },
  });

async function loadMe() {
  const res = await api('api/me');
  signIn.hidden = res.status !== 401;
  if (!res.ok) return false;
  const body = await res.json();
  permissions = body.locks;
  me = body.user;
  document.getElementById('user').textContent = me ? `signed in as ${me}` : '';
  locks.forEach((_, name) => render(name));
  return true;
}

signIn.addEventListener('submit', async (e) => {
  e.preventDefault();
  token = new FormData(signIn).get('token').trim();
  sessionStorage.setItem('retrospective-token', token);
  if (await loadMe()) socket?.close();
});

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m ${s % 60}s` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function card(name) {
  let el = main.querySelector(`[data-lock="${CSS.escape(name)}"]`);
  if (!el) {
    el = template.content.firstElementChild.cloneNode(true);
    el.dataset.lock = name;
    el.querySelector('.name').textContent = name;
    el.querySelector('.force').addEventListener('click', () => forceRelease(name));
    el.querySelector('.take').addEventListener('click', () => command(name, 'avail'));
    el.querySelector('.release').addEventListener('click', () => command(name, 'release'));
    el.querySelector('.history').addEventListener(
      'toggle',
      (e) => e.target.open && loadHistory(name),
    );
    main.append(el);
  }
  return el;
}

/** Shows only the locks whose name contains the filter's text. */
function applyFilter() {
  const text = filter.value.trim();
  for (const el of main.querySelectorAll('[data-lock]'))
    el.hidden = text !== '' && !el.dataset.lock.includes(text);
}
filter.addEventListener('input', applyFilter);

function render(name) {
  const lock = locks.get(name);
  const el = card(name);
  el.hidden = filter.value.trim() !== '' && !name.includes(filter.value.trim());
  const held = Boolean(lock.holder);
  const state = el.querySelector('.state');
  state.textContent = held ? 'held' : 'available';
  state.className = `state badge ${held ? 'held' : 'available'}`;
  el.querySelector('.holder').textContent = lock.holder ?? '—';
  el.querySelector('.last-editor').textContent = lock.lastEditor ?? '—';
  el.querySelector('.last-release').textContent = lock.releasedAt
    ? `${lock.releasedBy} at ${new Date(lock.releasedAt).toLocaleString()} (${lock.releaseReason})`
    : '—';
  el.querySelector('.waiting').textContent = lock.waiting?.length
    ? lock.waiting.map((w) => w.user).join(', ')
    : '—';
  el.querySelector('.content').textContent = lock.content || '(empty)';
  el.querySelector('.force').hidden = !(held && permissions[name]?.['force-release']);
  const mine = held && me !== undefined && lock.holder === me;
  el.querySelector('.take').hidden = !(me && permissions[name]?.hold && !mine);
  el.querySelector('.release').hidden = !mine;
  tick(name);
  if (el.querySelector('.history').open) loadHistory(name);
}

function tick(name) {
  const lock = locks.get(name);
  const since =
    lock.holder && lock.since ? (Date.now() - Date.parse(lock.since)) / 1000 : undefined;
  card(name).querySelector('.held-for').textContent = since === undefined ? '—' : duration(since);
}

/** Takes (waiting in line up to 5 minutes) or releases a lock over the WebSocket. */
function command(name, type) {
  if (socket?.readyState !== WebSocket.OPEN) return;
  const button = card(name).querySelector(type === 'avail' ? '.take' : '.release');
  button.disabled = true;
  button.textContent = type === 'avail' ? 'Waiting in line…' : 'Releasing…';
  socket.send(JSON.stringify({ type, lock: name, wait: 300, id: `${type}:${name}` }));
}

async function forceRelease(name) {
  const holder = locks.get(name)?.holder;
  if (!confirm(`Force-release ${name}, held by ${holder}? Their unsaved edits are lost.`)) return;
  const res = await api(`locks/${encodeURIComponent(name)}/release?force=true`, { method: 'POST' });
  if (!res.ok) alert((await res.json()).message);
}

async function loadHistory(name) {
  const list = card(name).querySelector('.timeline');
  const res = await api(`locks/${encodeURIComponent(name)}/history`);
  if (!res.ok) return;
  const { releases } = await res.json();
  list.replaceChildren(
    ...releases.map((r) => {
      const li = document.createElement('li');
      li.textContent = `${new Date(r.releasedAt).toLocaleString()}: ${r.lastEditor ?? r.releasedBy} (${r.reason}) — ${r.content.slice(0, 120)}`;
      return li;
    }),
  );
}

const handlers = {
  snapshot(msg) {
    for (const lock of msg.locks) {
      locks.set(lock.lock, lock);
      render(lock.lock);
    }
  },
  /** A lock declared while this page is open. */
  added(msg) {
    locks.set(msg.lock.lock, msg.lock);
    render(msg.lock.lock);
  },
  /** A lock deleted: its card goes. */
  removed(msg) {
    locks.delete(msg.lock);
    lastRelease.delete(msg.lock);
    main.querySelector(`[data-lock="${CSS.escape(msg.lock)}"]`)?.remove();
  },
  acquired(msg) {
    const lock = { ...locks.get(msg.lock), holder: msg.holder, since: msg.since, token: msg.token };
    locks.set(msg.lock, lock);
    render(msg.lock);
  },
  reply(msg) {
    const el = card(msg.lock);
    for (const [selector, label] of [
      ['.take', 'Take it, or wait in line'],
      ['.release', 'Release'],
    ]) {
      const button = el.querySelector(selector);
      button.disabled = false;
      button.textContent = label;
    }
    if (!msg.ok) alert(msg.message);
  },
  queue(msg) {
    locks.set(msg.lock, { ...locks.get(msg.lock), waiting: msg.waiting });
    render(msg.lock);
  },
  released(msg) {
    lastRelease.set(msg.lock, Math.max(msg.token, lastRelease.get(msg.lock) ?? 0));
    // A release missed while disconnected: the snapshot already shows what came after it.
    if (msg.replayed) return render(msg.lock);
    const prev = locks.get(msg.lock) ?? {};
    locks.set(msg.lock, {
      ...prev,
      holder: undefined,
      since: undefined,
      content: msg.content,
      lastEditor: msg.lastEditor,
      releasedBy: msg.releasedBy,
      releasedAt: msg.releasedAt,
      releaseReason: msg.reason,
    });
    render(msg.lock);
  },
};

/** The last release seen per lock: a reconnect asks for what came after it. */
const lastRelease = new Map();

/** The current WebSocket; closing it reconnects (with a new token, after signing in). */
let socket;

const base64url = (text) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '');

function connect(delay = 500) {
  const url = new URL('ws', location.href.replace(/^http/, 'ws'));
  const since = [...lastRelease].map(([lock, seen]) => `${lock}:${seen}`).join(',');
  if (since) url.searchParams.set('since', since);
  const protocols = token
    ? ['retrospective.v1', `base64url.bearer.authorization.k8s.io.${base64url(token)}`]
    : [];
  const ws = new WebSocket(url, protocols);
  socket = ws;
  ws.onopen = () => {
    connection.textContent = 'live';
    connection.className = 'badge online';
    delay = 500;
  };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    handlers[msg.type]?.(msg);
  };
  ws.onclose = () => {
    connection.textContent = 'reconnecting…';
    connection.className = 'badge offline';
    setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
  };
}

setInterval(() => locks.forEach((_, name) => tick(name)), 1000);
void loadMe();
connect();
