// The profile API over HTTP: authorization, workspace isolation, read-your-writes, pagination
// and clear errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, post, get, cleanup } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

const bearer = (key) => ({ key: null, headers: { Authorization: `Bearer ${key}` } });

test('the next read after a 200 sees the event: identity, traits and timeline', async () => {
  const sends = [];
  for (let i = 0; i < 40; i++) {
    sends.push((async () => {
      const r = await post(server, '/v1/identify', { userId: `ryw-${i}`, anonymousId: `ryw-anon-${i}`,
        traits: { email: `ryw-${i}@example.com`, n: i } });
      assert.equal(r.status, 200, r.text);
      const p = await get(server, `/api/v1/profiles/lookup?email=RYW-${i}@example.com`);
      assert.equal(p.status, 200, p.text);
      assert.equal(p.json.traits.n, i);
      assert.equal(p.json.event_count, 1);
      const anon = await get(server, `/api/v1/profiles/lookup?anonymousId=ryw-anon-${i}`);
      assert.equal(anon.json.id, p.json.id);
    })());
  }
  await Promise.all(sends);
});

test('timeline pages with a cursor in event-time order', async () => {
  const batch = [];
  for (let i = 0; i < 7; i++) {
    batch.push({ type: 'track', userId: 'pager', event: 'Tick', messageId: `tick-${i}`,
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, 10 - i)).toISOString() });
  }
  assert.equal((await post(server, '/v1/batch', { batch })).status, 200);
  const { json: p } = await get(server, '/api/v1/profiles/lookup?user_id=pager');
  const ids = [];
  let cursor = null;
  let pages = 0;
  do {
    const r = await get(server, `/api/v1/profiles/${p.id}/events?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    ids.push(...r.json.events.map((e) => e.messageId));
    cursor = r.json.next_cursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(ids, ['tick-6', 'tick-5', 'tick-4', 'tick-3', 'tick-2', 'tick-1', 'tick-0']);
  const bad = await get(server, `/api/v1/profiles/${p.id}/events?cursor=nonsense`);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'invalid_cursor');
});

test('profile routes need a secret key with the right scope', async () => {
  await post(server, '/v1/identify', { userId: 'guarded' });
  const { json: p } = await get(server, '/api/v1/profiles/lookup?user_id=guarded');
  for (const path of [`/api/v1/profiles/${p.id}`, '/api/v1/profiles/lookup?user_id=guarded',
    `/api/v1/profiles/${p.id}/identities`, `/api/v1/profiles/${p.id}/events`]) {
    const none = await get(server, path, { key: null });
    assert.equal(none.status, 401, path);
    assert.equal(none.json.error.code, 'missing_secret_key');
    const write = await get(server, path, { key: server.writeKey });
    assert.equal(write.status, 403, path);
    assert.equal(write.json.error.code, 'missing_scope');
  }
  const split = await post(server, `/api/v1/profiles/${p.id}/split`, { type: 'user_id', value: 'guarded' },
    bearer(server.writeKey));
  assert.equal(split.status, 403);
});

test('a key of another workspace never reaches this workspace\'s profiles', async () => {
  const created = await post(server, '/api/v1/workspaces', { name: 'other-shop' }, bearer(server.secretKey));
  assert.equal(created.status, 201, created.text);
  await post(server, '/v1/identify', { userId: 'private-ann', traits: { email: 'private@example.com' } });
  const mine = await get(server, '/api/v1/profiles/lookup?email=private@example.com');
  assert.equal(mine.status, 200);
  const theirs = await get(server, '/api/v1/profiles/lookup?email=private@example.com', { key: created.json.secret_key });
  assert.equal(theirs.status, 404);
  const byId = await get(server, `/api/v1/profiles/${mine.json.id}`, { key: created.json.secret_key });
  assert.equal(byId.status, 404);
  assert.equal(byId.json.error.code, 'profile_not_found');
});

test('bad lookups and ids are answered clearly', async () => {
  const cases = [
    ['/api/v1/profiles/lookup', 400, 'missing_id'],
    ['/api/v1/profiles/lookup?email=a@x.com&user_id=u', 400, 'missing_id'],
    ['/api/v1/profiles/lookup?type=crm_id', 400, 'missing_field'],
    ['/api/v1/profiles/lookup?email=not-an-email', 400, 'invalid_identifier'],
    ['/api/v1/profiles/lookup?email=nobody@example.com', 404, 'profile_not_found'],
    ['/api/v1/profiles/abc', 400, 'invalid_profile_id'],
    ['/api/v1/profiles/0', 400, 'invalid_profile_id'],
    ['/api/v1/profiles/424242', 404, 'profile_not_found'],
    ['/api/v1/profiles/1/events?limit=0', 400, 'invalid_field'],
  ];
  for (const [path, status, code] of cases) {
    const r = await get(server, path);
    assert.equal(r.status, status, `${path}: ${r.text}`);
    assert.equal(r.json.error.code, code, path);
    assert.ok(r.json.error.message.length > 10, path);
  }
  const noBody = await post(server, '/api/v1/profiles/1/split', {}, bearer(server.secretKey));
  assert.equal(noBody.status, 400);
  assert.equal(noBody.json.error.code, 'missing_field');
});

test('custom identifiers from context.externalIds are looked up by type and value', async () => {
  await post(server, '/v1/track', { anonymousId: 'ext-anon', event: 'Ticket Opened',
    context: { externalIds: [{ id: 'Z-1', type: 'zendesk_id', collection: 'users', encoding: 'none' }] } });
  const r = await get(server, '/api/v1/profiles/lookup?type=zendesk_id&value=Z-1');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.identifiers.map((i) => i.type).sort(), ['anonymous_id', 'zendesk_id']);
});
