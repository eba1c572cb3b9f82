// Keys, purposes, the audit log and rate limits over HTTP (docs/api/keys.md, audit.md,
// operations.md#abuse-limits).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, post, api, get, cleanup } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

const newKey = async (spec) => {
  const r = await api(server, 'POST', '/api/v1/keys', spec);
  assert.equal(r.status, 201, r.text);
  return r.json;
};

// Every file under `dir`, recursively.
function filesUnder(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

test('a key is shown once, stored hashed, listed with its last use, and revoked at once', async () => {
  const created = await newKey({ name: 'support desk', scopes: ['profiles:read'] });
  assert.match(created.key, /^sk_[0-9a-f]{64}$/);
  assert.equal(created.name, 'support desk');
  assert.deepEqual(created.scopes, ['profiles:read']);
  assert.equal(created.purposes, null);
  assert.equal(created.last_used_at, null);
  assert.equal(created.revoked_at, null);

  const listed = await api(server, 'GET', '/api/v1/keys');
  assert.equal(listed.status, 200);
  const mine = listed.json.keys.find((k) => k.id === created.id);
  assert.ok(mine, listed.text);
  assert.equal(mine.key, undefined, 'a listed key never shows the key');
  assert.ok(!listed.text.includes(created.key));
  assert.deepEqual(listed.json.keys.map((k) => k.kind).sort().slice(0, 2), ['secret', 'secret']);

  // Its scopes hold: it reads profiles, and nothing else.
  assert.equal((await api(server, 'GET', '/api/v1/settings/purposes', undefined, { key: created.key })).status, 200);
  const denied = await api(server, 'GET', '/api/v1/keys', undefined, { key: created.key });
  assert.equal(denied.status, 403);
  assert.equal(denied.json.error.code, 'missing_scope');
  assert.match(denied.json.error.message, /'admin'/);
  const used = await api(server, 'GET', `/api/v1/keys/${created.id}`);
  assert.ok(Date.parse(used.json.last_used_at) >= Date.parse(created.created_at), used.text);

  // Stored only as a hash: no file of the store holds the key.
  for (const file of filesUnder(server.data)) {
    assert.ok(!readFileSync(file).includes(created.key), `${file} holds the key`);
  }

  const revoked = await api(server, 'DELETE', `/api/v1/keys/${created.id}`);
  assert.equal(revoked.status, 200, revoked.text);
  assert.ok(revoked.json.revoked_at);
  const after = await api(server, 'GET', '/api/v1/settings/purposes', undefined, { key: created.key });
  assert.equal(after.status, 401);
  assert.equal(after.json.error.code, 'invalid_secret_key');
  assert.equal((await api(server, 'DELETE', `/api/v1/keys/${created.id}`)).status, 200, 'revoking twice is fine');
  assert.equal((await api(server, 'GET', '/api/v1/keys/0123456789abcdef')).json.error.code, 'key_not_found');
});

test('bad key specs are answered 400 naming the field; the last admin key stays', async () => {
  const bad = async (spec, code, field) => {
    const r = await api(server, 'POST', '/api/v1/keys', spec);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, code, r.text);
    assert.equal(r.json.error.field, field, r.text);
  };
  await bad({ scopes: ['profiles:read'] }, 'missing_field', 'name');
  await bad({ name: 'x', scopes: ['root'] }, 'unknown_scope', 'scopes');
  await bad({ name: 'x', scopes: ['operator'] }, 'unknown_scope', 'scopes');
  await bad({ name: 'x' }, 'missing_field', 'scopes');
  await bad({ name: 'x', scopes: ['decide'], purposes: ['spying'] }, 'unknown_purpose', 'purposes');
  await bad({ name: 'x', kind: 'write', scopes: ['decide'] }, 'invalid_field', 'scopes');
  await bad({ name: 'x', scopes: ['decide'], colour: 'red' }, 'unknown_field', 'colour');
  await bad({ name: 'x', scopes: ['decide'], rate: { per_second: -1 } }, 'invalid_field', 'rate');
  await bad({ name: 'x', scopes: 'decide' }, 'invalid_type', 'scopes');
  const notJson = await api(server, 'POST', '/api/v1/keys', '{');
  assert.equal(notJson.json.error.code, 'malformed_json');

  // The demo workspace's own admin key can only go once another admin key exists.
  const me = (await api(server, 'GET', '/api/v1/whoami')).json;
  assert.ok(me.scopes.includes('admin') && me.scopes.includes('operator'), JSON.stringify(me));
  const last = await api(server, 'DELETE', `/api/v1/keys/${me.id}`);
  assert.equal(last.status, 409, last.text);
  assert.equal(last.json.error.code, 'last_admin_key');
});

