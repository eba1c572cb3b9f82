// What survives restarts, shutdowns, full disks and round trips through export/import.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, post, get, eventsOf, cli, cleanup, tempDir } from '../lib/server.mjs';

function batchOf(prefix, n, extra = {}) {
  return { batch: Array.from({ length: n }, (_, i) => ({
    type: 'track', userId: `${prefix}-user`, event: 'Viewed', messageId: `${prefix}-${i}`,
    properties: { i, ...extra },
  })) };
}

test('acknowledged events and their dedupe records survive a restart', async () => {
  const data = tempDir();
  let server = await startServer({ data });
  assert.equal((await post(server, '/v1/batch', batchOf('rs', 20))).json.stored, 20);
  assert.equal(await server.stop('SIGKILL'), 'SIGKILL');
  server = await startServer({ data });
  const replay = await post(server, '/v1/batch', batchOf('rs', 20));
  assert.equal(replay.json.duplicates, 20);
  assert.equal((await eventsOf(server, { userId: 'rs-user' })).length, 20);
  await server.stop();
  cleanup(data);
});

test('--sync=interval loses nothing acknowledged when the process is killed', async () => {
  const data = tempDir();
  let server = await startServer({ data, args: ['--sync', 'interval:1000'] });
  for (let i = 0; i < 10; i++) {
    assert.equal((await post(server, '/v1/batch', batchOf(`iv-${i}`, 20))).status, 200);
  }
  // Killed well within the sync interval: the log is in the OS, not yet fsync'd.
  assert.equal(await server.stop('SIGKILL'), 'SIGKILL');
  server = await startServer({ data, args: ['--sync', 'interval:1000'] });
  for (let i = 0; i < 10; i++) {
    assert.equal((await eventsOf(server, { userId: `iv-${i}-user` })).length, 20);
  }
  await server.stop();
  cleanup(data);
});

test('SIGTERM finishes the requests in flight: every 200 is stored', async () => {
  const data = tempDir();
  let server = await startServer({ data });
  const acked = [];
  let stop = false;
  let n = 0;
  let termAt = Infinity;
  let answeredInFlight = 0;  // sent before SIGTERM, answered 200 after it
  const sender = async () => {
    while (!stop) {
      const i = n++;
      try {
        const sentAt = performance.now();
        const r = await post(server, '/v1/batch', batchOf(`term-${i}`, 25));
        if (r.status === 200) acked.push(i);
        if (r.status === 200 && sentAt < termAt && performance.now() > termAt) answeredInFlight++;
      } catch {
        return;  // the server closed the connection or refused it: not acknowledged
      }
    }
  };
  const senders = Array.from({ length: 8 }, sender);
  await new Promise((r) => setTimeout(r, 300));
  termAt = performance.now();
  const code = await server.stop('SIGTERM');
  stop = true;
  await Promise.all(senders);
  assert.equal(code, 0);
  assert.match(server.output(), /stopped cleanly/);
  assert.ok(acked.length > 10, `only ${acked.length} batches were acknowledged`);
  assert.ok(answeredInFlight > 0, 'requests in flight at SIGTERM were answered');
  server = await startServer({ data });
  for (const i of acked) {
    assert.equal((await eventsOf(server, { userId: `term-${i}-user` })).length, 25, `batch ${i}`);
  }
  await server.stop();
  cleanup(data);
});

test('serve refuses bad flags with a clear message', () => {
  const days = cli(['serve', '--dedupe-days', '0', '--data', tempDir()]);
  assert.notEqual(days.status, 0);
  assert.match(days.stderr, /dedupe-days/);
  const sync = cli(['serve', '--sync', 'sometimes', '--listen', '127.0.0.1:0', '--data', tempDir()]);
  assert.equal(sync.status, 1);
  assert.match(sync.stderr, /--sync must be 'always' or 'interval:<ms>'/);
  const listen = cli(['serve', '--listen', 'nowhere', '--data', tempDir()]);
  assert.equal(listen.status, 1);
  assert.match(listen.stderr, /--listen must be HOST:PORT/);
});

test('the CLI refuses a store that a server holds, and creates workspaces when it is free', async () => {
  const data = tempDir();
  const server = await startServer({ data });
  const busy = cli(['workspace', 'create', 'shop', '--data', data, '--json']);
  assert.equal(busy.status, 1);
  assert.match(busy.stderr, /in use by another process/);
  await server.stop();
  const { statSync } = await import('node:fs');
  assert.equal(statSync(`${data}/demo-credentials.json`).mode & 0o777, 0o600);
  const ok = cli(['workspace', 'create', 'shop', '--data', data, '--json']);
  assert.equal(ok.status, 0, ok.stderr);
  const created = JSON.parse(ok.stdout);
  assert.equal(created.workspace, 'shop');
  assert.match(created.write_key, /^wk_[0-9a-f]{48}$/);
  assert.match(created.secret_key, /^sk_[0-9a-f]{64}$/);
  const again = cli(['workspace', 'create', 'shop', '--data', data]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists/);
  const restarted = await startServer({ data });
  const r = await post(restarted, '/v1/track', { userId: 'u', event: 'E' }, { key: created.write_key });
  assert.equal(r.status, 200);
  await restarted.stop();
  cleanup(data);
});

