// The management view: a page of locks (GET locks, filtered by name), each followed live over one
// WebSocket subscribed to exactly those locks; a timeline of holds from each lock's history; and,
// for those who may hold a lock, take / edit / save / release in the page.
const pageSize = 50;
/** How many of the last releases a card shows with what they changed. */
const recentReleases = 3;

const locks = new Map();
/** Each shown lock's card element. */
const cards = new Map();
/** Each shown lock's releases, oldest first (GET locks/<name>/history, then `released` frames). */
const histories = new Map();
/** How many releases the server's history keeps (`kept`): a full one may not reach back a week. */
let kept = Infinity;
/** The longest timeline window: older releases are of no use to the page and are dropped. */
const longestWindowMs = 7 * 24 * 3600 * 1000;
/** Commands sent and not answered yet, by lock: their buttons wait for the reply. */
const pending = new Map();
const main = document.getElementById('locks');
const connection = document.getElementById('connection');
const template = document.getElementById('lock-card');
const signIn = document.getElementById('sign-in');
const filter = document.getElementById('filter');
const windowSelect = document.getElementById('window');
const pageNote = document.getElementById('page-note');
const listError = document.getElementById('list-error');
const nextPage = document.getElementById('next-page');
const firstPage = document.getElementById('first-page');

// AUTH_MODE=kubernetes: a bearer token, kept for this tab only. It travels in the Authorization
// header and, for the WebSocket, in Kubernetes' bearer subprotocol: never in a URL.
let token = sessionStorage.getItem('retrospective-token') ?? '';
/** What the signed-in user may do, per shown lock (GET api/me?locks=), and who they are. */
let permissions = {};
let me;

/** The locks of this page, and how it was listed: `all` when no filter or page cuts the list. */
let shown = [];
let showsAll = false;
/** Where this page starts (a `continue` of GET locks), and where the next one would. */
let pageStart = '';
let pageNext;

const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});
const api = (path, init = {}) =>
  fetch(path, {
    ...init,
    headers: { Accept: 'application/json', ...authHeaders(), ...init.headers },
  });
const lockPath = (name, verb) => `locks/${encodeURIComponent(name)}/${verb}`;

