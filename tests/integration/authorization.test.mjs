// The authorization matrix (docs/api/keys.md#scopes): every route of the server's own route
// table (GET /api/v1/routes) × a key for each scope, the all-scopes key, a write key, a key of
// another workspace, a revoked key, an unknown key and no key. Expected: every call the route's
// declared access allows succeeds, every other is 401/403, and a key of another workspace never
// reaches this workspace's data. The test fails for a route whose access is not one it knows,
// for a route it has no sample request for, and for a route the server serves outside the table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, api, basic, GRANT_ALL, cleanup } from '../lib/server.mjs';

const SCOPES = ['profiles:read', 'profiles:write', 'definitions:write', 'decide', 'consent', 'gdpr', 'admin'];
const ACCESS = new Set(['public', 'write_key', 'secret_key', ...SCOPES, 'operator']);
// Strings only workspace A's data holds: a key of workspace B must never be answered one.
const MARKERS = ['matrix-a@example.com', 'matrix_vip', 'matrix_orders', 'matrix-victim', 'matrix-a-user'];

let server;
let A;  // workspace A's ids: profile, job, key, write key
before(async () => { server = await startServer({ args: ['--clock=simulated', '--clock-start=2026-03-01T00:00:00Z'] }); });
after(async () => { await server.stop(); cleanup(server.data); });

const track = (userId, extra = {}) => ({
  userId, event: 'Order Completed', properties: { total: 10 }, context: { consent: GRANT_ALL }, ...extra,
});

async function call(method, path, { bearer, basicKey, body } = {}) {
  const headers = {};
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (basicKey) headers.Authorization = basic(basicKey);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(server.url + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json };
}

let counter = 0;
const unique = (prefix) => `${prefix}${++counter}`;
let clockAt = Date.parse('2026-03-01T00:00:00Z');

// A new person of workspace A (to erase): their profile id.
async function newPerson() {
  const user = unique('erasable-');
  await call('POST', '/v1/track', { basicKey: A.writeKey, body: track(user) });
  return (await call('GET', `/api/v1/profiles/lookup?user_id=${user}`, { bearer: A.admin })).json.id;
}

// For each route name: the request to make, built fresh for every call (so calls that change
// something, like revoking a key, each have their own target).
const SAMPLES = {
  identify: () => ({ body: { userId: 'matrix-a-user', traits: { email: 'matrix-a@example.com' }, context: { consent: GRANT_ALL } } }),
  track: () => ({ body: track('matrix-a-user') }),
  page: () => ({ body: { userId: 'matrix-a-user', name: 'Home', context: { consent: GRANT_ALL } } }),
  screen: () => ({ body: { userId: 'matrix-a-user', name: 'Home', context: { consent: GRANT_ALL } } }),
  group: () => ({ body: { userId: 'matrix-a-user', groupId: 'g1', context: { consent: GRANT_ALL } } }),
  alias: () => ({ body: { userId: 'matrix-a-user', previousId: unique('anon-'), context: { consent: GRANT_ALL } } }),
  batch: () => ({ body: { batch: [{ type: 'track', ...track('matrix-a-user') }] } }),
  import: () => ({ body: { batch: [{ type: 'track', ...track('matrix-a-user'), timestamp: '2026-02-01T00:00:00Z' }] } }),
  events: () => ({ path: '/api/v1/events?userId=matrix-a-user' }),
  profile_lookup: () => ({ path: '/api/v1/profiles/lookup?email=matrix-a@example.com' }),
  profile: () => ({ params: { id: A.profile } }),
  profile_identities: () => ({ params: { id: A.profile } }),
  profile_events: () => ({ params: { id: A.profile } }),
  profile_split: async () => {
    // A person of two anonymous ids, to split one off.
    const user = unique('split-');
    await call('POST', '/v1/batch', { basicKey: A.writeKey, body: { batch: [
      { type: 'track', ...track(undefined, { anonymousId: `${user}-a` }) },
      { type: 'alias', userId: `${user}-b`, previousId: `${user}-a`, context: { consent: GRANT_ALL } },
    ] } });
    const p = await call('GET', `/api/v1/profiles/lookup?anonymous_id=${user}-a`, { bearer: A.admin });
    return { params: { id: p.json.id }, body: { type: 'anonymous_id', value: `${user}-a` } };
  },
  profile_export: () => ({ params: { id: A.profile } }),
  profile_erase: async () => ({ params: { id: await newPerson() } }),
  suppressions: () => ({}),
  suppression_lift: async () => {
    const erased = await call('DELETE', `/api/v1/profiles/${await newPerson()}`, { bearer: A.admin });
    return { params: { hash: erased.json.suppressed[0].hash } };
  },
  profile_consent: () => ({ params: { id: A.profile } }),
  profile_consent_put: () => ({ params: { id: A.profile }, body: { purposes: { marketing: 'granted' } } }),
  computed_traits: () => ({}),
  computed_trait: () => ({ params: { name: 'matrix_orders' } }),
  computed_trait_create: () => ({ body: { name: unique('made_'), kind: 'count', event: 'Order Completed' } }),
  computed_trait_replace: () => ({ params: { name: 'matrix_orders' }, body: { name: 'matrix_orders', kind: 'count', event: 'Order Completed' } }),
  computed_trait_backfill: () => ({ params: { name: 'matrix_orders' } }),
  segments: () => ({}),
  segment: () => ({ params: { name: 'matrix_vip' } }),
  segment_create: () => ({ body: { name: unique('seg_'), expression: 'computed.matrix_orders >= 1' } }),
  segment_replace: () => ({ params: { name: 'matrix_vip' }, body: { name: 'matrix_vip', expression: 'computed.matrix_orders >= 1' } }),
  segment_backfill: () => ({ params: { name: 'matrix_vip' } }),
  segment_members: () => ({ params: { name: 'matrix_vip' } }),
  job: () => ({ params: { id: A.job } }),
  merge_protection: () => ({}),
  merge_protection_put: () => ({ body: {} }),
  purposes: () => ({}),
  purposes_put: () => ({ body: {} }),
  keys: () => ({}),
  key_create: () => ({ body: { name: unique('made-'), kind: 'write' } }),
  key: () => ({ params: { id: A.key } }),
  key_revoke: async () => {
    const victim = await call('POST', '/api/v1/keys', { bearer: A.admin, body: { name: 'matrix-victim', scopes: ['decide'] } });
    return { params: { id: victim.json.id } };
  },
  audit: () => ({}),
  whoami: () => ({}),
  routes: () => ({}),
  workspaces: () => ({ body: { name: unique('made-ws-') } }),
  admin_clock: () => ({}),
  admin_clock_set: () => {
    clockAt += 60_000;
    return { body: { now: new Date(clockAt).toISOString() } };
  },
  console: () => ({}),
  console_file: () => ({ params: { file: 'index.html' } }),
  healthz: () => ({}),
  readyz: () => ({}),
  metrics: () => ({}),
};

