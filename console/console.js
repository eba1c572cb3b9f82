// rapport web console: sign in with a secret key, find a profile by one identifier, and show
// who the person is — identities (and why each belongs), traits, computed traits, segments and
// timeline. Plain DOM, no framework. Every value that comes from the API is personal data and
// reaches the page only as text (textContent / text nodes), never as markup.

const KEY_STORAGE = 'rapport.console.secretKey';
const TIMELINE_PAGE = 50;
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

const $ = (id) => document.getElementById(id);
let searchSeq = 0; // the latest search (or sign-out) wins when answers arrive out of order

// ---- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// GET an /api/v1 path with the secret key; resolves with the JSON body of a 2xx answer and
// rejects with an ApiError carrying the API's {"error": {code, message, field}} otherwise.
async function api(path, key = sessionStorage.getItem(KEY_STORAGE)) {
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Is rapport running?');
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: reported below */ }
  if (res.ok && body !== null) return body;
  const err = body && body.error;
  if (err && typeof err.message === 'string') throw new ApiError(res.status, err.code, err.message, err.field);
  throw new ApiError(res.status, 'http', `The server answered ${res.status} ${res.statusText}`.trim());
}

// ---- small DOM helpers ---------------------------------------------------------------------

// el('td', {class: 'x', testid: 'y'}, 'text', childNode, …): strings become text nodes.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'testid') node.dataset.testid = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(node, message) {
  node.textContent = message || '';
  node.hidden = !message;
}