/** The message of a refused answer, whatever its body. */
async function refusal(res) {
  try {
    return (await res.json()).message ?? `${res.status} ${res.statusText}`;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

function showError(el, message) {
  el.textContent = message ?? '';
  el.hidden = !message;
}

/** Shows the form to sign in for a 401 to the token in use (not to one replaced since `sent`). */
function refusedToken(res, sent) {
  if (res.status === 401 && sent === token) signIn.hidden = false;
}

/** Answers of api/me older than the last one asked are dropped: the page may have moved on. */
let meAsked = 0;
async function loadMe() {
  if (shown.length === 0) return true;
  const asked = ++meAsked;
  const sent = token;
  const res = await api(`api/me?locks=${shown.map(encodeURIComponent).join(',')}`);
  if (asked !== meAsked) return true;
  refusedToken(res, sent);
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
  // Shown again when a listing, api/me or a history refuses this token (401).
  signIn.hidden = true;
  await list();
  for (const name of [...historyRefused]) if (cards.has(name)) void loadHistory(name);
});

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  return h ? `${h}h ${m}m ${s % 60}s` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

const time = (iso) => new Date(iso).toLocaleString();

function card(name) {
  let el = cards.get(name);
  if (!el) {
    el = template.content.firstElementChild.cloneNode(true);
    el.dataset.lock = name;
    el.querySelector('.name').textContent = name;
    el.querySelector('.force').addEventListener('click', () => forceRelease(name));
    el.querySelector('.take').addEventListener('click', () => command(name, 'avail'));
    el.querySelector('.release').addEventListener('click', () => command(name, 'release'));
    el.querySelector('.save').addEventListener('click', () => save(name, false));
    el.querySelector('.save-release').addEventListener('click', () => save(name, true));
    main.append(el);
    cards.set(name, el);
    void loadHistory(name);
  }
  return el;
}

/** Whether `name` is held past the threshold its alert uses (`heldTooLongSeconds`). */
function heldTooLong(lock) {
  return Boolean(
    lock.holder &&
    lock.since &&
    lock.heldTooLongSeconds &&
    Date.now() - Date.parse(lock.since) >= lock.heldTooLongSeconds * 1000,
  );
}

function render(name) {
  const lock = locks.get(name);
  if (!lock) return;
  const el = card(name);
  const held = Boolean(lock.holder);
  el.querySelector('.holder').textContent = lock.holder ?? '—';
  el.querySelector('.last-editor').textContent = lock.lastEditor ?? '—';
  el.querySelector('.last-release').textContent = lock.releasedAt
    ? `${lock.releasedBy} at ${time(lock.releasedAt)} (${lock.releaseReason})`
    : '—';
  el.querySelector('.content').textContent = lock.content || '(empty)';
  el.querySelector('.force').hidden = !(held && permissions[name]?.['force-release']);
  const mine = held && me !== undefined && lock.holder === me;
  el.querySelector('.take').hidden = !(me && permissions[name]?.hold && !mine);
  el.querySelector('.release').hidden = !mine;
  if (!pending.has(name)) resetButtons(name);
  const editor = el.querySelector('.editor');
  if (mine && editor.hidden) el.querySelector('textarea').value = lock.content ?? '';
  editor.hidden = !mine;
  el.querySelector('.content').hidden = mine;
  renderTimeline(name);
  tick(name);
  renderReleases(name);
}

/** What changes every second: held-for, held too long, how long each waiter waits, the live hold. */
function tick(name) {
  const lock = locks.get(name);
  const el = card(name);
  const now = Date.now();
  const since = lock.holder && lock.since ? (now - Date.parse(lock.since)) / 1000 : undefined;
  el.querySelector('.held-for').textContent = since === undefined ? '—' : duration(since);
  const tooLong = heldTooLong(lock);
  const state = el.querySelector('.state');
  state.textContent = lock.holder
    ? tooLong
      ? 'held too long'
      : 'held'
    : lock.provisioned === false
      ? 'not ready'
      : 'available';
  state.className = `state badge ${lock.holder ? 'held' : 'available'}${tooLong ? ' too-long' : ''}`;
  el.classList.toggle('too-long', tooLong);
  el.querySelector('.waiting').textContent = lock.waiting?.length
    ? lock.waiting
        .map((w) =>
          w.since ? `${w.user} (${duration((now - Date.parse(w.since)) / 1000)})` : w.user,
        )
        .join(', ')
    : '—';
  // The current hold grows; the rest of the timeline is drawn again only when it changes.
  const live = el.querySelector('.hold.live');
  if (Boolean(live) !== Boolean(lock.holder && lock.since)) return renderTimeline(name);
  if (!live) return;
  const span = Number(windowSelect.value) * 1000;
  const from = Math.max(Date.parse(lock.since), now - span);
  live.style.width = `${((now - from) / span) * 100}%`;
  live.classList.toggle('too-long', tooLong);
  live.title = `${lock.holder}: ${time(lock.since)} → now (${duration(since)}, still held)`;
  summarize(name, holdsOf(name, now));
}

/** The holds of a lock within the chosen window, oldest first, the current one last. */
function holdsOf(name, now) {
  const lock = locks.get(name);
  const span = Number(windowSelect.value) * 1000;
  const start = now - span;
  const threshold = (lock.heldTooLongSeconds ?? Infinity) * 1000;
  const holds = (histories.get(name) ?? [])
    .filter((r) => Date.parse(r.releasedAt) >= start)
    .map((r) => ({
      who: r.holder ?? r.lastEditor ?? r.releasedBy,
      from: Number.isFinite(Date.parse(r.acquiredAt)) ? Date.parse(r.acquiredAt) : undefined,
      to: Date.parse(r.releasedAt),
      reason: r.reason,
    }));
  if (lock.holder && lock.since)
    holds.push({ who: lock.holder, from: Date.parse(lock.since), to: now, live: true });
  return { holds, span, start, threshold };
}

/** "12 holds in the last day, 2 held too long; longest 25m 3s (ana)". */
function summarize(name, { holds, threshold }) {
  const el = card(name);
  const timed = holds.filter((h) => h.from !== undefined);
  const tooLong = timed.filter((h) => h.to - h.from >= threshold).length;
  const longest = timed.reduce((a, h) => (!a || h.to - h.from > a.to - a.from ? h : a), undefined);
  const label = windowSelect.selectedOptions[0]?.textContent ?? 'window';
  const entries = histories.get(name) ?? [];
  const start = Date.now() - Number(windowSelect.value) * 1000;
  // The server keeps the last `kept` releases: when those do not reach back to the window's
  // start, the count covers only what is kept.
  const cut =
    entries.length >= kept && Date.parse(entries[0].releasedAt) > start
      ? ` (history kept since ${time(entries[0].releasedAt)})`
      : '';
  const summary = holds.length
    ? `${holds.length} ${holds.length === 1 ? 'hold' : 'holds'} in the ${label}` +
      (tooLong ? `, ${tooLong} held too long` : '') +
      (longest
        ? `; longest ${duration((longest.to - longest.from) / 1000)} (${longest.who})`
        : '') +
      cut
    : `No holds in the ${label}${cut}`;
  el.querySelector('.timeline-summary').textContent = summary;
  el.querySelector('.timeline').setAttribute('aria-label', summary);
}

/** The holds of a lock over the chosen window: one bar per hold, the current one growing. */
function renderTimeline(name) {
  const el = card(name);
  const now = Date.now();
  const seen = holdsOf(name, now);
  const { holds, span, start, threshold } = seen;
  const items = holds.map((h) => {
    const item = document.createElement('span');
    const from = h.from === undefined ? h.to : Math.max(h.from, start);
    const length = h.from === undefined ? undefined : h.to - h.from;
    item.className = `hold${h.from === undefined ? ' mark' : ''}${length >= threshold ? ' too-long' : ''}${h.live ? ' live' : ''}`;
    item.style.left = `${((from - start) / span) * 100}%`;
    if (h.from !== undefined) item.style.width = `${((h.to - from) / span) * 100}%`;
    item.dataset.holder = h.who;
    item.title =
      h.from === undefined
        ? `${h.who}: released at ${time(new Date(h.to))} (${h.reason}; when it was taken is not recorded)`
        : `${h.who}: ${time(new Date(h.from))} → ${h.live ? 'now' : time(new Date(h.to))} (${duration(length / 1000)}${h.live ? ', still held' : ''})`;
    return item;
  });
  el.querySelector('.timeline').replaceChildren(...items);
  summarize(name, seen);
  el.querySelector('.axis-start').textContent = {
    3600: 'an hour ago',
    86400: 'a day ago',
    604800: 'a week ago',
  }[windowSelect.value];
}

/**
 * The lines that differ between two texts, as `+`/`-` lines (a longest-common-subsequence diff of
 * lines, after the common start and end; texts too large to compare say only how many lines).
 */
function diffLines(before, after) {
  const a = before === '' ? [] : before.split('\n');
  const b = after === '' ? [] : after.split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  if (x.length * y.length > 40_000)
    return [
      ['-', `(${x.length} lines)`],
      ['+', `(${y.length} lines)`],
    ];
  const lcs = Array.from({ length: x.length + 1 }, () => new Uint16Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      i++;
      j++;
    } else if (j < y.length && (i === x.length || lcs[i][j + 1] >= lcs[i + 1][j]))
      out.push(['+', y[j++]]);
    else out.push(['-', x[i++]]);
  }
  return out;
}

