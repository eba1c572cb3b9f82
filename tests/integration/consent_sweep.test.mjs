// The consent sweep (issue "Trust", proof 8): 100,000 random events of 300 people under random
// consent states — choices in the events (Segment's categories and rapport's purposes), changes
// through the API, events arriving out of time order — checked against a model of the rule in
// docs/consent.md: every answer, every read of a person's consent, and every stored event.
// Expected: 0 violations. RAPPORT_SWEEP_EVENTS changes the count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, post, put, get, eventsOf, cleanup } from '../lib/server.mjs';

const EVENTS = Number(process.env.RAPPORT_SWEEP_EVENTS ?? 100000);
const PEOPLE = 300;
const BATCH = 100;
const PURPOSES = ['analytics', 'personalization', 'marketing', 'location'];
// Event kinds and their purposes under the workspace settings below.
const KINDS = [
  { type: 'identify', purpose: 'necessary' },
  { type: 'page', name: 'Home', purpose: 'analytics' },
  { type: 'track', event: 'Viewed', purpose: 'analytics' },
  { type: 'track', event: 'Email Opened', purpose: 'marketing' },
  { type: 'track', event: 'Presence Detected', purpose: 'location' },
  { type: 'track', event: 'Recommendation Clicked', purpose: 'personalization' },
];
// How a choice may be sent: Segment category names (through the workspace's map or by name)
// or rapport's own purposes.
const CATEGORY_OF = { analytics: ['Analytics', 'analytics'], personalization: ['Functional', 'Personalization'],
  marketing: ['Advertising', 'marketing'], location: ['Location'] };

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

// splitmix-style deterministic random numbers, so a failure can be replayed.
function random(seed) {
  let s = BigInt(seed);
  return () => {
    s = (s + 0x9E3779B97F4A7C15n) & 0xFFFFFFFFFFFFFFFFn;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & 0xFFFFFFFFFFFFFFFFn;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & 0xFFFFFFFFFFFFFFFFn;
    return Number((z ^ (z >> 31n)) >> 11n) / 2 ** 53;
  };
}

// The rule: per person and purpose, the latest choice by (time, messageId), denied over granted
// at equal keys.
const newer = (a, b) => !b || a.at > b.at || (a.at === b.at && (a.id > b.id || (a.id === b.id && a.state === 'denied' && b.state !== 'denied')));