function formatTime(iso) {
  if (typeof iso !== 'string' || iso === '') return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function timeEl(iso) {
  return el('time', { datetime: iso, title: iso }, formatTime(iso));
}

// A JSON value as one line: strings as they are, everything else as JSON text.
function asText(value) {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  return JSON.stringify(value);
}

// Objects compactly: `recency_days 3 · frequency 2 · monetary 80.5`.
function compact(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return asText(value);
  const parts = Object.entries(value).map(([k, v]) => `${k} ${asText(v)}`);
  return parts.length ? parts.join(' · ') : '{}';
}

// ---- session --------------------------------------------------------------------------------

async function signIn(key) {
  const who = await api('/api/v1/whoami', key);
  if (who.kind && who.kind !== 'secret') {
    throw new ApiError(403, 'not_a_secret_key', `This is a ${who.kind} key; the console needs a secret key (sk_…).`);
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  const label = `${who.workspace ?? 'workspace'}` + (who.kind ? ` · ${who.kind} key` : '');
  $('whoami').textContent = label;
  if (Array.isArray(who.scopes)) $('whoami').title = `scopes: ${who.scopes.join(', ')}`;
  showSignedIn();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  searchSeq++; // answers still in flight are for the previous session: drop them
  $('whoami').textContent = '';
  $('session').hidden = true;
  $('workspace').hidden = true;
  $('profile').hidden = true;
  clearProfile();
  showError($('search-error'), '');
  $('login').hidden = false;
  $('login-key').value = '';
  showError($('login-error'), message);
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  $('login-key').focus();
}

function showSignedIn() {
  $('login').hidden = true;
  showError($('login-error'), '');
  $('login-key').value = '';
  $('session').hidden = false;
  $('workspace').hidden = false;
  $('search-value').focus();
}

// A 401 while signed in means the key stopped working (revoked, or the workspace is gone).
function handleFatal(err) {
  if (err instanceof ApiError && err.status === 401) {
    signOut(`Signed out: ${err.message}`);
    return true;
  }
  return false;
}

// ---- search ---------------------------------------------------------------------------------

function lookupQuery() {
  const type = $('search-type').value;
  const value = $('search-value').value.trim();
  if (!value) return { error: 'Enter a value to look up.' };
  if (type === 'other') {
    const custom = $('search-custom-type').value.trim();
    if (!custom) return { error: 'Enter the identifier type (as sent in context.externalIds).' };
    return { query: new URLSearchParams({ type: custom, value }), label: `${custom} ${value}` };
  }
  return { query: new URLSearchParams({ [type]: value }), label: `${type} ${value}` };
}

async function search(event) {
  event.preventDefault();
  const { query, label, error } = lookupQuery();
  if (error) return showError($('search-error'), error);
  const seq = ++searchSeq;
  const button = $('search-form').querySelector('button[type=submit]');
  button.disabled = true;
  $('profile').setAttribute('aria-busy', 'true');
  try {
    const profile = await api(`/api/v1/profiles/lookup?${query}`);
    if (seq !== searchSeq) return;
    showError($('search-error'), '');
    await showProfile(profile, seq);
  } catch (err) {
    if (seq !== searchSeq || handleFatal(err)) return;
    $('profile').hidden = true;
    clearProfile();
    const message = err.code === 'profile_not_found' ? `No profile has ${label}.` : err.message;
    showError($('search-error'), message);
  } finally {
    button.disabled = false;
    $('profile').removeAttribute('aria-busy');
  }
}

// Opens the profile named in the address (#profile=12) after a reload.
async function openFromHash() {
  const m = /^#profile=(\d+)$/.exec(location.hash);
  if (!m) return;
  const seq = ++searchSeq;
  try {
    const profile = await api(`/api/v1/profiles/${m[1]}`);
    if (seq === searchSeq) await showProfile(profile, seq);
  } catch (err) {
    if (seq === searchSeq && !handleFatal(err)) showError($('search-error'), err.message);
  }
}

// ---- profile card ---------------------------------------------------------------------------

let timelineCursor = null;
let timelineProfile = null;

function clearProfile() {
  for (const id of ['profile-facts', 'identities-body', 'merges-list', 'blocked-list', 'traits-body',
    'computed-body', 'segments-list', 'timeline-list']) {
    $(id).replaceChildren();
  }
  showError($('timeline-error'), '');
  $('timeline-more').hidden = true;
  timelineCursor = null;
  timelineProfile = null;
}

async function showProfile(profile, seq) {
  const id = encodeURIComponent(profile.id);
  const [identities, timeline] = await Promise.all([
    api(`/api/v1/profiles/${id}/identities`),
    api(`/api/v1/profiles/${id}/events?limit=${TIMELINE_PAGE}`),
  ]);
  if (seq !== searchSeq) return;
  clearProfile();
  renderHeader(profile);
  renderIdentities(identities);
  renderTraits(profile.traits);
  // A key restricted to purposes without analytics is not shown computed traits or segments
  // (docs/api/keys.md#purposes): say so rather than show them empty.
  const hidden = profile.restricted_to && profile.computed === undefined
    ? `Hidden: this key is restricted to ${profile.restricted_to.join(', ')}.` : null;
  renderComputed(profile.computed, hidden);
  renderSegments(profile.segments, hidden);
  timelineProfile = profile.id;
  appendTimeline(timeline);
  $('profile').hidden = false;
  history.replaceState(null, '', `#profile=${id}`);
}

function renderHeader(p) {
  $('profile-id').textContent = p.id;
  const merged = $('profile-merged');
  merged.hidden = !p.merged_from;
  merged.textContent = p.merged_from ? `Profile ${p.merged_from} was merged into this profile.` : '';
  const facts = [
    ['First seen', timeEl(p.first_seen)],
    ['Last seen', timeEl(p.last_seen)],
    ['Events', String(p.event_count ?? 0)],
  ];
  if (p.blocked_links) facts.push(['Blocked links', String(p.blocked_links)]);
  $('profile-facts').replaceChildren(...facts.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v))));
}

function emptyRow(columns, text) {
  return el('tr', { class: 'empty' }, el('td', { colspan: columns }, text));
}