test('export (while serving) and import (into a fresh store) round-trip every event, idempotently', async () => {
  const data = tempDir();
  const server = await startServer({ data });
  await post(server, '/v1/batch', batchOf('exp', 30, { nested: { deep: ['é', '😀'] } }));
  await post(server, '/v1/identify', { anonymousId: 'exp-anon', traits: { email: 'x@example.com' }, messageId: 'exp-id' });
  const before = await eventsOf(server, { userId: 'exp-user' });
  const exported = cli(['export', '--data', data]);
  assert.equal(exported.status, 0, exported.stderr);
  const lines = exported.stdout.trim().split('\n');
  assert.equal(lines.length, 31);
  assert.match(exported.stderr, /exported 31 events/);
  const since = cli(['export', '--data', data, '--since', '2999-01-01T00:00:00Z']);
  assert.equal(since.stdout, '');
  await server.stop();

  const file = join(tempDir(), 'events.jsonl');
  writeFileSync(file, exported.stdout);
  const fresh = tempDir();
  // The fresh store needs the workspace the lines name.
  assert.equal(cli(['workspace', 'create', 'demo', '--data', fresh]).status, 0);
  const imported = cli(['import', file, '--data', fresh]);
  assert.equal(imported.status, 0, imported.stderr);
  assert.match(imported.stderr, /31 stored, 0 duplicate, 0 rejected/);
  const twice = cli(['import', file, '--data', fresh]);
  assert.match(twice.stderr, /0 stored, 31 duplicate, 0 rejected/);
  // The re-exported events are byte-identical to the originals.
  const reexported = cli(['export', '--data', fresh]);
  const strip = (text) => text.trim().split('\n').map((l) => JSON.parse(l).event);
  assert.deepEqual(strip(reexported.stdout), strip(exported.stdout));
  const bad = join(tempDir(), 'bad.jsonl');
  writeFileSync(bad, '{"workspace":"nope","event":{"type":"track","userId":"u","event":"E","messageId":"b1"}}\nnot json\n');
  const rejected = cli(['import', bad, '--data', fresh]);
  assert.equal(rejected.status, 2);
  assert.match(rejected.stderr, /line 1: no workspace named 'nope'/);
  assert.match(rejected.stderr, /line 2: .*not valid JSON/);
  assert.ok(before.length === 30);
  cleanup(data);
  cleanup(fresh);
});

test('a full disk answers 503 with Retry-After, never 200, readiness fails, and reads fail closed', async (t) => {
  const mount = tempDir('rapport-full-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mount], { stdio: 'ignore' });
  } catch {
    t.skip('cannot mount a small tmpfs here (not root?)');
    return;
  }
  const data = join(mount, 'store');
  mkdirSync(data);
  const server = await startServer({ data });
  try {
    let failure;
    const stored = [];
    for (let i = 0; i < 200 && !failure; i++) {
      const body = batchOf(`full-${i}`, 40, { pad: 'x'.repeat(8000) });
      const r = await post(server, '/v1/batch', body);
      if (r.status === 200) stored.push(i);
      else failure = r;
    }
    assert.ok(failure, 'the disk never filled up');
    assert.equal(failure.status, 503, failure.text);
    assert.equal(failure.headers.get('retry-after'), '1');
    assert.equal(failure.json.success, false);
    const ready = await fetch(server.url + '/readyz');
    assert.equal(ready.status, 503);
    const after = await post(server, '/v1/track', { userId: 'u', event: 'E' });
    assert.equal(after.status, 503);
    // Reads of personal data fail closed: one that cannot be written to the audit log is not
    // answered.
    const read = await get(server, `/api/v1/events?userId=full-${stored.at(-1)}-user`);
    assert.equal(read.status, 503, read.text);
    assert.equal(read.json.error.code, 'audit_unavailable');
    // Given room and a restart, everything acknowledged before the failure is readable.
    await server.stop('SIGKILL');
    execFileSync('mount', ['-o', 'remount,size=64m', mount]);
    const again = await startServer({ data });
    try {
      for (const i of stored.slice(-3)) {
        assert.equal((await eventsOf(again, { userId: `full-${i}-user` })).length, 40);
      }
    } finally {
      await again.stop();
    }
  } finally {
    await server.stop('SIGKILL');
    execFileSync('umount', [mount]);
    cleanup(mount);
  }
});
