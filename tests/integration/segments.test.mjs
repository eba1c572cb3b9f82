// Computed traits, segments and their jobs over HTTP: definitions and their errors, membership
// that changes with events and with time alone, backfill jobs with progress, paginated members,
// the definitions file and `rapport backfill`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, post, get, cli, cleanup, tempDir } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer({ args: ['--sweep-ms', '100'] }); });
after(async () => { await server.stop(); cleanup(server.data); });

const bearer = (key) => ({ key: null, headers: { Authorization: `Bearer ${key}` } });
const define = (kind, body, method = 'POST', path = '') =>
  fetch(`${server.url}/api/v1/${kind}${path}`, {
    method, headers: { Authorization: `Bearer ${server.secretKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, json: await r.json() }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitForJob(id, seen = []) {
  for (let i = 0; i < 600; i++) {
    const r = await get(server, `/api/v1/jobs/${id}`);
    assert.equal(r.status, 200, r.text);
    seen.push(r.json);
    if (r.json.state === 'done') return r.json;
    assert.notEqual(r.json.state, 'failed', r.text);
    await sleep(20);
  }
  throw new Error(`job ${id} did not finish`);
}

test('definitions with errors are refused with what is wrong and where', async () => {
  let r = await define('segments', { name: 'bad', expression: 'traits.plan == "pro" &&' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'invalid_expression');
  assert.equal(r.json.error.field, 'expression');
  assert.equal(r.json.error.position, 23);
  assert.equal(r.json.error.expected, 'an operand');

  r = await define('segments', { name: 'typo', expression: 'trait.plan == "pro"' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.position, 0);
  assert.match(r.json.error.message, /unknown field 'trait'/);

  r = await define('segments', { name: 'ghost', expression: 'computed.never_defined > 1' });
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /no computed trait 'never_defined'/);

  r = await define('computed-traits', { name: 'w', kind: 'count', where: 'properties.total >> 3' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'where');
  assert.equal(typeof r.json.error.position, 'number');

  r = await define('computed-traits', { name: 'w', kind: 'count', windw: '30d' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'unknown_field');
  assert.equal(r.json.error.field, 'windw');

  r = await define('computed-traits', { name: 'w', kind: 'median', property: 'total' });
  assert.equal(r.json.error.code, 'invalid_kind');

  r = await define('segments', { name: 'long', expression: 'traits.plan == "pro"', description: 'x'.repeat(1001) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'invalid_field');
  assert.equal(r.json.error.field, 'description');
  r = await define('computed-traits', { name: 'w', kind: 'sum', property: 'p'.repeat(201) });
  assert.equal(r.json.error.field, 'property');

  r = await define('computed-traits', { name: 'dup', kind: 'count' });
  assert.equal(r.status, 201);
  r = await define('computed-traits', { name: 'dup', kind: 'count' });
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'definition_exists');
  r = await define('computed-traits', { name: 'nope', kind: 'count' }, 'PUT', '/nope');
  assert.equal(r.status, 404);
  r = await define('computed-traits', { name: 'dup', kind: 'count' }, 'PUT', '/other');
  assert.equal(r.json.error.code, 'name_mismatch');
  r = await define('computed-traits', { name: 'dup', kind: 'sum', property: 'total' }, 'PUT', '/dup');
  assert.equal(r.status, 200);
  assert.equal(r.json.version, 2);
  assert.equal(r.json.kind, 'sum');
  const job = r.json.job.id;
  // The same body again changes nothing: same version, and the answer shows that version's job.
  r = await define('computed-traits', { name: 'dup', kind: 'sum', property: 'total' }, 'PUT', '/dup');
  assert.equal(r.status, 200);
  assert.equal(r.json.version, 2);
  assert.equal(r.json.job.id, job);
  assert.equal(typeof r.json.job.state, 'string');

  r = await define('segments', { name: 'loop', expression: 'segment("loop")' });
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'segment_cycle');

  const list = await get(server, '/api/v1/computed-traits');
  assert.ok(list.json.computed_traits.some((d) => d.name === 'dup' && d.version === 2));
  assert.equal((await get(server, '/api/v1/segments/missing')).status, 404);
  assert.equal((await get(server, '/api/v1/segments/missing/members')).json.error.code, 'segment_not_found');
  assert.equal((await get(server, '/api/v1/jobs/999999')).status, 404);
  // A write key may send events, not define segments.
  const denied = await post(server, '/api/v1/segments', { name: 'x', expression: 'true' }, bearer(server.writeKey));
  assert.equal(denied.status, 403);
});

test('a sliding window expires with time alone, and the segment is exited', async () => {
  let r = await define('computed-traits', { name: 'recent', kind: 'count', event: 'Ping', window: '2s' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  r = await define('segments', { name: 'recently_active', expression: 'computed.recent >= 1' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal((await post(server, '/v1/track', { userId: 'pinger', event: 'Ping' })).status, 200);
  // Read-your-writes: the computed trait and the membership are there at once.
  let p = await get(server, '/api/v1/profiles/lookup?user_id=pinger');
  assert.equal(p.json.computed.recent, 1);
  assert.deepEqual(p.json.segments.map((s) => s.name), ['recently_active']);
  assert.equal((await get(server, '/api/v1/segments/recently_active/members')).json.count, 1);
  await sleep(2600);
  p = await get(server, '/api/v1/profiles/lookup?user_id=pinger');
  assert.equal(p.json.computed.recent, 0);
  assert.deepEqual(p.json.segments, []);
  const members = await get(server, '/api/v1/segments/recently_active/members');
  assert.equal(members.json.count, 0);
  assert.deepEqual(members.json.members, []);
  const timeline = await get(server, `/api/v1/profiles/${p.json.id}/events`);
  const changes = timeline.json.events.filter((e) => e.type === 'membership').map((e) => `${e.change} ${e.segment}`);
  assert.deepEqual(changes, ['entered recently_active', 'exited recently_active']);
});

test('a new definition backfills existing profiles as a job with progress; members page with a count', async () => {
  const batch = [];
  for (let i = 0; i < 600; i++) {
    batch.push({ type: 'track', userId: `shopper-${i}`, event: 'Order Completed', properties: { total: i % 50, category: i % 3 ? 'shoes' : 'hats' } });
  }
  for (let i = 0; i < batch.length; i += 100) {
    assert.equal((await post(server, '/v1/batch', { batch: batch.slice(i, i + 100) })).status, 200);
  }
  const created = await define('computed-traits', { name: 'biggest', kind: 'max', property: 'total', event: 'Order Completed' });
  assert.equal(created.status, 201);
  assert.ok(['queued', 'running', 'done'].includes(created.json.job.state));
  const seen = [];
  const job = await waitForJob(created.json.job.id, seen);
  assert.equal(job.done, job.total);
  assert.ok(job.profiles >= 600, JSON.stringify(job));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].done >= seen[i - 1].done, 'progress never goes back');
  assert.equal((await get(server, '/api/v1/profiles/lookup?user_id=shopper-49')).json.computed.biggest, 49);

  const seg = await define('segments', { name: 'big_spenders', expression: 'computed.biggest >= 40' });
  await waitForJob(seg.json.job.id);
  const ids = new Set();
  let cursor = null;
  let count;
  do {
    const r = await get(server, `/api/v1/segments/big_spenders/members?limit=25${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    count = r.json.count;
    for (const m of r.json.members) {
      assert.ok(!ids.has(m.profile_id), 'no member twice');
      ids.add(m.profile_id);
    }
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.equal(count, 120);  // totals 40..49 of every 50
  assert.equal(ids.size, 120);
});

test('a definitions file at start and `rapport backfill` with a progress bar', async () => {
  const data = tempDir();
  const file = join(data, 'definitions.json');
  try {
    let s = await startServer({ data });
    const batch = [];
    for (let i = 0; i < 50; i++) batch.push({ type: 'track', userId: `u${i % 10}`, event: 'Viewed', properties: { item: `i${i % 4}` } });
    assert.equal((await post(s, '/v1/batch', { batch })).status, 200);
    await s.stop();
    writeFileSync(file, JSON.stringify({ workspaces: { demo: {
      computed_traits: [{ name: 'views', kind: 'count', event: 'Viewed' }, { name: 'favourite', kind: 'most_frequent', property: 'item' }],
      segments: [{ name: 'viewers', expression: 'computed.views >= 5' }],
    } } }));
    const run = cli(['backfill', '--data', data, '--definitions', file]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /100\.0%/);
    assert.match(run.stderr, /job \d+ done: 10 profiles recomputed/);
    const again = cli(['backfill', '--data', data, '--definitions', file]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /0 definitions changed/);

    s = await startServer({ data, args: ['--definitions', file] });
    const p = await get(s, '/api/v1/profiles/lookup?user_id=u3');
    assert.equal(p.json.computed.views, 5);
    assert.equal(p.json.computed.favourite, 'i3');  // events 3, 13, 23, 33, 43: items i3, i1, i3, i1, i3
    assert.equal((await get(s, '/api/v1/segments/viewers/members')).json.count, 10);
    await s.stop();

    writeFileSync(file, JSON.stringify({ workspaces: { demo: { segments: [{ name: 'broken', expression: 'computed.views >=' }] } } }));
    const bad = cli(['serve', '--listen', '127.0.0.1:0', '--data', data, '--definitions', file]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /segment 'broken'.*expected an operand/);
  } finally {
    cleanup(data);
  }
});