function renderIdentities(data) {
  const rows = (data.identities || []).map((i) => el('tr', { testid: 'identity-row' },
    el('td', { testid: 'identity-type', 'data-label': 'Type' }, el('code', {}, i.type)),
    el('td', { testid: 'identity-value', 'data-label': 'Value', class: 'value' }, i.value),
    el('td', { testid: 'identity-reason', 'data-label': 'Why linked' }, i.reason),
    el('td', { testid: 'identity-source', 'data-label': 'Source' }, el('code', {}, i.source)),
    el('td', { testid: 'identity-linked', 'data-label': 'Linked' }, timeEl(i.linked_at))));
  $('identities-body').replaceChildren(...(rows.length ? rows : [emptyRow(5, 'No identifiers.')]));

  const merges = data.merges || [];
  $('merges').hidden = merges.length === 0;
  $('merges-list').replaceChildren(...merges.map((m) => el('li', { testid: 'merge-item' },
    `Absorbed profile ${m.absorbed} via ${m.via} `, el('span', { class: 'muted' }, '— ', timeEl(m.at)))));

  const blocked = data.blocked || [];
  $('blocked').hidden = blocked.length === 0;
  const items = blocked.map((b) => el('li', { testid: 'blocked-item' },
    el('code', {}, b.identifier), `: ${b.reason} `, el('span', { class: 'muted' }, '— ', timeEl(b.at))));
  if (data.blocked_total > blocked.length) {
    items.push(el('li', { class: 'muted' }, `${data.blocked_total - blocked.length} older refusals not listed.`));
  }
  $('blocked-list').replaceChildren(...items);
}

function renderTraits(traits) {
  const entries = Object.entries(traits || {});
  const rows = entries.map(([name, value]) => el('tr', { testid: 'trait-row' },
    el('th', { scope: 'row', testid: 'trait-name' }, name),
    el('td', { testid: 'trait-value', class: typeof value === 'string' ? 'value' : 'value json' }, asText(value))));
  $('traits-body').replaceChildren(...(rows.length ? rows : [emptyRow(2, 'No traits yet.')]));
}

function renderComputed(computed, hidden) {
  const entries = Object.entries(computed || {});
  const rows = entries.map(([name, value]) => el('tr', { testid: 'computed-row' },
    el('th', { scope: 'row', testid: 'computed-name' }, name),
    el('td', { testid: 'computed-value', class: 'value' }, computedValue(value))));
  $('computed-body').replaceChildren(...(rows.length ? rows : [emptyRow(2, hidden ?? 'No computed traits.')]));
}

function isActivity(v) {
  return v && typeof v === 'object' && Array.isArray(v.counts) && v.counts.length === 7 &&
    v.counts.every((row) => Array.isArray(row) && row.length === 24);
}

function computedValue(value) {
  if (value === null || value === undefined) return el('span', { class: 'muted', title: 'no value yet' }, '—');
  if (isActivity(value)) return activity(value);
  if (typeof value === 'object') return compact(value);
  return asText(value);
}

// A 7×24 heat grid (Monday first) of when the person is active, with the best slot in words.
function activity(v) {
  const max = Math.max(1, ...v.counts.flat().map((n) => Number(n) || 0));
  const best = v.best_weekday != null && v.best_hour != null
    ? `best: ${v.best_weekday} ${String(v.best_hour).padStart(2, '0')}:00` : 'no activity yet';
  const grid = el('div', { class: 'heat', role: 'img', 'aria-label': `Activity by weekday and hour; ${best}` });
  v.counts.forEach((row, d) => {
    grid.append(el('span', { class: 'heat-day', 'aria-hidden': 'true' }, WEEKDAYS[d]));
    row.forEach((n, h) => {
      const cell = el('span', { class: 'heat-cell', title: `${WEEKDAYS[d]} ${String(h).padStart(2, '0')}:00 — ${n}` });
      cell.style.setProperty('--level', String((Number(n) || 0) / max));
      grid.append(cell);
    });
  });
  return el('div', { class: 'activity' }, el('span', { testid: 'activity-best' }, best), grid);
}