test('a key gives no more than it holds; a restricted key may withdraw consent but not grant it', async () => {
  const adminOnly = await newKey({ name: 'key desk', scopes: ['admin'] });
  const as = { key: adminOnly.key };
  const escalate = await api(server, 'POST', '/api/v1/keys', { name: 'x', scopes: ['profiles:read'] }, as);
  assert.equal(escalate.status, 403, escalate.text);
  assert.equal(escalate.json.error.code, 'missing_scope');
  assert.equal((await api(server, 'POST', '/api/v1/keys', { name: 'site', kind: 'write' }, as)).status, 201);
  assert.equal((await api(server, 'POST', '/api/v1/keys', { name: 'y', scopes: ['admin'] }, as)).status, 201);

  const narrow = await newKey({ name: 'narrow admin', scopes: ['admin', 'profiles:read', 'consent'], purposes: ['marketing'] });
  const widen = await api(server, 'POST', '/api/v1/keys', { name: 'z', scopes: ['profiles:read'] }, { key: narrow.key });
  assert.equal(widen.status, 403, widen.text);
  assert.equal(widen.json.error.code, 'purpose_restricted');
  const other = await api(server, 'POST', '/api/v1/keys', { name: 'z', scopes: ['profiles:read'], purposes: ['analytics'] }, { key: narrow.key });
  assert.equal(other.status, 403, other.text);
  assert.equal((await api(server, 'POST', '/api/v1/keys', { name: 'z', scopes: ['profiles:read'], purposes: ['marketing'] }, { key: narrow.key })).status, 201);

  const id = await person('esc-1', { analytics: true });
  const grant = await api(server, 'PUT', `/api/v1/profiles/${id}/consent`, { purposes: { marketing: 'granted' } }, { key: narrow.key });
  assert.equal(grant.status, 403, grant.text);
  assert.equal(grant.json.error.code, 'purpose_restricted');
  assert.equal(grant.json.error.field, 'purposes.marketing');
  const deny = await api(server, 'PUT', `/api/v1/profiles/${id}/consent`, { purposes: { marketing: 'denied' } }, { key: narrow.key });
  assert.equal(deny.status, 200, deny.text);
});

test('a key of another workspace never sees or revokes this one\'s keys', async () => {
  const other = await api(server, 'POST', '/api/v1/workspaces', { name: 'keys-other' });
  assert.equal(other.status, 201, other.text);
  const mine = await newKey({ name: 'mine', scopes: ['profiles:read'] });
  const theirs = { key: other.json.secret_key };
  const list = await api(server, 'GET', '/api/v1/keys', undefined, theirs);
  assert.equal(list.status, 200);
  assert.ok(!list.json.keys.some((k) => k.id === mine.id));
  assert.equal((await api(server, 'GET', `/api/v1/keys/${mine.id}`, undefined, theirs)).status, 404);
  assert.equal((await api(server, 'DELETE', `/api/v1/keys/${mine.id}`, undefined, theirs)).status, 404);
  assert.equal((await api(server, 'GET', '/api/v1/whoami', undefined, { key: mine.key })).status, 200);
  // A workspace admin is not the operator.
  const create = await api(server, 'POST', '/api/v1/workspaces', { name: 'keys-third' }, theirs);
  assert.equal(create.status, 403);
});

// A person of the demo workspace with the consent `categories`, and an identify (necessary),
// an order (analytics) and an opened e-mail (marketing); those not granted are refused.
async function person(userId, categories) {
  const consent = { categoryPreferences: categories };
  const r = await post(server, '/v1/batch', { batch: [
    { type: 'identify', userId, messageId: `${userId}-id`, traits: { email: `${userId}@example.com` } },
    { type: 'track', userId, messageId: `${userId}-order`, event: 'Order Completed' },
    { type: 'track', userId, messageId: `${userId}-mail`, event: 'Email Opened' },
  ], context: { consent } });
  assert.equal(r.json.stored, 1 + Object.values(categories).filter(Boolean).length, r.text);
  return (await get(server, `/api/v1/profiles/lookup?user_id=${userId}`)).json.id;
}

