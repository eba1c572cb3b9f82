// The rights of the person over HTTP (docs/api/profiles.md#export): access (export).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, post, api, get, cleanup } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

test('an export holds everything about the person: profile, identities, consent, events, audit', async () => {
  const batch = [
    { type: 'identify', userId: 'ex-1', anonymousId: 'ex-1-phone', traits: { email: 'ex-1@example.com', name: 'Eva' } },
    ...Array.from({ length: 1200 }, (_, i) => ({ type: 'track', userId: 'ex-1', event: 'Viewed', messageId: `ex-1-${i}` })),
  ];
  for (let i = 0; i < batch.length; i += 400) {
    const r = await post(server, '/v1/batch', { batch: batch.slice(i, i + 400) });
    assert.equal(r.json.rejected + r.json.refused, 0, r.text);
  }
  await post(server, '/v1/track', { userId: 'someone-else', event: 'Viewed' });
  const id = (await get(server, '/api/v1/profiles/lookup?user_id=ex-1')).json.id;
  await get(server, `/api/v1/profiles/${id}/events`);

  const r = await api(server, 'GET', `/api/v1/profiles/${id}/export`);
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.match(r.headers.get('content-disposition'), new RegExp(`profile-${id}-export\\.json`));
  const x = r.json;
  assert.ok(Date.parse(x.exported_at));
  assert.equal(x.profile.id, id);
  assert.equal(x.profile.traits.name, 'Eva');
  assert.deepEqual(x.identities.identities.map((i) => i.type).sort(), ['anonymous_id', 'email', 'user_id']);
  assert.equal(x.consent.purposes.analytics.state, 'granted');
  assert.equal(x.events.length, 1201);
  assert.ok(x.events.every((e) => e.userId === 'ex-1'), 'only the person\'s events');
  assert.deepEqual(x.decisions, []);
  // The reads of them, newest first: this export, the timeline read, the lookup.
  assert.deepEqual(x.audit.slice(0, 3).map((e) => e.action), ['profile_export', 'profile_events', 'profile_lookup']);
  assert.equal(x.audit[0].count, 1201);
  assert.ok(x.audit.every((e) => e.profile_id === id));

  // The export is a read of personal data like any other; other workspaces cannot make one.
  const other = await api(server, 'POST', '/api/v1/workspaces', { name: 'gdpr-other' });
  assert.equal((await api(server, 'GET', `/api/v1/profiles/${id}/export`, undefined, { key: other.json.secret_key })).status, 404);
  const restricted = await api(server, 'POST', '/api/v1/keys', { name: 'dpo-desk', scopes: ['gdpr'], purposes: ['marketing'] });
  const partial = await api(server, 'GET', `/api/v1/profiles/${id}/export`, undefined, { key: restricted.json.key });
  assert.equal(partial.status, 403, 'an export is everything: not for a key restricted to purposes');
  assert.equal(partial.json.error.code, 'purpose_restricted');
  const reader = await api(server, 'POST', '/api/v1/keys', { name: 'reader', scopes: ['profiles:read'] });
  const refused = await api(server, 'GET', `/api/v1/profiles/${id}/export`, undefined, { key: reader.json.key });
  assert.equal(refused.status, 403);
  assert.match(refused.json.error.message, /'gdpr'/);
});