/** The last releases, newest first, each with what it changed in the content. */
function renderReleases(name) {
  const entries = histories.get(name) ?? [];
  const list = card(name).querySelector('.releases');
  const items = entries
    .map((entry, i) => ({ entry, before: i > 0 ? entries[i - 1].content : undefined }))
    .slice(-recentReleases)
    .reverse()
    .map(({ entry, before }) => {
      const li = document.createElement('li');
      const head = document.createElement('div');
      const held = entry.acquiredAt
        ? ` after ${duration((Date.parse(entry.releasedAt) - Date.parse(entry.acquiredAt)) / 1000)}`
        : '';
      const by =
        entry.holder && entry.holder !== entry.releasedBy ? ` (held by ${entry.holder})` : '';
      head.textContent = `${time(entry.releasedAt)}: ${entry.releasedBy} (${entry.reason})${by}${held}`;
      const diff = document.createElement('pre');
      diff.className = 'diff';
      const lines = before === undefined ? undefined : diffLines(before, entry.content);
      if (lines === undefined) diff.textContent = entry.content.slice(0, 400) || '(empty)';
      else if (lines.length === 0) diff.textContent = 'no change to the content';
      else
        diff.replaceChildren(
          ...lines.slice(0, 20).map(([op, text]) => {
            const line = document.createElement(op === '+' ? 'ins' : 'del');
            line.textContent = `${op} ${text}\n`;
            return line;
          }),
          ...(lines.length > 20 ? [`… ${lines.length - 20} more changed lines\n`] : []),
        );
      li.append(head, diff);
      return li;
    });
  list.replaceChildren(...items);
  const details = card(name).querySelector('.history');
  details.hidden = items.length === 0;
}

