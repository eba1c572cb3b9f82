// Crash test: clients send batches with retries while the server is killed with SIGKILL at
// random moments and restarted. Afterwards every event that was acknowledged with a 200 is
// stored exactly once, and no event is stored twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, post, cli, cleanup, tempDir } from '../lib/server.mjs';

const SEED = Number(process.env.RAPPORT_CRASH_SEED ?? Date.now() % 100000);
const KILLS = 6;
const SENDERS = 4;
const BATCH = 50;

function random(seed) {
  let s = seed >>> 0 || 1;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test(`acknowledged events survive ${KILLS} SIGKILLs exactly once (seed ${SEED})`, { timeout: 240000 }, async () => {
  const rand = random(SEED);
  const data = tempDir('rapport-crash-');
  const current = { server: await startServer({ data }) };
  const acked = new Set();
  let attempts = 0;
  let failures = 0;
  let done = false;

  const sender = async (s) => {
    for (let b = 0; !done; b++) {
      const batch = Array.from({ length: BATCH }, (_, i) => ({
        type: 'track', userId: `crash-${s}`, event: 'Tick', messageId: `c${s}-${b}-${i}`,
        properties: { s, b, i, note: 'crash test payload '.repeat(10) },
      }));
      // Retry the same batch until it is acknowledged, as a real client does.
      for (;;) {
        attempts++;
        try {
          const r = await post(current.server, '/v1/batch', { batch });
          if (r.status === 200) {
            for (const e of batch) acked.add(e.messageId);
            break;
          }
          failures++;
        } catch {
          failures++;
        }
        if (done) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  const senders = Array.from({ length: SENDERS }, (_, s) => sender(s));

  for (let k = 0; k < KILLS; k++) {
    await new Promise((r) => setTimeout(r, 150 + rand() * 500));
    assert.equal(await current.server.stop('SIGKILL'), 'SIGKILL');
    current.server = await startServer({ data });
  }
  await new Promise((r) => setTimeout(r, 300));
  done = true;
  await Promise.all(senders);
  await current.server.stop();

  const exported = cli(['export', '--data', data]);
  assert.equal(exported.status, 0, exported.stderr);
  const counts = new Map();
  for (const line of exported.stdout.split('\n')) {
    if (!line) continue;
    const id = JSON.parse(line).event.messageId;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], 'no event is stored twice');
  const lost = [...acked].filter((id) => !counts.has(id));
  assert.deepEqual(lost, [], 'every acknowledged event is stored');
  assert.ok(acked.size >= BATCH * SENDERS, `only ${acked.size} events were acknowledged`);
  assert.ok(failures > 0, 'the kills interrupted some requests');
  console.log(`seed ${SEED}: ${acked.size} events acknowledged, ${counts.size} stored, ` +
              `${attempts} requests of which ${failures} failed and were retried`);
  cleanup(data);
});
