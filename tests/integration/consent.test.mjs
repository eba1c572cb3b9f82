// Consent over HTTP (docs/consent.md): fail closed, the reasons in answers and metrics, the
// consent API, withdrawal at the next request, purposes per workspace, and clear errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, post, put, get, eventsOf, cleanup } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

const bearer = (key = server.secretKey) => ({ key: null, headers: { Authorization: `Bearer ${key}` } });
const noConsent = { consent: false };
const refusedTotal = async (reason) => {
  const m = (await get(server, '/metrics', { key: null })).text.match(
    new RegExp(`^rapport_events_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : 0;
};

test('without consent an event is not stored; the answer and the metrics say why', async () => {
  const before = await refusedTotal('consent_missing');
  const r = await post(server, '/v1/track', { userId: 'fc-1', event: 'Viewed', messageId: 'fc-1-a' }, noConsent);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'refused');
  assert.equal(r.json.reason.code, 'consent_missing');
  assert.equal(r.json.reason.field, 'analytics');
  assert.match(r.json.reason.message, /has not granted 'analytics'/);
  assert.deepEqual(await eventsOf(server, { userId: 'fc-1' }), []);
  assert.equal((await get(server, '/api/v1/profiles/lookup?user_id=fc-1')).status, 404);
  assert.equal(await refusedTotal('consent_missing'), before + 1);

  // In a batch, each message gets its own answer; a refusal is not an error of the request.
  const batch = await post(server, '/v1/batch', { batch: [
    { type: 'identify', userId: 'fc-1', messageId: 'fc-1-b', traits: { name: 'Fenna' } },
    { type: 'page', userId: 'fc-1', messageId: 'fc-1-c', name: 'Home' },
    { type: 'track', userId: 'fc-1', messageId: 'fc-1-d', event: 'Viewed',
      context: { consent: { categoryPreferences: { Analytics: true } } } },
  ] }, noConsent);
  assert.equal(batch.status, 200, batch.text);
  assert.deepEqual([batch.json.stored, batch.json.refused, batch.json.rejected], [2, 1, 0]);
  assert.deepEqual(batch.json.results.map((x) => x.status), ['stored', 'refused', 'stored']);
  assert.equal(batch.json.results[1].reason.code, 'consent_missing');
  assert.deepEqual((await eventsOf(server, { userId: 'fc-1' })).map((e) => e.messageId), ['fc-1-b', 'fc-1-d']);
});

test('the consent API records choices as events, and a withdrawal holds from the next request', async () => {
  await post(server, '/v1/identify', { userId: 'api-1', traits: { name: 'Ann' } }, noConsent);
  const { json: profile } = await get(server, '/api/v1/profiles/lookup?user_id=api-1');
  assert.equal(profile.consent.necessary, 'granted');
  assert.equal(profile.consent.analytics, 'unknown');

  const path = `/api/v1/profiles/${profile.id}/consent`;
  const empty = await get(server, path);
  assert.equal(empty.status, 200, empty.text);
  assert.equal(empty.json.purposes.marketing.state, 'unknown');
  assert.equal(empty.json.purposes.marketing.choice, undefined);
  assert.match(empty.json.purposes.marketing.benefit, /offers/);
  assert.deepEqual(Object.keys(empty.json.purposes).sort(),
    ['analytics', 'location', 'marketing', 'necessary', 'personalization', 'proactive_service']);

  const granted = await put(server, path, { purposes: { analytics: 'granted', marketing: 'granted' }, text_version: 'v1' },
    bearer());
  assert.equal(granted.status, 200, granted.text);
  assert.equal(granted.json.purposes.analytics.state, 'granted');
  assert.equal(granted.json.purposes.analytics.source, 'api');
  assert.equal(granted.json.purposes.analytics.text_version, 'v1');
  assert.equal((await post(server, '/v1/track', { userId: 'api-1', event: 'Viewed' }, noConsent)).json.status, 'stored');

  const withdrawn = await put(server, path, { purposes: { analytics: 'denied' } }, bearer());
  assert.equal(withdrawn.json.purposes.analytics.state, 'denied');
  assert.equal(withdrawn.json.purposes.marketing.state, 'granted');
  const next = await post(server, '/v1/track', { userId: 'api-1', event: 'Viewed' }, noConsent);
  assert.equal(next.json.status, 'refused');
  assert.equal(next.json.reason.code, 'consent_denied');

  // Each change is an event of the person: on the timeline, with its source and text version.
  const { json: timeline } = await get(server, `/api/v1/profiles/${profile.id}/events`);
  const changes = timeline.events.filter((e) => e.event === 'Consent Changed');
  assert.equal(changes.length, 2);
  assert.deepEqual(changes[0].context.consent, { purposes: { analytics: true, marketing: true }, source: 'api', textVersion: 'v1' });
  assert.deepEqual(changes[1].context.consent.purposes, { analytics: false });
});

test('consent errors are clear and keys need the consent scope', async () => {
  await post(server, '/v1/identify', { userId: 'err-1' });
  const { json: p } = await get(server, '/api/v1/profiles/lookup?user_id=err-1');
  const path = `/api/v1/profiles/${p.id}/consent`;
  const cases = [
    [{ purposes: { necessary: 'denied' } }, 400, 'invalid_value', 'purposes.necessary'],
    [{ purposes: { research: 'granted' } }, 400, 'invalid_value', 'purposes.research'],
    [{ purposes: { marketing: true } }, 400, 'invalid_value', 'purposes.marketing'],
    [{ purposes: {} }, 400, 'missing_field', 'purposes'],
    [{ purposes: { marketing: 'denied' }, why: 1 }, 400, 'unknown_field', 'why'],
  ];
  for (const [body, status, code, field] of cases) {
    const r = await put(server, path, body, bearer());
    assert.deepEqual([r.status, r.json.error.code, r.json.error.field], [status, code, field], JSON.stringify(body));
  }
  assert.equal((await put(server, '/api/v1/profiles/999999/consent', { purposes: { marketing: 'denied' } }, bearer())).status, 404);
  assert.equal((await put(server, path, { purposes: { marketing: 'denied' } }, { key: null })).status, 401);
  assert.equal((await put(server, path, { purposes: { marketing: 'denied' } })).status, 401);  // a write key
  const made = await post(server, '/api/v1/keys', { name: 'reader', scopes: ['profiles:read'] }, bearer());
  assert.equal(made.status, 201, made.text);
  for (const r of [await get(server, path, { key: made.json.key }),
                   await put(server, path, { purposes: { marketing: 'denied' } }, bearer(made.json.key))]) {
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.code, 'missing_scope');
  }

  // Clients cannot claim a source only rapport sets; a malformed answer is not silently ignored.
  const forged = await post(server, '/v1/track', { userId: 'err-1', event: 'E',
    context: { consent: { categoryPreferences: { analytics: true }, source: 'api' } } });
  assert.deepEqual([forged.status, forged.json.code, forged.json.field], [400, 'reserved_field', 'context.consent.source']);
  const malformed = await post(server, '/v1/track', { userId: 'err-1', event: 'E',
    context: { consent: { categoryPreferences: { analytics: 'yes' } } } });
  assert.deepEqual([malformed.status, malformed.json.code, malformed.json.field],
    [400, 'invalid_consent', 'context.consent.categoryPreferences.analytics']);
});

test('a workspace adds purposes and maps events to them; nothing makes unknown a grant', async () => {
  const defaults = await get(server, '/api/v1/settings/purposes');
  assert.equal(defaults.status, 200);
  assert.equal(defaults.json.types.track, 'analytics');
  assert.equal(defaults.json.events['Presence Detected'], 'location');

  const set = await put(server, '/api/v1/settings/purposes', {
    purposes: { research: 'Your answers shape what we build next.' },
    events: { 'Survey Answered': 'research' }, categories: { Studies: 'research' },
  }, bearer());
  assert.equal(set.status, 200, set.text);
  assert.equal(set.json.events['Survey Answered'], 'research');
  assert.equal(set.json.events['Presence Detected'], 'location');  // defaults stay

  await post(server, '/v1/identify', { userId: 'res-1' }, noConsent);
  const survey = (consent) => post(server, '/v1/track', { userId: 'res-1', event: 'Survey Answered',
    context: consent ? { consent } : {} }, noConsent);
  assert.equal((await survey(undefined)).json.reason.field, 'research');
  // Analytics granted does not cover research; the mapped category does.
  assert.equal((await survey({ categoryPreferences: { analytics: true } })).json.status, 'refused');
  assert.equal((await survey({ categoryPreferences: { Studies: true } })).json.status, 'stored');
  const { json: p } = await get(server, '/api/v1/profiles/lookup?user_id=res-1');
  assert.equal(p.consent.research, 'granted');

  for (const [body, code, field] of [
    [{ unknown_means: 'granted' }, 'unknown_field', 'unknown_means'],
    [{ events: { 'Consent Changed': 'marketing' } }, 'invalid_value', 'events.Consent Changed'],
    [{ types: { page: 'nonexistent' } }, 'invalid_value', 'types.page'],
  ]) {
    const r = await put(server, '/api/v1/settings/purposes', body, bearer());
    assert.deepEqual([r.status, r.json.error.code, r.json.error.field], [400, code, field]);
  }
  // Reading the settings needs a key; changing them needs definitions:write.
  assert.equal((await get(server, '/api/v1/settings/purposes', { key: null })).status, 401);
});

test('consent outlives a restart', async () => {
  await post(server, '/v1/identify', { userId: 'keep-1' });
  const { json: p } = await get(server, '/api/v1/profiles/lookup?user_id=keep-1');
  await put(server, `/api/v1/profiles/${p.id}/consent`, { purposes: { marketing: 'denied', analytics: 'granted' } }, bearer());
  const data = server.data;
  await server.stop();
  server = await startServer({ data });
  const { json: again } = await get(server, '/api/v1/profiles/lookup?user_id=keep-1');
  assert.equal(again.consent.marketing, 'denied');
  assert.equal(again.consent.analytics, 'granted');
});