test('a key restricted to purposes reads only what the person granted for them', async () => {
  const trait = await api(server, 'POST', '/api/v1/computed-traits', { name: 'orders', kind: 'count', event: 'Order Completed' });
  assert.equal(trait.status, 201, trait.text);
  const segment = await api(server, 'POST', '/api/v1/segments', { name: 'buyers', expression: 'computed.orders >= 1' });
  assert.equal(segment.status, 201, segment.text);
  const id = await person('pr-1', { analytics: true, marketing: true });
  const marketing = await newKey({ name: 'newsletter', scopes: ['profiles:read', 'consent'], purposes: ['marketing'] });
  assert.deepEqual(marketing.purposes, ['marketing']);
  const as = { key: marketing.key };

  const profile = await api(server, 'GET', `/api/v1/profiles/${id}`, undefined, as);
  assert.equal(profile.status, 200, profile.text);
  assert.deepEqual(profile.json.restricted_to, ['marketing', 'necessary']);
  assert.equal(profile.json.computed, undefined, 'computed traits are analytics');
  assert.equal(profile.json.segments, undefined, 'segments are analytics');
  assert.equal(profile.json.traits.email, 'pr-1@example.com', 'identify is necessary');
  const full = await api(server, 'GET', `/api/v1/profiles/${id}`);
  assert.equal(full.json.restricted_to, undefined);
  assert.ok(full.json.segments !== undefined);

  const timeline = async (key) =>
    (await api(server, 'GET', `/api/v1/profiles/${id}/events`, undefined, key)).json.events
      .filter((e) => e.type !== 'membership').map((e) => e.messageId).sort();
  const events = async (key) =>
    (await api(server, 'GET', '/api/v1/events?userId=pr-1', undefined, key)).json.events.map((e) => e.messageId).sort();
  assert.deepEqual(await timeline(as), ['pr-1-id', 'pr-1-mail']);
  assert.deepEqual(await events(as), ['pr-1-id', 'pr-1-mail']);
  assert.deepEqual(await timeline(undefined), ['pr-1-id', 'pr-1-mail', 'pr-1-order']);

  // The person withdraws marketing: from the next read on, the key sees only what is necessary
  // (the withdrawal itself is such a record).
  const withdrawn = await api(server, 'PUT', `/api/v1/profiles/${id}/consent`, { purposes: { marketing: 'denied' } });
  assert.equal(withdrawn.status, 200, withdrawn.text);
  const record = withdrawn.json.purposes.marketing.event;
  assert.deepEqual(await timeline(as), [record, 'pr-1-id'].sort());
  assert.deepEqual(await events(as), [record, 'pr-1-id'].sort());
  assert.deepEqual((await api(server, 'GET', `/api/v1/profiles/${id}`, undefined, as)).json.restricted_to, ['necessary']);

  // Segment members are analytics: refused to a marketing key; an analytics key sees only the
  // members who granted it.
  const members = await api(server, 'GET', '/api/v1/segments/buyers/members', undefined, as);
  assert.equal(members.status, 403);
  assert.equal(members.json.error.code, 'purpose_restricted');
  await person('pr-2', { analytics: true });
  const analytics = await newKey({ name: 'bi', scopes: ['profiles:read'], purposes: ['analytics'] });
  const before = (await api(server, 'GET', '/api/v1/segments/buyers/members?limit=1000', undefined, { key: analytics.key })).json;
  assert.ok(before.members.some((m) => m.profile_id === id), JSON.stringify(before));
  await api(server, 'PUT', `/api/v1/profiles/${id}/consent`, { purposes: { analytics: 'denied' } });
  const after = (await api(server, 'GET', '/api/v1/segments/buyers/members?limit=1000', undefined, { key: analytics.key })).json;
  assert.ok(!after.members.some((m) => m.profile_id === id), JSON.stringify(after));
  assert.ok(after.members.length >= 1);
});

