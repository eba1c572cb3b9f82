// @segment/analytics-node, unmodified, pointed at rapport by changing only its host: every call
// type arrives with every field intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics } from '@segment/analytics-node';
import { startServer, eventsOf, cleanup } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

test('identify, track, page, screen, group and alias from analytics-node arrive intact', async () => {
  const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 3, maxRetries: 2 });
  const errors = [];
  analytics.on('error', (e) => errors.push(e));
  const at = (s) => new Date(Date.UTC(2024, 4, 1, 12, 0, s));
  const context = { ip: '192.0.2.1', locale: 'nl-NL', campaign: { name: 'spring' } };
  analytics.identify({ userId: 'seg-1', anonymousId: 'seg-anon', messageId: 'seg-identify', timestamp: at(1), context,
    traits: { email: 'ann@example.com', name: 'Ann de Vries', plan: 'pro', logins: 3 } });
  analytics.track({ userId: 'seg-1', messageId: 'seg-track', timestamp: at(2), event: 'Order Completed',
    properties: { order_id: 'o-1', total: 99.95, currency: 'EUR', products: [{ sku: 'b-1', qty: 2 }] },
    integrations: { All: false, Mixpanel: true } });
  analytics.page({ userId: 'seg-1', messageId: 'seg-page', timestamp: at(3), category: 'Shop', name: 'Checkout',
    properties: { url: 'https://shop.example/checkout', referrer: 'https://search.example/' } });
  analytics.screen({ userId: 'seg-1', messageId: 'seg-screen', timestamp: at(4), name: 'Cart', properties: { items: 2 } });
  analytics.group({ userId: 'seg-1', messageId: 'seg-group', timestamp: at(5), groupId: 'acme', traits: { employees: 120 } });
  analytics.alias({ userId: 'seg-1', previousId: 'seg-anon', messageId: 'seg-alias', timestamp: at(6) });
  await analytics.closeAndFlush({ timeout: 20000 });
  assert.deepEqual(errors, []);

  const events = await eventsOf(server, { userId: 'seg-1' });
  const byId = Object.fromEntries(events.map((e) => [e.messageId, e]));
  assert.deepEqual(events.map((e) => e.messageId),
    ['seg-identify', 'seg-track', 'seg-page', 'seg-screen', 'seg-group', 'seg-alias']);
  const identify = byId['seg-identify'];
  assert.equal(identify.type, 'identify');
  assert.equal(identify.anonymousId, 'seg-anon');
  assert.deepEqual(identify.traits, { email: 'ann@example.com', name: 'Ann de Vries', plan: 'pro', logins: 3 });
  assert.equal(identify.context.ip, '192.0.2.1');
  assert.equal(identify.context.locale, 'nl-NL');
  assert.deepEqual(identify.context.campaign, { name: 'spring' });
  assert.equal(identify.context.library.name, '@segment/analytics-node');
  const track = byId['seg-track'];
  assert.equal(track.event, 'Order Completed');
  assert.deepEqual(track.properties, { order_id: 'o-1', total: 99.95, currency: 'EUR', products: [{ sku: 'b-1', qty: 2 }] });
  assert.deepEqual(track.integrations, { All: false, Mixpanel: true });
  assert.equal(byId['seg-page'].name, 'Checkout');
  assert.equal(byId['seg-page'].category, 'Shop');
  assert.equal(byId['seg-page'].properties.referrer, 'https://search.example/');
  assert.equal(byId['seg-screen'].name, 'Cart');
  assert.equal(byId['seg-group'].groupId, 'acme');
  assert.deepEqual(byId['seg-group'].traits, { employees: 120 });
  assert.equal(byId['seg-alias'].previousId, 'seg-anon');
  for (const [i, e] of events.entries()) {
    // The client's clock and ours agree here, so the corrected timestamp is the one sent.
    assert.equal(e.originalTimestamp, at(i + 1).toISOString());
    assert.ok(Math.abs(Date.parse(e.timestamp) - at(i + 1).getTime()) < 5000, e.timestamp);
    assert.ok(e.sentAt, 'sentAt from the batch');
    assert.ok(e.receivedAt);
    assert.ok(e._metadata, 'unknown top-level members are kept');
  }
  // The anonymous identify is readable by anonymousId too.
  assert.deepEqual((await eventsOf(server, { anonymousId: 'seg-anon' })).map((e) => e.messageId), ['seg-identify']);
});

test('a retried flush stores nothing twice', async () => {
  const send = async () => {
    const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 50 });
    for (let i = 0; i < 50; i++) analytics.track({ userId: 'seg-retry', event: 'Viewed', messageId: `seg-retry-${i}` });
    await analytics.closeAndFlush({ timeout: 20000 });
  };
  await send();
  await send();
  assert.equal((await eventsOf(server, { userId: 'seg-retry' })).length, 50);
});
