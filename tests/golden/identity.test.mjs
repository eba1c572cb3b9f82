// Golden tests of identity resolution: each file in identity/ sends events (and splits) to the
// real server and states the profiles that must result — identifiers, events, traits, and the
// refused links with their reasons. Events carry their own messageId and timestamp.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { startServer, post, put, get, cleanup } from '../lib/server.mjs';

const dir = new URL('./identity/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

async function lookup(server, query) {
  return get(server, `/api/v1/profiles/lookup?${query}`);
}

for (const file of files) {
  const c = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  test(`${file}: ${c.description}`, async () => {
    const server = await startServer();
    try {
      for (const step of c.steps) {
        if (step.send) {
          const r = await post(server, '/v1/batch', { batch: step.send });
          assert.equal(r.status, 200, r.text);
        }
        if (step.settings) {
          const r = await put(server, '/api/v1/settings/merge-protection', step.settings,
            { key: null, headers: { Authorization: `Bearer ${server.secretKey}` } });
          assert.equal(r.status, step.status, r.text);
          if (step.code) {
            assert.equal(r.json.error.code, step.code);
            assert.equal(r.json.error.field, step.field);
          }
        }
        if (step.split) {
          const owner = await lookup(server, step.split.profile_of);
          assert.equal(owner.status, 200, owner.text);
          const r = await post(server, `/api/v1/profiles/${step.split.profile ?? owner.json.id}/split`,
            step.split.identifier, { key: null, headers: { Authorization: `Bearer ${server.secretKey}` } });
          assert.equal(r.status, step.split.status, r.text);
          if (step.split.code) assert.equal(r.json.error.code, step.split.code);
        }
      }
      const seen = new Set();
      for (const want of c.profiles) {
        const r = await lookup(server, want.lookup);
        assert.equal(r.status, 200, `${want.lookup}: ${r.text}`);
        const p = r.json;
        seen.add(p.id);
        assert.deepEqual(p.identifiers.map((i) => `${i.type}:${i.value}`).sort(), [...want.identifiers].sort(),
          `identifiers of ${want.lookup}`);
        const events = await get(server, `/api/v1/profiles/${p.id}/events`);
        assert.deepEqual(events.json.events.map((e) => e.messageId), want.events, `events of ${want.lookup}`);
        if (want.traits) assert.deepEqual(p.traits, want.traits, `traits of ${want.lookup}`);
        const why = await get(server, `/api/v1/profiles/${p.id}/identities`);
        const blocked = why.json.blocked.map((b) => ({ identifier: b.identifier, event: b.event, reason: b.reason }));
        assert.equal(blocked.length, (want.blocked ?? []).length, `blocked links of ${want.lookup}: ${JSON.stringify(blocked)}`);
        (want.blocked ?? []).forEach((b, i) => {
          assert.equal(blocked[i].identifier, b.identifier);
          assert.equal(blocked[i].event, b.event);
          assert.ok(blocked[i].reason.includes(b.reason_contains), `"${blocked[i].reason}" lacks "${b.reason_contains}"`);
        });
      }
      assert.equal(seen.size, c.profiles.length, 'each expected profile is a distinct profile');
      for (const query of c.unknown ?? []) {
        const r = await lookup(server, query);
        assert.equal(r.status, 404, `${query} must belong to no profile: ${r.text}`);
        assert.equal(r.json.error.code, 'profile_not_found');
      }
      if (c.merge_protection) {
        const r = await get(server, '/api/v1/settings/merge-protection');
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, c.merge_protection);
      }
      for (const want of c.refused ?? []) {
        const r = await lookup(server, want.lookup);
        assert.equal(r.status, want.status, `${want.lookup}: ${r.text}`);
        assert.equal(r.json.error.code, want.code);
      }
    } finally {
      await server.stop();
      cleanup(server.data);
    }
  });
}