/** A lock's releases within the longest window, at most 500 (the most a server keeps). */
const trimmed = (entries) =>
  entries.filter((e) => Date.parse(e.releasedAt) >= Date.now() - longestWindowMs).slice(-500);

/** Each shown lock's history load, by its AbortController: aborted when the lock goes, or anew. */
const historyLoads = new Map();
/** Shown locks whose recorded history was refused (401, 403): asked again after a sign-in. */
const historyRefused = new Set();

/** Answers worth asking again: the server or a proxy failing, or busy (408, 429, 5xx). */
const transient = (status) => status === 408 || status === 429 || status >= 500;

/** Resolves after `ms`, or at once when `signal` aborts. */
const pause = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

async function loadHistory(name) {
  historyLoads.get(name)?.abort();
  const load = new AbortController();
  historyLoads.set(name, load);
  for (let attempt = 0; ; attempt++) {
    const signal = AbortSignal.any([load.signal, AbortSignal.timeout(30_000)]);
    let status = 0; // no answer, or no whole body
    let hinted = 0;
    let body;
    const sent = token;
    try {
      const res = await api(lockPath(name, 'history'), { signal });
      hinted = Math.min(Number(res.headers.get('Retry-After')) || 0, 300);
      if (res.ok) body = await res.json();
      status = res.status;
    } catch {
      // asked again below, unless stopped
    }
    if (load.signal.aborted) return; // no longer shown, or loading anew
    if (status === 401 && sent !== token) continue; // at once, with the token signed in since
    if (status !== 0 && !transient(status)) {
      if (historyLoads.get(name) === load) historyLoads.delete(name);
      if (status === 401 || status === 403) historyRefused.add(name);
      else historyRefused.delete(name);
      // A token that lapsed: the form to sign in again (which asks for this history anew).
      if (status === 401) signIn.hidden = false;
      if (body) showHistory(name, body);
      return;
    }
    // The replica has not read the recorded histories yet (it just started: 503), or the network,
    // a proxy or the API server failed: again for as long as the lock is shown, never before the
    // server's Retry-After, and otherwise later each time (2 s, doubling up to 30 s, +-20%).
    const backoff = Math.min(2 * 2 ** attempt, 30) * (0.8 + 0.4 * Math.random());
    await pause(Math.max(hinted, backoff) * 1000, load.signal);
    if (load.signal.aborted) return;
  }
}

function showHistory(name, body) {
  if (!locks.has(name) || !Array.isArray(body?.releases)) return;
  if (Number.isInteger(body.kept)) kept = body.kept;
  // Releases seen live while this was loading are kept.
  const seen = new Set(body.releases.map((r) => r.token));
  const live = (histories.get(name) ?? []).filter((r) => !seen.has(r.token));
  histories.set(name, trimmed([...body.releases, ...live].sort((a, b) => a.token - b.token)));
  render(name);
}

const buttonLabels = { '.take': 'Take it, or wait in line', '.release': 'Release' };
function resetButtons(name) {
  const el = card(name);
  for (const [selector, label] of Object.entries(buttonLabels)) {
    const button = el.querySelector(selector);
    button.disabled = false;
    button.textContent = label;
  }
}

/** The socket is replaced or lost: commands waiting for a reply are over (the server ends them). */
function abandonPending() {
  for (const [name, type] of pending) {
    if (!cards.has(name)) continue;
    resetButtons(name);
    showError(
      card(name).querySelector('.error'),
      type === 'avail'
        ? 'Your wait in line ended when the page reconnected or changed its locks: take it again.'
        : 'The connection changed before the release was confirmed: check the state and try again.',
    );
  }
  pending.clear();
}

/** Takes (waiting in line up to 5 minutes) or releases a lock over the WebSocket. */
function command(name, type) {
  const el = card(name);
  if (socket?.readyState !== WebSocket.OPEN)
    return showError(el.querySelector('.error'), 'Not connected: try again in a moment.');
  showError(el.querySelector('.error'));
  const button = el.querySelector(type === 'avail' ? '.take' : '.release');
  pending.set(name, type);
  button.disabled = true;
  button.textContent = type === 'avail' ? 'Waiting in line…' : 'Releasing…';
  socket.send(JSON.stringify({ type, lock: name, wait: 300, id: `${type}:${name}` }));
}

