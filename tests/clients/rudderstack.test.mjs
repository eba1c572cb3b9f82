// @rudderstack/rudder-sdk-node, unmodified: it sends gzipped batches labelled
// application/x-www-form-urlencoded; every call type must arrive intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Analytics from '@rudderstack/rudder-sdk-node';
import { startServer, eventsOf, cleanup, GRANT_ALL } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

test('identify, track, page, screen, group and alias from rudder-sdk-node arrive intact', async () => {
  const client = new Analytics(server.writeKey, { dataPlaneUrl: server.url, flushAt: 100, flushInterval: 100000, logLevel: 'error' });
  const at = (s) => new Date(Date.UTC(2024, 5, 1, 9, 0, s));  // the SDK overrides these
  const delivered = [];
  const call = (method, message) => delivered.push(new Promise((resolve, reject) => {
    client[method](message, (err) => (err ? reject(err) : resolve()));
  }));
  call('identify', { userId: 'rs-1', anonymousId: 'rs-anon', messageId: 'rs-identify', timestamp: at(1),
    traits: { email: 'bram@example.nl', firstName: 'Bram' }, context: { ip: '198.51.100.7' } });
  call('track', { context: { consent: GRANT_ALL }, userId: 'rs-1', messageId: 'rs-track', timestamp: at(2), event: 'Product Added',
    properties: { sku: 'k-9', price: 12.5, tags: ['sale', 'nieuw'] } });
  call('page', { context: { consent: GRANT_ALL }, userId: 'rs-1', messageId: 'rs-page', timestamp: at(3), category: 'Docs', name: 'Install', properties: { path: '/docs' } });
  call('screen', { context: { consent: GRANT_ALL }, userId: 'rs-1', messageId: 'rs-screen', timestamp: at(4), name: 'Settings' });
  call('group', { userId: 'rs-1', messageId: 'rs-group', timestamp: at(5), groupId: 'team-7', traits: { size: 7 } });
  call('alias', { userId: 'rs-1', previousId: 'rs-anon', messageId: 'rs-alias', timestamp: at(6) });
  await client.flush();
  await Promise.all(delivered);

  const events = await eventsOf(server, { userId: 'rs-1' });
  // The SDK flushes its first message alone, so the order of arrival is not the order of calls.
  const byId = Object.fromEntries(events.map((e) => [e.messageId, e]));
  assert.deepEqual(Object.keys(byId).sort(),
    ['rs-alias', 'rs-group', 'rs-identify', 'rs-page', 'rs-screen', 'rs-track']);
  const { 'rs-identify': identify, 'rs-track': track, 'rs-page': page, 'rs-screen': screen,
    'rs-group': group, 'rs-alias': alias } = byId;
  assert.equal(identify.type, 'identify');
  assert.equal(track.type, 'track');
  assert.equal(page.type, 'page');
  assert.equal(screen.type, 'screen');
  assert.equal(group.type, 'group');
  assert.equal(alias.type, 'alias');
  assert.deepEqual(identify.traits, { email: 'bram@example.nl', firstName: 'Bram' });
  assert.equal(identify.context.ip, '198.51.100.7');
  assert.equal(identify.context.library.name, 'analytics-node');
  assert.equal(track.event, 'Product Added');
  assert.deepEqual(track.properties, { sku: 'k-9', price: 12.5, tags: ['sale', 'nieuw'] });
  assert.equal(page.name, 'Install');
  assert.equal(page.properties.path, '/docs');
  assert.equal(screen.name, 'Settings');
  assert.equal(group.groupId, 'team-7');
  assert.deepEqual(group.traits, { size: 7 });
  assert.equal(alias.previousId, 'rs-anon');
  for (const e of events) {
    // The SDK stamps originalTimestamp itself when a call is made (it drops the caller's
    // timestamp); the server's skew-corrected timestamp stays within the request's latency.
    assert.ok(e.originalTimestamp && e.sentAt && e.receivedAt, JSON.stringify(e));
    assert.ok(Math.abs(Date.parse(e.timestamp) - Date.parse(e.originalTimestamp)) < 5000);
    assert.equal(e.channel, 'server');
  }
});
