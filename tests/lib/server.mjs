// Starts the real `rapport serve` binary (RAPPORT_BIN) on 127.0.0.1 port 0 with a temporary
// store, and gives tests its URL and the demo workspace's keys.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.RAPPORT_BIN;
if (!BIN) throw new Error('RAPPORT_BIN must point at the rapport binary (ctest sets it)');

export function tempDir(prefix = 'rapport-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startServer({ data = tempDir(), args = [] } = {}) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', data, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 15000);
    const onData = (chunk) => {
      output += chunk;
      const m = output.match(/rapport listening on (http:\/\/[0-9.]+:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
  const creds = JSON.parse(readFileSync(join(data, 'demo-credentials.json'), 'utf8'));
  const server = {
    url,
    data,
    proc,
    writeKey: creds.write_key,
    secretKey: creds.secret_key,
    output: () => output,
    // Stops the server with `signal` and resolves with its exit code (or signal name).
    stop(signal = 'SIGTERM') {
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode ?? proc.signalCode);
        proc.removeAllListeners('exit');
        proc.on('exit', (code, sig) => resolve(code ?? sig));
        proc.kill(signal);
      });
    },
  };
  return server;
}

export function basic(writeKey) {
  return 'Basic ' + Buffer.from(`${writeKey}:`).toString('base64');
}

export async function post(server, path, body, options = {}) {
  return send('POST', server, path, body, options);
}

export async function put(server, path, body, options = {}) {
  return send('PUT', server, path, body, options);
}

// The consent a site's consent manager sends with every event (docs/consent.md): every purpose
// of a new workspace granted.
export const GRANT_ALL = {
  categoryPreferences: { analytics: true, personalization: true, marketing: true, proactive_service: true, location: true },
};

// `body` with GRANT_ALL as the context.consent of a tracking request (of its batch's envelope)
// unless it has one; rapport stores nothing a person did not allow, and these tests are about
// something else. The consent tests send their own (or pass `consent: false`).
function withConsent(body) {
  if (!body || typeof body !== 'object' || body instanceof Uint8Array || Array.isArray(body)) return body;
  if (body.context?.consent !== undefined) return body;
  return { ...body, context: { ...(body.context ?? {}), consent: GRANT_ALL } };
}

// A request with a JSON (or raw) body; the write key as HTTP Basic unless `key` is null.
async function send(method, server, path, body, { key = server.writeKey, headers = {}, consent = true } = {}) {
  if (consent && path.startsWith('/v1/')) body = withConsent(body);
  const res = await fetch(server.url + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: basic(key) } : {}), ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

export async function get(server, path, { key = server.secretKey } = {}) {
  const res = await fetch(server.url + path, {
    headers: key ? { Authorization: `Bearer ${key}` } : {},
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

// A request to rapport's own API with a secret key as Bearer (default: the demo workspace's)
// and an optional JSON body.
export async function api(server, method, path, body, { key = server.secretKey } = {}) {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

// Every stored event of one person, following next_cursor.
export async function eventsOf(server, { userId, anonymousId, key = server.secretKey, limit = 1000 }) {
  const events = [];
  let cursor = null;
  do {
    const q = new URLSearchParams(userId ? { userId } : { anonymousId });
    q.set('limit', String(limit));
    if (cursor) q.set('cursor', cursor);
    const r = await get(server, `/api/v1/events?${q}`, { key });
    if (r.status !== 200) throw new Error(`events read failed: ${r.status} ${r.text}`);
    events.push(...r.json.events);
    cursor = r.json.next_cursor;
  } while (cursor);
  return events;
}

// Runs the rapport CLI and returns { status, stdout, stderr }.
export function cli(args, input) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', input, maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}
