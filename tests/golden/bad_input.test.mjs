// Golden test of bad input: each case in bad_input/cases.json is sent to the real server and
// must get its expected status, error code, field and limit, and store nothing at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, basic, eventsOf, cleanup } from '../lib/server.mjs';

const cases = JSON.parse(readFileSync(new URL('./bad_input/cases.json', import.meta.url), 'utf8'));

// "@repeat:c:n" in a case stands for the character c repeated n times.
function expand(value) {
  if (typeof value === 'string') {
    const m = value.match(/^@repeat:(.):(\d+)$/);
    return m ? m[1].repeat(Number(m[2])) : value;
  }
  if (Array.isArray(value)) return value.map(expand);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
  return value;
}

function bodyOf(c) {
  if (c.raw !== undefined) return c.raw;
  if (c.raw_base64 !== undefined) return Buffer.from(c.raw_base64, 'base64');
  if (c.nest !== undefined) {
    let inner = '{"userId":"golden","event":"E"}';
    for (let i = 1; i < c.nest; i++) inner = `{"userId":"golden","event":"E","properties":${inner}}`;
    return inner;
  }
  if (c.envelope_nest !== undefined) {
    // A batch-level member nesting `envelope_nest` levels: 1 + that inside each message.
    return `{"batch":[{"type":"track","userId":"golden","event":"E"}],"x":${'['.repeat(c.envelope_nest)}${']'.repeat(c.envelope_nest)}}`;
  }
  if (c.expand) {
    // 2,000 tiny messages under a 20 KB context: ~60 KB sent, ~40 MB if expanded.
    const batch = Array.from({ length: 2000 }, (_, i) => ({ type: 'track', userId: 'golden', event: 'E', messageId: `x${i}` }));
    return JSON.stringify({ context: { blob: 'x'.repeat(20000) }, batch });
  }
  return c.body === undefined ? undefined : JSON.stringify(expand(c.body));
}

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); cleanup(server.data); });

for (const c of cases) {
  test(c.name, async () => {
    const auth = c.auth ?? 'write';
    const headers = { 'Content-Type': 'application/json', ...(c.headers ?? {}) };
    if (auth === 'write') headers.Authorization = basic(server.writeKey);
    if (auth === 'unknown') headers.Authorization = basic('wk_0000');
    const res = await fetch(server.url + c.path, { method: c.method ?? 'POST', headers, body: bodyOf(c) });
    const json = await res.json();
    assert.equal(res.status, c.expect.status, JSON.stringify(json));
    // The Segment surface (/v1/…) answers in Segment's flat shape, everything else nested.
    let error;
    if (c.path.startsWith('/v1/')) {
      assert.equal(json.success, false, JSON.stringify(json));
      assert.equal(json.error, undefined);
      error = json;
    } else {
      assert.equal(typeof json.error, 'object', JSON.stringify(json));
      error = json.error;
    }
    assert.equal(error.code, c.expect.code, JSON.stringify(json));
    assert.equal(typeof error.message, 'string');
    assert.ok(error.message.length > 10, 'the message is a sentence');
    if (c.expect.field) assert.equal(error.field, c.expect.field);
    if (c.expect.limit) assert.equal(error.limit, c.expect.limit);
  });
}

test('nothing of any bad request was stored', async () => {
  assert.deepEqual(await eventsOf(server, { userId: 'golden' }), []);
  const metrics = await (await fetch(server.url + '/metrics')).text();
  assert.doesNotMatch(metrics, /^rapport_events_total\{outcome="stored"\} [1-9]/m);
});