test(`consent sweep: ${EVENTS} random events and reads, 0 violations`, { timeout: 900000 }, async () => {
  const bearer = { key: null, headers: { Authorization: `Bearer ${server.secretKey}` } };
  const settings = await put(server, '/api/v1/settings/purposes', {
    events: { 'Recommendation Clicked': 'personalization' }, categories: { Advertising: 'marketing', Functional: 'personalization' },
  }, bearer);
  assert.equal(settings.status, 200, settings.text);

  const rnd = random(Number(process.env.RAPPORT_SWEEP_SEED ?? 20261124));
  const pick = (n) => Math.floor(rnd() * n);
  const people = Array.from({ length: PEOPLE }, (_, i) => ({ user: `sw-${i}`, consent: {}, known: false, id: null }));
  const expectedStored = new Map(people.map((p) => [p.user, new Set()]));
  const violations = [];
  const base = Date.now() - 86400e3;  // in the past: choices made through the API now are newer
  let apiChanges = 0;
  let apiSeq = 0;
  let reads = 0;
  let refused = 0;

  for (let first = 0; first < EVENTS; first += BATCH) {
    const batch = [];
    const expected = [];
    for (let i = first; i < Math.min(EVENTS, first + BATCH); i++) {
      const person = people[pick(PEOPLE)];
      const kind = KINDS[pick(KINDS.length)];
      // Mostly in time order; one in five up to 2 s early (a late delivery).
      const at = base + i * 10 - (rnd() < 0.2 ? pick(2000) : 0);
      const id = `sw-${String(i).padStart(6, '0')}`;
      const message = { type: kind.type, userId: person.user, messageId: id, timestamp: new Date(at).toISOString() };
      if (kind.event) message.event = kind.event;
      if (kind.name) message.name = kind.name;
      const choices = [];
      if (rnd() < 0.3) {
        const consent = {};
        for (const purpose of PURPOSES) {
          if (rnd() < 0.5) continue;
          const granted = rnd() < 0.6;
          if (rnd() < 0.5) {
            const names = CATEGORY_OF[purpose];
            (consent.categoryPreferences ??= {})[names[pick(names.length)]] = granted;
          } else {
            (consent.purposes ??= {})[purpose] = granted;
          }
          choices.push({ purpose, state: granted ? 'granted' : 'denied' });
        }
        message.context = { consent };
      } else {
        message.context = {};  // no consent on this one
      }
      batch.push(message);
      // The model: the event's own choices count, then its purpose is judged. A refused event's
      // choices are kept only when one changes what the person chose (a new purpose, or a newer
      // choice of the other state).
      const after = { ...person.consent };
      let changes = false;
      for (const c of choices) {
        const choice = { state: c.state, at: at * 1000, id };
        const current = after[c.purpose];
        if (!current || (newer(choice, current) && current.state !== choice.state)) changes = true;
        if (newer(choice, current)) after[c.purpose] = choice;
      }
      const state = kind.purpose === 'necessary' ? 'granted' : after[kind.purpose]?.state ?? 'unknown';
      const outcome = state === 'granted' ? 'stored' : 'refused';
      if (outcome === 'stored' || changes) {
        person.consent = after;
        person.known = true;
      }
      if (outcome === 'stored') expectedStored.get(person.user).add(id);
      expected.push({ outcome, reason: state === 'denied' ? 'consent_denied' : 'consent_missing', purpose: kind.purpose });
    }
    const r = await post(server, '/v1/batch', { batch }, { consent: false });
    assert.equal(r.status, 200, r.text);
    r.json.results.forEach((got, k) => {
      const want = expected[k];
      if (got.status !== want.outcome ||
          (want.outcome === 'refused' && (got.reason.code !== want.reason || got.reason.field !== want.purpose))) {
        violations.push(`${batch[k].messageId}: ${JSON.stringify(got)} but the model says ${JSON.stringify(want)}`);
      }
      if (got.status === 'refused') refused++;
    });

    // Now and then a person changes their mind through the API (newer than any event here).
    if (rnd() < 0.1) {
      const known = people.filter((p) => p.known);
      const person = known[pick(known.length)];
      if (person) {
        person.id ??= (await get(server, `/api/v1/profiles/lookup?user_id=${person.user}`)).json.id;
        const purpose = PURPOSES[pick(PURPOSES.length)];
        const state = rnd() < 0.5 ? 'granted' : 'denied';
        const changed = await put(server, `/api/v1/profiles/${person.id}/consent`, { purposes: { [purpose]: state } }, bearer);
        assert.equal(changed.status, 200, changed.text);
        // Later API changes are newer still; their messageIds are random, so the time decides.
        person.consent[purpose] = { state, at: Number.MAX_SAFE_INTEGER - 1e6 + ++apiSeq, id: 'api' };
        apiChanges++;
      }
    }
    // Reads under the current states: two people's consent as the profile API shows it.
    for (let k = 0; k < 2; k++) {
      const person = people[pick(PEOPLE)];
      const read = await get(server, `/api/v1/profiles/lookup?user_id=${person.user}`);
      reads++;
      if (!person.known) {
        if (read.status !== 404) violations.push(`${person.user} should not exist: ${read.text}`);
        continue;
      }
      for (const purpose of PURPOSES) {
        const want = person.consent[purpose]?.state ?? 'unknown';
        if (read.json?.consent?.[purpose] !== want) {
          violations.push(`${person.user} ${purpose}: read ${read.json?.consent?.[purpose]}, the model says ${want}`);
        }
      }
    }
    if (violations.length > 20) break;
  }

  // Every stored event of every person is one the model allowed, and every allowed one is there.
  for (const person of people) {
    const stored = (await eventsOf(server, { userId: person.user, limit: 1000 }))
      .filter((e) => e.event !== 'Consent Changed').map((e) => e.messageId);
    const want = expectedStored.get(person.user);
    for (const id of stored) if (!want.has(id)) violations.push(`${person.user}: ${id} is stored but was not allowed`);
    if (stored.length !== want.size) violations.push(`${person.user}: ${stored.length} stored, the model allows ${want.size}`);
  }
  console.log(`sweep: ${EVENTS} events (${refused} refused), ${reads} reads, ${apiChanges} API changes, ` +
              `${violations.length} violations`);
  assert.deepEqual(violations.slice(0, 20), []);
  assert.ok(refused > EVENTS / 10 && refused < EVENTS * 0.9, `a sweep that refuses ${refused} tests little`);
});