// Routes whose {params} name one of A's things: a key of B must be answered 404 there.
const namesAThing = (route) => /\{(id|name)\}/.test(route.path);

test('the authorization matrix: 0 unauthorised successes over every route and key', async () => {
  const demo = server.secretKey;  // every scope of A, and the operator's
  A = { admin: demo, writeKey: server.writeKey };
  // A's data: a person, a computed trait and a segment (with its job), a key.
  assert.equal((await call('POST', '/v1/identify', { basicKey: A.writeKey, body: SAMPLES.identify().body })).status, 200);
  assert.equal((await call('POST', '/v1/track', { basicKey: A.writeKey, body: track('matrix-a-user') })).status, 200);
  assert.equal((await call('POST', '/api/v1/computed-traits', { bearer: demo, body: { name: 'matrix_orders', kind: 'count', event: 'Order Completed' } })).status, 201);
  const seg = await call('POST', '/api/v1/segments', { bearer: demo, body: { name: 'matrix_vip', expression: 'computed.matrix_orders >= 1' } });
  assert.equal(seg.status, 201, seg.text);
  A.job = seg.json.job.id;
  A.profile = (await call('GET', '/api/v1/profiles/lookup?user_id=matrix-a-user', { bearer: demo })).json.id;
  A.key = (await call('POST', '/api/v1/keys', { bearer: demo, body: { name: 'matrix-victim', scopes: ['decide'] } })).json.id;

  // The callers.
  const callers = [];
  for (const scope of SCOPES) {
    const k = await call('POST', '/api/v1/keys', { bearer: demo, body: { name: `only ${scope}`, scopes: [scope] } });
    assert.equal(k.status, 201, k.text);
    callers.push({ name: `scope ${scope}`, secret: k.json.key, scopes: [scope], ws: 'A' });
  }
  callers.push({ name: 'all scopes + operator', secret: demo, scopes: [...SCOPES, 'operator'], ws: 'A' });
  const b = await call('POST', '/api/v1/workspaces', { bearer: demo, body: { name: 'matrix-b' } });
  assert.equal(b.status, 201, b.text);
  callers.push({ name: 'workspace B, all scopes', secret: b.json.secret_key, scopes: SCOPES, ws: 'B' });
  const revoked = await call('POST', '/api/v1/keys', { bearer: demo, body: { name: 'revoked', scopes: SCOPES } });
  assert.equal((await call('DELETE', `/api/v1/keys/${revoked.json.id}`, { bearer: demo })).status, 200);
  callers.push({ name: 'revoked', secret: revoked.json.key, scopes: [], ws: null });
  callers.push({ name: 'unknown', secret: 'sk_' + '0'.repeat(64), scopes: [], ws: null });
  callers.push({ name: 'write key', write: A.writeKey, scopes: [], ws: 'A' });
  callers.push({ name: 'no key', scopes: [], ws: null });

  const table = await call('GET', '/api/v1/routes', { bearer: demo });
  assert.equal(table.status, 200, table.text);
  const routes = table.json.routes;
  assert.ok(routes.length >= 40, `only ${routes.length} routes`);
  for (const r of routes) {
    assert.ok(ACCESS.has(r.access), `${r.method} ${r.path} declares access '${r.access}', which the matrix does not know`);
    assert.ok(SAMPLES[r.name], `${r.method} ${r.path} (${r.name}) has no sample request in the matrix`);
  }
  // The server serves exactly the table's routes (it measures each from the start).
  const metrics = await (await fetch(server.url + '/metrics')).text();
  const served = new Set([...metrics.matchAll(/rapport_http_request_duration_seconds_count\{route="([^"]+)"\}/g)].map((m) => m[1]));
  served.delete('unmatched');
  assert.deepEqual([...served].sort(), routes.map((r) => r.name).sort());

  const unauthorised = [];
  const refusedAllowed = [];
  let cells = 0;
  for (const route of routes) {
    for (const c of callers) {
      const sample = await SAMPLES[route.name]();
      let path = sample.path ?? route.path;
      for (const [k, v] of Object.entries(sample.params ?? {})) path = path.replace(`{${k}}`, encodeURIComponent(v));
      const body = sample.body ?? (route.method === 'GET' || route.method === 'DELETE' ? undefined : {});
      const tracking = route.access === 'write_key';
      const r = await call(route.method, path, {
        body,
        ...(tracking ? { basicKey: c.write ?? c.secret } : { bearer: c.secret ?? c.write }),
      });
      cells++;
      const ok = r.status >= 200 && r.status < 300;
      const label = `${route.method} ${route.path} as ${c.name}: ${r.status} ${r.text.slice(0, 160)}`;
      let allowed;
      if (route.access === 'public') allowed = true;
      else if (route.access === 'write_key') allowed = Boolean(c.write);
      else if (route.access === 'secret_key') allowed = Boolean(c.secret) && c.ws !== null;
      else allowed = c.ws !== null && c.scopes.includes(route.access);

      if (c.ws === 'B' && allowed) {
        // Its own workspace's answer: never A's data (an error may repeat what B sent), and
        // nothing of A's by id or name.
        if (ok && MARKERS.some((m) => r.text.includes(m))) unauthorised.push(`${label} (holds workspace A's data)`);
        if (namesAThing(route) && r.status !== 404) unauthorised.push(`${label} (expected 404: not B's)`);
        continue;
      }
      if (allowed && !ok) refusedAllowed.push(label);
      if (!allowed) {
        if (ok) unauthorised.push(label);
        else if (r.status !== 401 && r.status !== 403) unauthorised.push(`${label} (expected 401 or 403)`);
        else if (!c.secret && !c.write && r.status !== 401) unauthorised.push(`${label} (no key: expected 401)`);
      }
    }
  }
  console.log(`authorization matrix: ${routes.length} routes × ${callers.length} callers = ${cells} calls, ` +
              `${unauthorised.length} unauthorised successes`);
  assert.deepEqual(unauthorised, [], 'unauthorised successes');
  assert.deepEqual(refusedAllowed, [], 'calls the route\'s access allows were refused');

  // Every answered read of personal data is in A's audit log under the route's name.
  const actions = new Map();
  let cursor = null;
  do {
    const page = await call('GET', `/api/v1/audit?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { bearer: demo });
    for (const e of page.json.entries) actions.set(e.action, (actions.get(e.action) ?? 0) + 1);
    cursor = page.json.next_cursor;
  } while (cursor);
  for (const route of routes.filter((r) => r.personal)) {
    const allowedCallers = callers.filter((c) => c.ws === 'A' && c.scopes.includes(route.access)).length;
    assert.ok((actions.get(route.name) ?? 0) >= allowedCallers,
              `${route.name}: ${actions.get(route.name) ?? 0} audit entries for ${allowedCallers} answered reads`);
  }
});
