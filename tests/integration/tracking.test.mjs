// The Segment Tracking API and the events read API, against the real server over HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { startServer, post, get, eventsOf, cleanup, basic, GRANT_ALL } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

test('every tracking endpoint stores its message with the Segment fields', async () => {
  const calls = [
    ['/v1/identify', { userId: 'it-1', traits: { email: 'a@example.com', name: 'Ann' } }],
    ['/v1/track', { userId: 'it-1', event: 'Order Completed', properties: { total: 42.5, items: [{ sku: 'x' }] } }],
    ['/v1/page', { userId: 'it-1', name: 'Home', properties: { url: 'https://shop.example/' } }],
    ['/v1/screen', { userId: 'it-1', name: 'Cart' }],
    ['/v1/group', { userId: 'it-1', groupId: 'acme', traits: { plan: 'pro' } }],
    ['/v1/alias', { userId: 'it-1', previousId: 'anon-1' }],
  ];
  for (const [i, [path, body]] of calls.entries()) {
    const r = await post(server, path, { ...body, messageId: `it-1-${i}`, timestamp: `2024-01-01T00:00:0${i}Z`,
      context: { ip: '10.0.0.1' }, integrations: { All: true } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { success: true, messageId: `it-1-${i}`, status: 'stored' });
  }
  const events = await eventsOf(server, { userId: 'it-1' });
  assert.deepEqual(events.map((e) => e.type), ['identify', 'track', 'page', 'screen', 'group', 'alias']);
  assert.deepEqual(events[0].traits, { email: 'a@example.com', name: 'Ann' });
  assert.deepEqual(events[1].properties, { total: 42.5, items: [{ sku: 'x' }] });
  assert.equal(events[1].event, 'Order Completed');
  assert.equal(events[2].name, 'Home');
  assert.equal(events[4].groupId, 'acme');
  assert.equal(events[5].previousId, 'anon-1');
  for (const e of events) {
    assert.deepEqual(e.context, { ip: '10.0.0.1', consent: GRANT_ALL });
    assert.deepEqual(e.integrations, { All: true });
    assert.ok(Date.parse(e.receivedAt) > Date.parse('2025-01-01'));
  }
});

test('the write key may come in the body, and a wrong key is refused', async () => {
  const ok = await post(server, '/v1/track', { userId: 'wk-body', event: 'E', writeKey: server.writeKey }, { key: null });
  assert.equal(ok.status, 200, ok.text);
  const bad = await post(server, '/v1/track', { userId: 'wk-body', event: 'E' }, { key: 'wk_unknown' });
  assert.equal(bad.status, 401);
  assert.equal(bad.json.code, 'invalid_write_key');
  const none = await post(server, '/v1/track', { userId: 'wk-body', event: 'E' }, { key: null });
  assert.equal(none.status, 401);
  assert.equal(none.json.code, 'missing_write_key');
  // A secret key is not a write key.
  const secret = await post(server, '/v1/track', { userId: 'wk-body', event: 'E' }, { key: server.secretKey });
  assert.equal(secret.status, 401);
  assert.equal((await eventsOf(server, { userId: 'wk-body' })).length, 1);
});

test('gzip bodies are read as JSON whatever Content-Type says', async () => {
  const body = gzipSync(JSON.stringify({ batch: [{ type: 'track', userId: 'gz', event: 'Zipped', messageId: 'gz-1' }], context: { consent: GRANT_ALL } }));
  const r = await post(server, '/v1/batch', body, {
    headers: { 'Content-Encoding': 'gzip', 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.stored, 1);
  assert.equal((await eventsOf(server, { userId: 'gz' }))[0].event, 'Zipped');
});

test('clock skew is corrected from sentAt and the batch passes sentAt and context down', async () => {
  // The device clock runs one hour fast.
  const hour = 3600e3;
  const now = Date.now();
  const r = await post(server, '/v1/batch', {
    sentAt: new Date(now + hour).toISOString(),
    context: { library: { name: 'test' }, locale: 'nl-NL' },
    batch: [
      { type: 'track', userId: 'skew', event: 'A', messageId: 'skew-1', originalTimestamp: new Date(now + hour - 5000).toISOString(), context: { locale: 'en-GB' } },
      { type: 'track', userId: 'skew', event: 'B', messageId: 'skew-2', timestamp: new Date(now + hour - 1000).toISOString() },
    ],
  });
  assert.equal(r.status, 200, r.text);
  const [a, b] = await eventsOf(server, { userId: 'skew' });
  const receivedA = Date.parse(a.receivedAt);
  assert.equal(receivedA - Date.parse(a.timestamp), 5000);
  assert.equal(Date.parse(b.receivedAt) - Date.parse(b.timestamp), 1000);
  assert.ok(Math.abs(receivedA - now) < 60e3, 'receivedAt is the server clock');
  assert.deepEqual(a.context, { library: { name: 'test' }, locale: 'en-GB', consent: GRANT_ALL });
  assert.deepEqual(b.context, { library: { name: 'test' }, locale: 'nl-NL', consent: GRANT_ALL });
  assert.equal(a.sentAt, new Date(now + hour).toISOString());
});

test('a batch stores the valid messages, lists each invalid one, and a replay stores nothing twice', async () => {
  const batch = {
    batch: [
      { type: 'track', userId: 'mix', event: 'Good', messageId: 'mix-1' },
      { type: 'track', userId: 'mix', messageId: 'mix-2' },
      { type: 'identify', userId: 'mix', messageId: 'mix-3', timestamp: 'last tuesday' },
      { type: 'page', anonymousId: 'mix-anon', messageId: 'mix-4', name: 'Home' },
    ],
  };
  const r = await post(server, '/v1/batch', batch);
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'invalid_messages');
  assert.equal(r.json.stored, 2);
  assert.equal(r.json.rejected, 2);
  assert.deepEqual(r.json.results.map((x) => x.status), ['stored', 'rejected', 'rejected', 'stored']);
  assert.equal(r.json.results[1].error.field, 'batch[1].event');
  assert.equal(r.json.results[2].error.code, 'invalid_timestamp');
  const again = await post(server, '/v1/import', batch);
  assert.deepEqual(again.json.results.map((x) => x.status), ['duplicate', 'rejected', 'rejected', 'duplicate']);
  assert.equal((await eventsOf(server, { userId: 'mix' })).length, 1);
  assert.equal((await eventsOf(server, { anonymousId: 'mix-anon' })).length, 1);
});

test('events are read per person in time order, page by page', async () => {
  const batch = [];
  for (let i = 0; i < 250; i++) {
    // Sent out of order: the read is ordered by event time.
    const t = new Date(Date.UTC(2023, 0, 1) + ((i * 7919) % 250) * 1000).toISOString();
    batch.push({ type: 'track', userId: 'pages', event: `E${i}`, messageId: `pages-${i}`, timestamp: t });
  }
  assert.equal((await post(server, '/v1/batch', { batch })).status, 200);
  const first = await get(server, '/api/v1/events?userId=pages&limit=100');
  assert.equal(first.json.events.length, 100);
  assert.ok(first.json.next_cursor);
  const all = await eventsOf(server, { userId: 'pages', limit: 100 });
  assert.equal(all.length, 250);
  assert.equal(new Set(all.map((e) => e.messageId)).size, 250);
  const times = all.map((e) => Date.parse(e.timestamp));
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
});

test('the events API needs a secret key with profiles:read and a valid query', async () => {
  assert.equal((await get(server, '/api/v1/events?userId=it-1', { key: null })).status, 401);
  assert.equal((await get(server, '/api/v1/events?userId=it-1', { key: 'sk_nope' })).status, 401);
  const write = await get(server, '/api/v1/events?userId=it-1', { key: server.writeKey });
  assert.equal(write.status, 403);
  assert.equal(write.json.error.code, 'missing_scope');
  const noId = await get(server, '/api/v1/events');
  assert.equal(noId.status, 400);
  assert.equal(noId.json.error.code, 'missing_id');
  const badLimit = await get(server, '/api/v1/events?userId=x&limit=5000');
  assert.equal(badLimit.status, 400);
  assert.equal(badLimit.json.error.field, 'limit');
  assert.equal((await get(server, '/api/v1/events?userId=x&cursor=zzz')).json.error.code, 'invalid_cursor');
});

test('workspaces are isolated: one workspace never reads another', async () => {
  const created = await fetch(server.url + '/api/v1/workspaces', {
    method: 'POST', headers: { Authorization: `Bearer ${server.secretKey}` }, body: JSON.stringify({ name: 'other' }),
  });
  assert.equal(created.status, 201);
  const other = await created.json();
  assert.match(other.write_key, /^wk_/);
  assert.match(other.secret_key, /^sk_/);
  const dup = await fetch(server.url + '/api/v1/workspaces', {
    method: 'POST', headers: { Authorization: `Bearer ${server.secretKey}` }, body: JSON.stringify({ name: 'other' }),
  });
  assert.equal(dup.status, 409);
  const r = await post(server, '/v1/track', { userId: 'it-1', event: 'In Other', messageId: 'it-1-0' }, { key: other.write_key });
  assert.equal(r.json.status, 'stored', 'the same messageId in another workspace is another event');
  const seenByOther = await eventsOf(server, { userId: 'it-1', key: other.secret_key });
  assert.deepEqual(seenByOther.map((e) => e.event), ['In Other']);
  const seenByDemo = await eventsOf(server, { userId: 'it-1' });
  assert.ok(!seenByDemo.some((e) => e.event === 'In Other'));
  const noKey = await fetch(server.url + '/api/v1/workspaces', { method: 'POST', body: '{"name":"x"}' });
  assert.equal(noKey.status, 401);
  // A tenant's secret key manages its own data, not the server's workspaces.
  const tenant = await fetch(server.url + '/api/v1/workspaces', {
    method: 'POST', headers: { Authorization: `Bearer ${other.secret_key}` }, body: '{"name":"x"}' });
  assert.equal(tenant.status, 403);
  assert.equal((await tenant.json()).error.code, 'missing_scope');
});

test('health, readiness and Prometheus metrics', async () => {
  assert.deepEqual((await get(server, '/healthz', { key: null })).json, { status: 'ok' });
  assert.deepEqual((await get(server, '/readyz', { key: null })).json, { status: 'ready' });
  const m = await get(server, '/metrics', { key: null });
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  assert.match(m.text, /^rapport_events_total\{outcome="stored"\} \d+$/m);
  assert.match(m.text, /^rapport_events_rejected_total\{reason="missing_field"\} \d+$/m);
  assert.match(m.text, /^rapport_http_requests_total\{route="track",code="200"\} \d+$/m);
  assert.match(m.text, /^rapport_http_request_duration_seconds_bucket\{route="batch",le="\+Inf"\} \d+$/m);
  assert.match(m.text, /^rapport_store_commit_seconds_count \d+$/m);
  assert.match(m.text, /^rapport_store_wal_sync_seconds_count \d+$/m);
});

test('one keep-alive connection carries many requests', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  for (let i = 0; i < 20; i++) {
    const status = await new Promise((resolve, reject) => {
      const req = http.request(server.url + '/v1/track', {
        method: 'POST', agent, headers: { Authorization: basic(server.writeKey), 'Content-Type': 'application/json' },
      }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('socket', (s) => sockets.add(s));
      req.on('error', reject);
      req.end(JSON.stringify({ userId: 'ka', event: 'E', messageId: `ka-${i}`, context: { consent: GRANT_ALL } }));
    });
    assert.equal(status, 200);
  }
  agent.destroy();
  assert.equal(sockets.size, 1, 'every request went over the same connection');
  assert.equal((await eventsOf(server, { userId: 'ka' })).length, 20);
});