function renderSegments(segments, hidden) {
  const chips = (segments || []).map((s) => el('li', { class: 'chip', testid: 'segment-chip' },
    el('span', { class: 'chip-name', testid: 'segment-name' }, s.name),
    s.entered_at ? el('span', { class: 'chip-since' }, 'since ', timeEl(s.entered_at)) : null));
  $('segments-list').replaceChildren(...(chips.length ? chips : [el('li', { class: 'muted' }, hidden ?? 'In no segment.')]));
}

// ---- timeline -------------------------------------------------------------------------------

// What happened, in a few words, for one stored event or membership change.
function describe(e) {
  switch (e.type) {
    case 'membership':
      return `${e.change === 'exited' ? 'exited' : 'entered'} segment ${e.segment}`;
    case 'track':
      return e.event ?? '(unnamed event)';
    case 'page':
    case 'screen':
      return e.name ?? e.properties?.path ?? e.properties?.url ?? `(unnamed ${e.type})`;
    case 'identify':
      return e.traits ? `traits: ${Object.keys(e.traits).join(', ')}` : 'identified';
    case 'group':
      return `group ${e.groupId ?? ''}`.trim();
    case 'alias':
      return `${e.previousId ?? '?'} → ${e.userId ?? '?'}`;
    default:
      return e.event ?? e.name ?? '';
  }
}

function timelineItem(e) {
  const membership = e.type === 'membership';
  const kind = membership ? `membership ${e.change === 'exited' ? 'exited' : 'entered'}` : 'event';
  const item = el('li', { class: `timeline-item ${kind}`, testid: 'timeline-item', 'data-type': e.type },
    timeEl(e.timestamp),
    el('span', { class: 'badge', testid: 'timeline-type' }, e.type),
    el('span', { class: 'what', testid: 'timeline-what' }, describe(e)));
  const detail = e.properties && Object.keys(e.properties).length ? e.properties
    : e.type === 'identify' && e.traits ? e.traits : null;
  if (detail) {
    item.append(el('details', { class: 'detail' },
      el('summary', {}, e.type === 'identify' ? 'traits' : 'properties'),
      el('pre', {}, JSON.stringify(detail, null, 2))));
  }
  return item;
}

function appendTimeline(page) {
  const events = page.events || [];
  const list = $('timeline-list');
  if (events.length === 0 && list.childElementCount === 0) {
    list.append(el('li', { class: 'muted' }, 'No events.'));
  }
  list.append(...events.map(timelineItem));
  timelineCursor = page.next_cursor || null;
  $('timeline-more').hidden = !timelineCursor;
}

async function moreTimeline() {
  if (!timelineCursor || !timelineProfile) return;
  const button = $('timeline-more');
  const profile = timelineProfile;
  button.disabled = true;
  try {
    const q = new URLSearchParams({ limit: String(TIMELINE_PAGE), cursor: timelineCursor });
    const page = await api(`/api/v1/profiles/${encodeURIComponent(profile)}/events?${q}`);
    if (profile !== timelineProfile) return;
    showError($('timeline-error'), '');
    appendTimeline(page);
  } catch (err) {
    if (!handleFatal(err)) showError($('timeline-error'), err.message);
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ---------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const key = $('login-key').value.trim();
  if (!key) return showError($('login-error'), 'Enter a secret key (sk_…).');
  const button = $('login-form').querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await signIn(key);
  } catch (err) {
    showError($('login-error'), err.message);
    $('login-key').select();
  } finally {
    button.disabled = false;
  }
}

function syncCustomType() {
  const other = $('search-type').value === 'other';
  $('custom-type-field').hidden = !other;
  $('search-custom-type').required = other;
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('search-form').addEventListener('submit', search);
  $('search-type').addEventListener('change', syncCustomType);
  $('signout').addEventListener('click', () => signOut(''));
  $('timeline-more').addEventListener('click', moreTimeline);
  window.addEventListener('hashchange', () => { if (sessionStorage.getItem(KEY_STORAGE)) openFromHash(); });
  syncCustomType();

  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (!saved) return signOut('');
  try {
    await signIn(saved);
    await openFromHash();
  } catch (err) {
    signOut(err.message); // a key that no longer works, or a server that cannot be reached
  }
}

start();
