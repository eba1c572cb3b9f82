// The rights of the person over HTTP (docs/gdpr.md): access (export) and erasure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, post, api, get, cli, cleanup, tempDir } from '../lib/server.mjs';

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

// Every file under `dir`, recursively.
function filesUnder(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

// The files under `dir` that hold `text` (as UTF-8 bytes).
function filesHolding(dir, text) {
  const needle = Buffer.from(text, 'utf8');
  return filesUnder(dir).filter((f) => readFileSync(f).includes(needle));
}

test('erasure: immediate, complete, receipted; the person cannot come back', async (t) => {
  const data = tempDir();
  let s = await startServer({ data });
  t.after(async () => { await s.stop(); cleanup(data); });
  // Unique strings, so that a byte scan finds only this person's data.
  const ZOE = { userId: 'zq-user-5d1c', email: 'zoe.quintessa.5d1c@example.org', name: 'Zoe Quintessa-Vandermeer',
                message: 'my boiler whistles like a kettle 5d1c', device: 'zq-phone-5d1c' };
  const KEEP = { userId: 'kp-user-8e2b', email: 'keep.8e2b@example.org', message: 'the invoice is fine 8e2b' };
  const zoeEvents = [
    { type: 'identify', userId: ZOE.userId, anonymousId: ZOE.device, traits: { email: ZOE.email, name: ZOE.name }, messageId: 'm-zq-1' },
    ...Array.from({ length: 50 }, (_, i) => ({
      type: 'track', userId: ZOE.userId, event: 'Support Message', properties: { text: ZOE.message }, messageId: `m-zq-t${i}` })),
  ];
  const r = await post(s, '/v1/batch', { batch: [
    ...zoeEvents,
    { type: 'identify', userId: KEEP.userId, traits: { email: KEEP.email }, messageId: 'm-kp-1' },
    { type: 'track', userId: KEEP.userId, event: 'Support Message', properties: { text: KEEP.message }, messageId: 'm-kp-2' },
  ] });
  assert.equal(r.json.stored, 53, r.text);
  const id = (await get(s, `/api/v1/profiles/lookup?email=${ZOE.email}`)).json.id;
  const exported = (await api(s, 'GET', `/api/v1/profiles/${id}/export`)).json;
  assert.equal(exported.events.length, 51);
  const storeExport = cli(['export', '--data', data]);  // the whole store, next to the running server
  assert.equal(storeExport.status, 0, storeExport.stderr);
  const exportFile = join(tempDir(), 'before-erasure.jsonl');
  writeFileSync(exportFile, storeExport.stdout);

  // At rest, events and traits are sealed: the message is nowhere in plaintext even before.
  assert.deepEqual(filesHolding(data, ZOE.message), [], 'event payloads are encrypted at rest');
  assert.deepEqual(filesHolding(data, ZOE.name), [], 'traits are encrypted at rest');

  // Erasure needs the gdpr scope and an unrestricted key.
  const reader = await api(s, 'POST', '/api/v1/keys', { name: 'reader', scopes: ['profiles:read'] });
  assert.equal((await api(s, 'DELETE', `/api/v1/profiles/${id}`, undefined, { key: reader.json.key })).status, 403);
  const erased = await api(s, 'DELETE', `/api/v1/profiles/${id}`);
  assert.equal(erased.status, 200, erased.text);
  const receipt = erased.json;
  console.log(`erasure of ${receipt.scope.events} events: ${receipt.duration_ms} ms (receipt ${receipt.receipt_id})`);
  assert.match(receipt.receipt_id, /^er_[0-9a-f]{24}$/);
  assert.equal(receipt.profile_id, id);
  assert.ok(Date.parse(receipt.erased_at) <= Date.parse(receipt.completed_at));
  assert.equal(receipt.scope.events, 51);
  assert.equal(receipt.scope.identifiers, 3);
  assert.equal(receipt.scope.traits, 2);
  assert.ok(receipt.scope.data_keys_destroyed >= 1);
  assert.equal(receipt.purged, true);
  assert.deepEqual(receipt.suppressed.map((x) => x.type).sort(), ['anonymous_id', 'email', 'user_id']);
  assert.ok(receipt.suppressed.every((x) => /^[0-9a-f]{64}$/.test(x.hash)));
  assert.ok(!erased.text.includes(ZOE.email) && !erased.text.includes(ZOE.userId), 'the receipt names no identifier');

  // Immediately nothing is readable, by id, identifier or event search; the other person stays.
  assert.equal((await api(s, 'GET', `/api/v1/profiles/${id}`)).status, 404);
  assert.equal((await get(s, `/api/v1/profiles/lookup?email=${ZOE.email}`)).status, 404);
  assert.deepEqual((await get(s, `/api/v1/events?userId=${ZOE.userId}`)).json.events, []);
  assert.equal((await api(s, 'DELETE', `/api/v1/profiles/${id}`)).status, 404, 'erased once');
  const keep = (await get(s, `/api/v1/profiles/lookup?email=${KEEP.email}`)).json;
  assert.equal(keep.event_count, 2);
  // The erasure is in the audit log, under its receipt.
  const audit = (await api(s, 'GET', `/api/v1/audit?profile_id=${id}`)).json.entries;
  assert.equal(audit[0].action, 'profile_erase');
  assert.equal(audit[0].subject, `receipt ${receipt.receipt_id}`);

  // Sending the old events again (a re-import of the export) does not bring her back.
  const again = await post(s, '/v1/import', { batch: exported.events });
  assert.equal(again.json.refused, 51, again.text);
  assert.ok(again.json.results.every((x) => x.reason.code === 'identifier_suppressed'), again.text);
  const fresh = await post(s, '/v1/identify', { userId: 'someone-new', traits: { email: ZOE.email.toUpperCase() } });
  assert.equal(fresh.json.status, 'refused', fresh.text);
  assert.equal(fresh.json.reason.code, 'identifier_suppressed');
  assert.equal((await get(s, `/api/v1/profiles/lookup?email=${ZOE.email}`)).status, 404);
  const metrics = await (await fetch(s.url + '/metrics')).text();
  assert.match(metrics, /rapport_events_refused_total\{reason="identifier_suppressed"\} [1-9]/);

  // After a compaction, no file of the data directory holds her email, name, messages or ids;
  // the other person's identifiers are still in the indexes (the scan finds what is there).
  await s.stop();
  const compacted = cli(['compact', '--data', data]);
  assert.equal(compacted.status, 0, compacted.stderr);
  for (const text of [ZOE.email, ZOE.name, ZOE.message, ZOE.userId, ZOE.device]) {
    assert.deepEqual(filesHolding(data, text), [], `${text} is still on disk`);
  }
  assert.notDeepEqual(filesHolding(data, KEEP.email), [], 'the scan finds index entries that are there');
  assert.deepEqual(filesHolding(data, KEEP.message), [], 'payloads stay sealed');

  // An import of the store's export from before the erasure (server stopped) stores nothing of her.
  const imported = cli(['import', exportFile, '--data', data]);
  assert.equal(imported.status, 2, 'some lines were not stored');
  assert.match(imported.stderr, /imported 53 lines: 0 stored, 2 duplicate, 0 rejected, 51 refused/);
  assert.match(imported.stderr, /refused: .*erased/);

  s = await startServer({ data });
  {
    assert.equal((await get(s, `/api/v1/profiles/lookup?email=${ZOE.email}`)).status, 404);
    assert.equal((await get(s, `/api/v1/profiles/lookup?email=${KEEP.email}`)).json.event_count, 2);
    // An admin finds the suppression by the identifier and lifts it: her events are stored again,
    // on a new profile with nothing of before.
    const found = (await api(s, 'GET', `/api/v1/suppressions?type=email&value=${ZOE.email}`)).json.suppressions;
    assert.equal(found.length, 1);
    assert.equal(found[0].receipt_id, receipt.receipt_id);
    const all = (await api(s, 'GET', '/api/v1/suppressions?limit=2')).json;
    assert.equal(all.suppressions.length, 2);
    assert.ok(all.next_cursor);
    const rest = (await api(s, 'GET', `/api/v1/suppressions?cursor=${all.next_cursor}`)).json;
    assert.equal(rest.suppressions.length, 1);
    assert.equal((await api(s, 'DELETE', `/api/v1/suppressions/${found[0].hash}`, undefined, { key: reader.json.key })).status, 403);
    assert.equal((await api(s, 'DELETE', '/api/v1/suppressions/xyz')).json.error.code, 'invalid_hash');
    const lifted = await api(s, 'DELETE', `/api/v1/suppressions/${found[0].hash}`);
    assert.equal(lifted.status, 200, lifted.text);
    assert.equal((await api(s, 'DELETE', `/api/v1/suppressions/${found[0].hash}`)).status, 404);
    const back = await post(s, '/v1/identify', { userId: 'zoe-returns', traits: { email: ZOE.email } });
    assert.equal(back.json.status, 'stored', back.text);
    const now = (await get(s, `/api/v1/profiles/lookup?email=${ZOE.email}`)).json;
    assert.equal(now.event_count, 1);
    assert.equal(now.traits.name, undefined);
  }
});
