// @segment/analytics-node, unmodified, pointed at rapport by changing only its host: every call
// type arrives with every field intact. Events carry the person's consent in context.consent, as
// Segment's consent management sends it; rapport stores nothing a person did not allow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics } from '@segment/analytics-node';
import { startServer, eventsOf, cleanup, get, GRANT_ALL } from '../lib/server.mjs';

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
  analytics.track({ context: { consent: GRANT_ALL }, userId: 'seg-1', messageId: 'seg-track', timestamp: at(2), event: 'Order Completed',
    properties: { order_id: 'o-1', total: 99.95, currency: 'EUR', products: [{ sku: 'b-1', qty: 2 }] },
    integrations: { All: false, Mixpanel: true } });
  analytics.page({ context: { consent: GRANT_ALL }, userId: 'seg-1', messageId: 'seg-page', timestamp: at(3), category: 'Shop', name: 'Checkout',
    properties: { url: 'https://shop.example/checkout', referrer: 'https://search.example/' } });
  analytics.screen({ context: { consent: GRANT_ALL }, userId: 'seg-1', messageId: 'seg-screen', timestamp: at(4), name: 'Cart', properties: { items: 2 } });
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

test('a refusal sent through analytics-node is kept, and what it refuses is not stored', async () => {
  const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 1, maxRetries: 2 });
  const errors = [];
  analytics.on('error', (e) => errors.push(e));
  const consent = (analytics) => ({ consent: { categoryPreferences: { Analytics: analytics, Advertising: false } } });
  // One at a time: each is delivered before the next is made.
  const track = (message) => new Promise((resolve, reject) => {
    analytics.track(message, (err) => (err ? reject(err) : resolve()));
  });
  await track({ userId: 'seg-no', messageId: 'seg-no-1', event: 'Viewed', context: consent(true) });
  await track({ userId: 'seg-no', messageId: 'seg-no-2', event: 'Viewed', properties: { item: 'secret-sku' },
    context: consent(false) });
  await track({ userId: 'seg-no', messageId: 'seg-no-3', event: 'Viewed', properties: { item: 'secret-sku' } });
  await analytics.closeAndFlush({ timeout: 20000 });
  assert.deepEqual(errors, [], 'a refusal is an answer, not an error to retry');
  const events = await eventsOf(server, { userId: 'seg-no' });
  assert.deepEqual(events.map((e) => [e.messageId, e.event]),
    [['seg-no-1', 'Viewed'], ['seg-no-2', 'Consent Changed']]);
  assert.ok(!JSON.stringify(events).includes('secret-sku'));
  const metrics = await get(server, '/metrics', { key: null });
  assert.match(metrics.text, /^rapport_events_refused_total\{reason="consent_denied"\} 2$/m);
});

test('a retried flush stores nothing twice', async () => {
  const send = async () => {
    const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 50 });
    for (let i = 0; i < 50; i++) analytics.track({ context: { consent: GRANT_ALL }, userId: 'seg-retry', event: 'Viewed', messageId: `seg-retry-${i}` });
    await analytics.closeAndFlush({ timeout: 20000 });
  };
  await send();
  await send();
  assert.equal((await eventsOf(server, { userId: 'seg-retry' })).length, 50);
});

test('a story: two devices browse anonymously, identify on one, buy on the other after login → one profile', async () => {
  const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 1, maxRetries: 2 });
  const errors = [];
  analytics.on('error', (e) => errors.push(e));
  const at = (m) => new Date(Date.UTC(2025, 2, 10, 9, m, 0));
  // Phone and laptop, each anonymous.
  analytics.page({ context: { consent: GRANT_ALL }, anonymousId: 'story-phone', messageId: 'story-1', timestamp: at(1), name: 'Home' });
  analytics.page({ context: { consent: GRANT_ALL }, anonymousId: 'story-laptop', messageId: 'story-2', timestamp: at(2), name: 'Boilers' });
  analytics.page({ context: { consent: GRANT_ALL }, anonymousId: 'story-phone', messageId: 'story-3', timestamp: at(3), name: 'Boiler X200' });
  await analytics.closeAndFlush({ timeout: 20000 });
  const phoneBefore = await get(server, '/api/v1/profiles/lookup?anonymous_id=story-phone');
  const laptopBefore = await get(server, '/api/v1/profiles/lookup?anonymous_id=story-laptop');
  assert.equal(phoneBefore.status, 200);
  assert.notEqual(phoneBefore.json.id, laptopBefore.json.id, 'two anonymous devices are two profiles at first');

  // Identify on the phone; later a login and a purchase on the laptop.
  const later = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 1, maxRetries: 2 });
  later.on('error', (e) => errors.push(e));
  later.identify({ userId: 'story-ann', anonymousId: 'story-phone', messageId: 'story-4', timestamp: at(4),
    traits: { email: 'Ann.Story@Example.com', name: 'Ann' } });
  later.identify({ userId: 'story-ann', anonymousId: 'story-laptop', messageId: 'story-5', timestamp: at(5) });
  later.track({ context: { consent: GRANT_ALL }, userId: 'story-ann', anonymousId: 'story-laptop', messageId: 'story-6', timestamp: at(6),
    event: 'Order Completed', properties: { revenue: 1299, currency: 'EUR' } });
  await later.closeAndFlush({ timeout: 20000 });
  assert.deepEqual(errors, []);

  const byEmail = await get(server, '/api/v1/profiles/lookup?email=ann.story@example.com');
  assert.equal(byEmail.status, 200);
  const profile = byEmail.json;
  const ids = profile.identifiers.map((i) => `${i.type}:${i.value}`).sort();
  assert.deepEqual(ids, ['anonymous_id:story-laptop', 'anonymous_id:story-phone', 'email:ann.story@example.com',
    'user_id:story-ann']);
  assert.equal(profile.event_count, 6);
  assert.equal(profile.traits.name, 'Ann');
  // Within the clock-skew correction (sentAt vs. arrival) of the sent times.
  assert.match(profile.first_seen, /^2025-03-10T09:01:00\./);
  assert.match(profile.last_seen, /^2025-03-10T09:06:00\./);
  for (const q of ['user_id=story-ann', 'anonymous_id=story-laptop', 'anonymousId=story-phone']) {
    assert.equal((await get(server, `/api/v1/profiles/lookup?${q}`)).json.id, profile.id, q);
  }
  // The laptop's old profile id still answers, with the merged profile.
  const old = await get(server, `/api/v1/profiles/${laptopBefore.json.id}`);
  assert.equal(old.json.id, profile.id);
  assert.equal(old.json.merged_from, laptopBefore.json.id);

  const timeline = await get(server, `/api/v1/profiles/${profile.id}/events`);
  assert.deepEqual(timeline.json.events.map((e) => e.messageId),
    ['story-1', 'story-2', 'story-3', 'story-4', 'story-5', 'story-6']);
  const why = await get(server, `/api/v1/profiles/${profile.id}/identities`);
  assert.equal(why.json.merges.length, 1);
  // analytics-node sends concurrently, so story-4, -5 and -6 may arrive in any order; whichever
  // first ties userId to both devices' profiles is the merge. The laptop's profile, whose first
  // event is later, is always the one absorbed.
  assert.ok(['story-4', 'story-5', 'story-6'].includes(why.json.merges[0].event), why.json.merges[0].event);
  assert.equal(why.json.merges[0].absorbed, laptopBefore.json.id);
});
