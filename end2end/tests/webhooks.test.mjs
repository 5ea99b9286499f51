// Composing a webhook, previewing it, sending tests to a real local receiver, retries and refusals,
// and a signature checked by an independent Standard Webhooks implementation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { createOwner, hydrated, launchBrowser, newPage, startHerald } from './helpers.mjs';

let herald, browser, page, receiver, receiverUrl, base;
const errors = [];
const received = [];
const replies = [];

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const status = replies.shift() ?? 200;
      res.writeHead(status, { 'content-type': 'application/json', 'x-receiver': 'node' });
      res.end(JSON.stringify({ ok: status < 300 }));
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  herald = await startHerald({ HERALD_ALLOW_PRIVATE_CIDRS: '127.0.0.0/8', HERALD_RETRY_BASE_DELAY_SECS: '1' });
  browser = await launchBrowser();
  const context = await browser.newContext({ baseURL: herald.base });
  page = await newPage(context, errors);
  base = await createOwner(page);
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  receiver?.close();
});

let secret;

test('an admin turns webhook signing on and sees the secret', async () => {
  await page.goto(`${base}/settings`);
  await hydrated(page);
  await page.getByRole('button', { name: 'Turn signing on' }).click();
  await page.locator('#signing-status', { hasText: 'On' }).waitFor();
  await page.locator('#signing-card summary').click();
  secret = await page.locator('#signing-secret').inputValue();
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{32}$/);
});

async function openNewTemplate() {
  await page.goto(`${base}/templates/new`);
  await hydrated(page);
  await page.getByLabel('Template name').fill('Welcome hook');
  await page.getByLabel('Webhook URL').fill(receiverUrl);
  const pair = page.locator('#composer-pairs .kv-row').first();
  await pair.getByLabel('Key').fill('greeting');
  await pair.getByLabel('Value (Liquid allowed)').fill('Hello {{${first_name} | default: "there"}} on {{custom_attribute.${plan}}}');
}

test('a composed webhook previews with test data and saves as a template', async () => {
  await page.goto(`${base}/templates`);
  await page.getByText('No templates yet').waitFor();
  await openNewTemplate();
  // The preview follows the edits without a click.
  const preview = page.locator('#preview-result');
  await preview.getByText('"greeting":"Hello Ada on pro"').waitFor();
  await preview.getByText(receiverUrl).waitFor();

  await page.getByLabel('Webhook URL').fill('ftp://nope');
  await page.getByRole('button', { name: 'Save template' }).click();
  await page.getByRole('alert').filter({ hasText: 'url: must start with http:// or https://' }).waitFor();
  await page.getByLabel('Webhook URL').fill(receiverUrl);
  await page.getByRole('button', { name: 'Save template' }).click();
  await page.waitForURL(/\/templates\/[0-9a-f-]{36}$/);
  await page.goto(`${base}/templates`);
  await page.locator('#templates-table').getByText('Welcome hook').waitFor();
});

test('a test send reaches the receiver, signed, and shows the response', async () => {
  await openNewTemplate();
  replies.push(200);
  await page.getByRole('button', { name: 'Send test' }).click();
  const result = page.locator('#test-result');
  await result.getByText('HTTP 200').waitFor({ timeout: 15_000 });
  await result.getByText('delivered').first().waitFor();
  await result.getByText('{"ok":true}').waitFor();

  const last = received.at(-1);
  assert.equal(JSON.parse(last.body).greeting, 'Hello Ada on pro');
  assert.match(last.headers['user-agent'], /^Herald\//);
  const verified = new Webhook(secret).verify(last.body, {
    'webhook-id': last.headers['webhook-id'],
    'webhook-timestamp': last.headers['webhook-timestamp'],
    'webhook-signature': last.headers['webhook-signature'],
  });
  assert.equal(verified.greeting, 'Hello Ada on pro');
});

test('a failing receiver is retried until it recovers, and the Activity page shows every attempt', async () => {
  await openNewTemplate();
  replies.push(500, 503);
  await page.getByRole('button', { name: 'Send test' }).click();
  await page.locator('#test-result').getByText('HTTP 500').waitFor({ timeout: 15_000 });
  await page.locator('#test-result').getByRole('link', { name: 'open in Activity' }).click();
  await page.waitForURL(/\/activity\/[0-9a-f-]{36}$/);
  await hydrated(page);
  const deadline = Date.now() + 30_000;
  while (!(await page.locator('#send-status').innerText()).includes('delivered')) {
    assert.ok(Date.now() < deadline, 'the send was not delivered after the receiver recovered');
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: 'Refresh' }).click();
  }
  const attempts = page.locator('#attempts .attempt');
  assert.equal(await attempts.count(), 3);
  assert.match(await attempts.nth(0).innerText(), /HTTP 500.*retry/s);
  assert.match(await attempts.nth(1).innerText(), /HTTP 503.*retry/s);
  assert.match(await attempts.nth(2).innerText(), /HTTP 200.*delivered/s);
});

test('a 400 is not retried, and internal addresses are refused with a clear message', async () => {
  await openNewTemplate();
  replies.push(400);
  await page.getByRole('button', { name: 'Send test' }).click();
  await page.locator('#test-result').getByText('HTTP 400').waitFor({ timeout: 15_000 });
  await page.locator('#test-result').getByText('failed').first().waitFor();

  for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/hook']) {
    await page.getByLabel('Webhook URL').fill(url);
    await page.getByRole('button', { name: 'Send test' }).click();
    await page.locator('#test-result').getByText(/refused: .* (link-local|private-network)/).waitFor({ timeout: 15_000 });
  }

  await page.goto(`${base}/activity`);
  await hydrated(page);
  await page.locator('#filter-status').selectOption('failed');
  await page.locator('#sends-table').getByText('HTTP 400').waitFor();
});

test('no page raised a browser error', () => {
  assert.deepEqual(errors, []);
});