test('every read of personal data is in the audit log: key, profile, purposes, time', async () => {
  const id = await person('au-1', { analytics: true, marketing: true });
  const reader = await newKey({ name: 'auditee', scopes: ['profiles:read', 'consent'], purposes: ['marketing'] });
  const as = { key: reader.key };
  const t0 = Date.now();
  const reads = [
    [`/api/v1/profiles/${id}`, 'profile'],
    ['/api/v1/profiles/lookup?email=au-1@example.com', 'profile_lookup'],
    [`/api/v1/profiles/${id}/identities`, 'profile_identities'],
    [`/api/v1/profiles/${id}/events`, 'profile_events'],
    [`/api/v1/profiles/${id}/consent`, 'profile_consent'],
    ['/api/v1/events?userId=au-1', 'events'],
  ];
  for (const [path] of reads) assert.equal((await api(server, 'GET', path, undefined, as)).status, 200, path);
  // Not found reads no one's data, and is not logged as a read of this person.
  assert.equal((await api(server, 'GET', '/api/v1/profiles/999999999', undefined, as)).status, 404);

  const log = await api(server, 'GET', `/api/v1/audit?key_id=${reader.id}`);
  assert.equal(log.status, 200, log.text);
  const entries = log.json.entries;
  assert.deepEqual(entries.map((e) => e.action), reads.map(([, action]) => action).reverse(), 'newest first');
  for (const e of entries) {
    assert.equal(e.profile_id, id);
    assert.deepEqual(e.key, { id: reader.id, name: 'auditee' });
    assert.deepEqual(e.purposes, ['marketing']);
    assert.ok(Date.parse(e.at) >= t0 - 1000 && Date.parse(e.at) <= Date.now() + 1000, e.at);
  }
  assert.equal(entries.find((e) => e.action === 'profile_events').count, 2);

  // By profile, paged.
  const seen = [];
  let cursor = null;
  do {
    const page = await api(server, 'GET', `/api/v1/audit?profile_id=${id}&limit=4${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(page.status, 200, page.text);
    seen.push(...page.json.entries);
    cursor = page.json.next_cursor;
  } while (cursor);
  assert.equal(seen.length, reads.length + 1, 'the read to set up the person is there too');
  assert.ok(seen.every((e) => e.profile_id === id));

  const bad = await api(server, 'GET', '/api/v1/audit?since=yesterday');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.field, 'since');
  const badId = await api(server, 'GET', '/api/v1/audit?profile_id=x1');
  assert.deepEqual([badId.status, badId.json.error.code, badId.json.error.field], [400, 'invalid_profile_id', 'profile_id']);
  assert.equal((await api(server, 'GET', '/api/v1/audit', undefined, as)).status, 403);
  // Another workspace's log does not hold this workspace's reads.
  const other = await api(server, 'POST', '/api/v1/workspaces', { name: 'audit-other' });
  const theirs = await api(server, 'GET', '/api/v1/audit', undefined, { key: other.json.secret_key });
  assert.deepEqual(theirs.json.entries, []);
});

test('a key beyond its rate is answered 429 with Retry-After, in each surface\'s shape', async () => {
  const slow = await newKey({ name: 'slow', scopes: ['profiles:read'], rate: { per_second: 0.5, burst: 2 } });
  assert.deepEqual(slow.rate, { per_second: 0.5, burst: 2 });
  const as = { key: slow.key };
  assert.equal((await api(server, 'GET', '/api/v1/whoami', undefined, as)).status, 200);
  assert.equal((await api(server, 'GET', '/api/v1/whoami', undefined, as)).status, 200);
  const limited = await api(server, 'GET', '/api/v1/whoami', undefined, as);
  assert.equal(limited.status, 429, limited.text);
  assert.equal(limited.json.error.code, 'rate_limited');
  assert.ok(Number(limited.headers.get('retry-after')) >= 1 && Number(limited.headers.get('retry-after')) <= 2);
  assert.equal(limited.json.error.retry_after, Number(limited.headers.get('retry-after')));
  // Other keys are not affected.
  assert.equal((await api(server, 'GET', '/api/v1/whoami')).status, 200);

  const write = await newKey({ name: 'site', kind: 'write', rate: { per_second: 1, burst: 1 } });
  assert.match(write.key, /^wk_/);
  assert.equal((await post(server, '/v1/track', { userId: 'rl', event: 'E' }, { key: write.key })).status, 200);
  const refused = await post(server, '/v1/track', { userId: 'rl', event: 'E' }, { key: write.key });
  assert.equal(refused.status, 429, refused.text);
  assert.equal(refused.json.success, false);
  assert.equal(refused.json.code, 'rate_limited');
  assert.equal(refused.headers.get('retry-after'), '1');
});

test('the server-wide rates are flags', async () => {
  const tight = await startServer({ args: ['--secret-key-rate', '1', '--secret-key-burst', '3'] });
  try {
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await api(tight, 'GET', '/api/v1/whoami')).status);
    assert.deepEqual(codes, [200, 200, 200, 429, 429]);
  } finally {
    await tight.stop();
    cleanup(tight.data);
  }
});
