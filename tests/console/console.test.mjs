// The web console (console/) in a real browser — Debian's headless chromium driven through
// playwright-core — against the real server: sign in with the secret key, find a profile by
// email and read its card (identities, traits, computed traits, segments, timeline), the
// errors a person sees, and that personal data never becomes markup.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer, post, get, cleanup } from '../lib/server.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const XSS = '<img src=x onerror=alert(1)>';

let server;
let browser;
let page;
const dialogs = [];
const pageErrors = [];

const bearer = (key) => ({ key: null, headers: { Authorization: `Bearer ${key}` } });
const ago = (hours) => new Date(Date.now() - hours * 3600e3).toISOString();

async function waitForJob(id, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await get(server, `/api/v1/jobs/${encodeURIComponent(id)}`);
    assert.equal(r.status, 200, r.text);
    if (r.json.state === 'done') return r.json;
    assert.notEqual(r.json.state, 'failed', r.text);
    if (Date.now() > deadline) throw new Error(`job ${id} not done after ${timeoutMs} ms: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const texts = (locator) => locator.allTextContents().then((all) => all.map((t) => t.trim()));

before(async () => {
  server = await startServer();

  // Ann: an anonymous visit on device A, then she signs up (identify), orders twice in the last
  // few days, and comes back on device B while logged in.
  const batch = [
    { type: 'page', anonymousId: 'console-dev-A', name: 'Home', properties: { path: '/' }, timestamp: ago(96) },
    { type: 'identify', userId: 'ann', anonymousId: 'console-dev-A', timestamp: ago(95),
      traits: { email: 'Ann@Example.com', plan: 'pro', name: 'Ann', bio: XSS } },
    { type: 'track', userId: 'ann', event: 'Order Completed', properties: { total: 40, category: 'shoes' }, timestamp: ago(72) },
    { type: 'track', userId: 'ann', event: 'Order Completed', properties: { total: 40, category: 'shoes' }, timestamp: ago(24) },
    { type: 'page', userId: 'ann', anonymousId: 'console-dev-B', name: 'Pricing', timestamp: ago(2) },
  ];
  const sent = await post(server, '/v1/batch', { batch });
  assert.equal(sent.status, 200, sent.text);

  const trait = await post(server, '/api/v1/computed-traits',
    { name: 'orders_30d', kind: 'count', event: 'Order Completed', window: '30d' }, bearer(server.secretKey));
  assert.equal(trait.status, 201, trait.text);
  await waitForJob(trait.json.job.id);
  const segment = await post(server, '/api/v1/segments',
    { name: 'regulars', expression: 'computed.orders_30d >= 2 && traits.plan == "pro"' }, bearer(server.secretKey));
  assert.equal(segment.status, 201, segment.text);
  await waitForJob(segment.json.job.id);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15000);
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
});

after(async () => {
  await browser?.close();
  if (server) {
    await server.stop();
    cleanup(server.data);
  }
});

test('a wrong key is refused with the API\'s message; the secret key signs in', async () => {
  const res = await page.goto(`${server.url}/console`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /^text\/html/);

  await page.getByTestId('login-key').fill('sk_not_a_real_key');
  await page.getByTestId('login-submit').click();
  const error = page.getByTestId('login-error');
  await error.waitFor({ state: 'visible' });
  const expected = await get(server, '/api/v1/whoami', { key: 'sk_not_a_real_key' });
  assert.equal(expected.status, 401);
  assert.equal(expected.json.error.code, 'invalid_secret_key');
  assert.equal((await error.textContent()).trim(), expected.json.error.message);
  assert.equal(await page.getByTestId('search-value').isVisible(), false);

  await page.getByTestId('login-key').fill(server.secretKey);
  await page.getByTestId('login-key').press('Enter');
  await page.getByTestId('search-value').waitFor({ state: 'visible' });
  assert.equal(await error.isVisible(), false);
  assert.match(await page.getByTestId('whoami').textContent(), /demo/);
});

test('searching an email shows the whole profile card', async () => {
  const api = await get(server, '/api/v1/profiles/lookup?email=ann@example.com');
  assert.equal(api.status, 200, api.text);

  await page.getByTestId('search-type').selectOption('email');
  await page.getByTestId('search-value').fill('ann@example.com');
  await page.getByTestId('search-value').press('Enter');
  await page.getByTestId('profile-id').waitFor({ state: 'visible' });
  assert.equal((await page.getByTestId('profile-id').textContent()).trim(), api.json.id);

  // Identities: every identifier, each with why it belongs.
  const rows = page.getByTestId('identity-row');
  const identities = [];
  for (let i = 0; i < await rows.count(); i++) {
    const row = rows.nth(i);
    identities.push({
      type: (await row.getByTestId('identity-type').textContent()).trim(),
      value: (await row.getByTestId('identity-value').textContent()).trim(),
      reason: (await row.getByTestId('identity-reason').textContent()).trim(),
    });
  }
  for (const [type, value] of [['user_id', 'ann'], ['anonymous_id', 'console-dev-A'],
    ['anonymous_id', 'console-dev-B'], ['email', 'ann@example.com']]) {
    const found = identities.find((i) => i.type === type && i.value === value);
    assert.ok(found, `identity ${type}:${value} in ${JSON.stringify(identities)}`);
    assert.ok(found.reason.length > 0, `a reason for ${type}:${value}`);
  }

  // Traits, with the plan and the untrusted bio shown as text.
  const traits = Object.fromEntries(await page.getByTestId('trait-row').evaluateAll((trs) => trs.map((tr) => [
    tr.querySelector('[data-testid=trait-name]').textContent.trim(),
    tr.querySelector('[data-testid=trait-value]').textContent.trim()])));
  assert.equal(traits.plan, 'pro');
  assert.equal(traits.name, 'Ann');
  assert.equal(traits.bio, XSS);

  // Computed traits.
  const computed = Object.fromEntries(await page.getByTestId('computed-row').evaluateAll((trs) => trs.map((tr) => [
    tr.querySelector('[data-testid=computed-name]').textContent.trim(),
    tr.querySelector('[data-testid=computed-value]').textContent.trim()])));
  assert.equal(computed.orders_30d, '2', JSON.stringify(computed));

  // Segments.
  const chips = await texts(page.getByTestId('segment-name'));
  assert.ok(chips.includes('regulars'), JSON.stringify(chips));

  // Timeline: the events and the segment entry, which looks different from events.
  const items = page.getByTestId('timeline-item');
  const whats = await texts(page.getByTestId('timeline-what'));
  assert.ok(whats.filter((w) => w === 'Order Completed').length >= 2, JSON.stringify(whats));
  assert.ok(whats.includes('Home') && whats.includes('Pricing'), JSON.stringify(whats));
  const membership = items.filter({ hasText: /entered segment regulars/ });
  assert.equal(await membership.count(), 1, JSON.stringify(whats));
  assert.match(await membership.getAttribute('class'), /\bmembership\b/);
});

test('an unknown email says there is no profile', async () => {
  await page.getByTestId('search-value').fill('nobody@example.com');
  await page.getByTestId('search-submit').click();
  const error = page.getByTestId('search-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /No profile/);
  assert.equal(await page.getByTestId('profile').isVisible(), false);

  // The API's own message for a malformed value.
  await page.getByTestId('search-value').fill('not-an-email');
  await page.getByTestId('search-submit').click();
  await page.waitForFunction(() => /email/.test(document.querySelector('[data-testid=search-error]').textContent)
    && !/No profile/.test(document.querySelector('[data-testid=search-error]').textContent));
});

test('personal data is text, never markup', async () => {
  // The card of the previous test is gone; show it again and look for the injected element.
  await page.getByTestId('search-value').fill('ann@example.com');
  await page.getByTestId('search-submit').click();
  await page.getByTestId('profile-id').waitFor({ state: 'visible' });
  await page.getByTestId('trait-row').first().waitFor();
  assert.equal(await page.locator('img').count(), 0);
  const bio = page.getByTestId('trait-value').filter({ hasText: XSS });
  assert.equal(await bio.count(), 1);
  assert.equal(await bio.evaluate((td) => td.childElementCount), 0);
  await page.waitForTimeout(200);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(pageErrors, []);
});

test('the card fits a narrow screen, and signing out forgets the key', async () => {
  await page.setViewportSize({ width: 380, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await page.setViewportSize({ width: 1280, height: 900 });

  await page.getByTestId('signout').click();
  await page.getByTestId('login-key').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.getByTestId('login-key').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('search-value').isVisible(), false);
});