/** Saves the text area's content, pinned to this hold's token; and releases the lock with it. */
async function save(name, release) {
  const el = card(name);
  const lock = locks.get(name);
  const text = el.querySelector('textarea').value;
  const buttons = [...el.querySelectorAll('.editor button')];
  buttons.forEach((b) => (b.disabled = true));
  showError(el.querySelector('.error'));
  try {
    const res = await api(lockPath(name, release ? 'release' : 'change'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'If-Match': String(lock.token) },
      body: JSON.stringify({ retrospective: text }),
    });
    if (!res.ok) return showError(el.querySelector('.error'), await refusal(res));
    if (!release) {
      locks.set(name, { ...locks.get(name), content: text, lastEditor: me });
      render(name);
    }
  } catch (error) {
    showError(el.querySelector('.error'), `Not saved: ${error.message}`);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

async function forceRelease(name) {
  const el = card(name);
  const { holder, token: held } = locks.get(name) ?? {};
  if (!confirm(`Force-release ${name}, held by ${holder}? Their unsaved edits are lost.`)) return;
  // Pinned to the hold shown: a lock granted again meanwhile is not ended by mistake.
  const res = await api(`${lockPath(name, 'release')}?force=true`, {
    method: 'POST',
    headers: { 'If-Match': String(held) },
  });
  showError(el.querySelector('.error'), res.ok ? undefined : await refusal(res));
}

function forget(name) {
  historyLoads.get(name)?.abort();
  historyLoads.delete(name);
  historyRefused.delete(name);
  locks.delete(name);
  histories.delete(name);
  lastRelease.delete(name);
  pending.delete(name);
  cards.get(name)?.remove();
  cards.delete(name);
}

/** Runs `fn` once, `ms` after the last of a burst of calls. */
function debounced(fn, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}
const relist = debounced(() => void list(), 300);
const reloadMe = debounced(() => void loadMe(), 300);

const handlers = {
  snapshot(msg) {
    for (const lock of msg.locks) {
      locks.set(lock.lock, lock);
      render(lock.lock);
    }
    // In the listing's order (by name).
    for (const name of shown) {
      const el = cards.get(name);
      if (el) main.append(el);
    }
  },
  /** A lock declared while this page is open (sent when this page follows every lock). */
  added(msg) {
    const text = filter.value.trim();
    if (text && !msg.lock.lock.includes(text)) return;
    // A full page lists again (in name order, with a next page) rather than growing past 50.
    if (!shown.includes(msg.lock.lock) && shown.length >= pageSize) return relist();
    locks.set(msg.lock.lock, msg.lock);
    if (!shown.includes(msg.lock.lock)) shown = [...shown, msg.lock.lock];
    render(msg.lock.lock);
    reloadMe();
  },
  /** A lock deleted: its card goes. */
  removed(msg) {
    forget(msg.lock);
    shown = shown.filter((name) => name !== msg.lock);
  },
  acquired(msg) {
    const lock = { ...locks.get(msg.lock), holder: msg.holder, since: msg.since, token: msg.token };
    locks.set(msg.lock, lock);
    render(msg.lock);
  },
  reply(msg) {
    if (!msg.lock || !cards.has(msg.lock)) return;
    // A `busy` refusal answers a second command; the first still waits for its reply.
    if (msg.error !== 'busy') pending.delete(msg.lock);
    if (!pending.has(msg.lock)) resetButtons(msg.lock);
    showError(card(msg.lock).querySelector('.error'), msg.ok ? undefined : msg.message);
  },
  queue(msg) {
    locks.set(msg.lock, { ...locks.get(msg.lock), waiting: msg.waiting });
    render(msg.lock);
  },
  released(msg) {
    if (!locks.has(msg.lock)) return;
    lastRelease.set(msg.lock, Math.max(msg.token, lastRelease.get(msg.lock) ?? 0));
    const entries = histories.get(msg.lock) ?? [];
    if (!entries.some((e) => e.token === msg.token)) {
      const entry = {
        token: msg.token,
        lastEditor: msg.lastEditor,
        releasedBy: msg.releasedBy,
        releasedAt: msg.releasedAt,
        reason: msg.reason,
        content: msg.content,
        holder: msg.holder,
        acquiredAt: msg.acquiredAt,
      };
      histories.set(msg.lock, trimmed([...entries, entry].sort((a, b) => a.token - b.token)));
    }
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

/** The current WebSocket; replacing it (new page of locks, new token) closes the old one. */
let socket;
let retry;

const base64url = (text) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '');

function connect(delay = 500) {
  clearTimeout(retry);
  const url = new URL('ws', location.href.replace(/^http/, 'ws'));
  // A page that shows every lock follows every lock (those declared later too); otherwise
  // exactly the locks shown, so a viewer of 50 locks of 1,000 is sent nothing of the others.
  if (!showsAll) url.searchParams.set('locks', shown.join(','));
  const since = [...lastRelease]
    .filter(([lock]) => shown.includes(lock))
    .map(([lock, seen]) => `${lock}:${seen}`)
    .join(',');
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
    if (socket !== ws) return;
    const msg = JSON.parse(e.data);
    handlers[msg.type]?.(msg);
  };
  ws.onclose = () => {
    if (socket !== ws) return; // replaced by a socket for another page of locks
    abandonPending();
    connection.textContent = 'reconnecting…';
    connection.className = 'badge offline';
    // The locks may have changed meanwhile (declared, deleted): list them again first.
    retry = setTimeout(() => void list(Math.min(delay * 2, 10_000)), delay);
  };
}

/**
 * Lists the page of locks the filter selects (GET locks), drops the cards of others, asks what
 * the user may do to these, and follows exactly these on a new WebSocket.
 */
/** Listings older than the last one started are dropped (typing, paging and relisting overlap). */
let listed = 0;
async function list(delay) {
  clearTimeout(retry);
  const asked = ++listed;
  const text = filter.value.trim();
  const query = new URLSearchParams({ limit: String(pageSize) });
  if (text) query.set('search', text);
  if (pageStart) query.set('continue', pageStart);
  let body;
  try {
    const sent = token;
    const res = await api(`locks?${query}`);
    if (asked !== listed) return; // a later listing follows
    refusedToken(res, sent);
    if (!res.ok) {
      showError(listError, await refusal(res));
      if (delay !== undefined)
        retry = setTimeout(() => void list(Math.min(delay * 2, 10_000)), delay);
      return;
    }
    body = await res.json();
  } catch (error) {
    showError(listError, `Cannot list the locks: ${error.message}`);
    if (delay !== undefined)
      retry = setTimeout(() => void list(Math.min(delay * 2, 10_000)), delay);
    return;
  }
  if (asked !== listed) return; // a later listing follows
  showError(listError);
  const names = body.locks.map((l) => l.lock);
  pageNext = body.continue;
  showsAll = !text && !pageStart && !pageNext;
  for (const name of [...locks.keys()]) if (!names.includes(name)) forget(name);
  shown = names;
  nextPage.hidden = !pageNext;
  firstPage.hidden = !pageStart;
  pageNote.hidden = !(pageNext || pageStart);
  pageNote.textContent = `Showing ${names.length} locks${pageStart ? ` after ${pageStart}` : ''}: filter by name to find others.`;
  if (names.length === 0) {
    showError(
      listError,
      pageStart
        ? `No more locks after ${pageStart}.`
        : text
          ? `No lock's name contains "${text}".`
          : 'No locks are served yet.',
    );
    abandonPending();
    const old = socket;
    socket = undefined;
    old?.close();
    connection.textContent = 'no locks';
    connection.className = 'badge offline';
    // Nothing to follow: look again in a while (a lock may be declared meanwhile).
    retry = setTimeout(() => void list(), 10_000);
    return;
  }
  // A declared lock whose Lease is not made yet: shown as such until its `added` frame.
  for (const item of body.locks)
    if (item.provisioned === false && !locks.has(item.lock)) {
      locks.set(item.lock, { lock: item.lock, provisioned: false });
      render(item.lock);
    }
  await loadMe();
  if (asked !== listed) return;
  abandonPending();
  const old = socket;
  connect(delay);
  old?.close();
}

let typing;
filter.addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    pageStart = '';
    void list();
  }, 250);
});
nextPage.addEventListener('click', () => {
  pageStart = pageNext ?? '';
  void list();
});
firstPage.addEventListener('click', () => {
  pageStart = '';
  void list();
});
// A stored window that is not one of the choices (an older page's) is left at the default.
const storedWindow = localStorage.getItem('retrospective-window');
if ([...windowSelect.options].some((o) => o.value === storedWindow))
  windowSelect.value = storedWindow;
windowSelect.addEventListener('change', () => {
  localStorage.setItem('retrospective-window', windowSelect.value);
  locks.forEach((_, name) => renderTimeline(name));
});

setInterval(() => locks.forEach((_, name) => tick(name)), 1000);
// The window slides: the timelines are drawn again every half minute.
setInterval(() => locks.forEach((_, name) => renderTimeline(name)), 30_000);
void list(500);
