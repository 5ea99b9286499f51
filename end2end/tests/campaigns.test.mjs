// A webhook campaign as a new user builds it: users tracked over the REST API, a segment, a
// personalised webhook composed in the builder, sent at launch to a real local receiver, with the
// report's progress bar following the sends until they are all delivered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createOwner, hydrated, launchBrowser, newPage, startHerald } from './helpers.mjs';

let herald, browser, page, base, key, receiver, receiverUrl;
const errors = [];
const received = [];

const PRO_USERS = [
  { external_id: 'ada', first_name: 'Ada' },
  { external_id: 'grace', first_name: 'Grace' },
  { external_id: 'linus', first_name: 'Linus' },
];

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body });
      // The very first request fails once, so one send goes through a retry.
      const status = received.length === 1 ? 503 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: status === 200 }));
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}/campaign-hook`;
  herald = await startHerald({ HERALD_ALLOW_PRIVATE_CIDRS: '127.0.0.0/8', HERALD_RETRY_BASE_DELAY_SECS: '1' });
  browser = await launchBrowser();
  const context = await browser.newContext({ baseURL: herald.base });
  page = await newPage(context, errors);
  base = await createOwner(page);

  await page.goto(`${base}/settings/api-keys`);
  await hydrated(page);
  const form = page.locator('#create-key-form');
  await form.getByLabel('Name').fill('Backend');
  await form.getByLabel('users.track').check();
  await form.getByRole('button', { name: 'Create key' }).click();
  key = await page.locator('#new-key-secret').inputValue();

  const res = await fetch(`${herald.base}/api/users/track`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      attributes: [
        ...PRO_USERS.map((u) => ({ ...u, plan: 'pro' })),
        { external_id: 'bob', first_name: 'Bob', plan: 'free' },
      ],
    }),
  });
  assert.equal(res.status, 200);
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  receiver?.close();
});

test('a segment of the pro users is built', async () => {
  await page.goto(`${base}/segments/new`);
  await hydrated(page);
  await page.getByLabel('Name', { exact: true }).fill('Pro users');
  await page.getByRole('button', { name: '+ Custom attribute' }).click();
  await page.locator('.seg-condition').first().getByLabel('Custom attribute').fill('plan');
  await page.locator('.seg-condition').first().getByLabel('Custom attribute').press('Tab');
  await page.locator('.seg-condition').first().getByLabel('Value').fill('pro');
  await page.locator('.seg-condition').first().getByLabel('Value').press('Tab');
  await page.locator('#segment-size', { hasText: /^3$/ }).waitFor();
  await page.getByRole('button', { name: 'Save segment' }).click();
  await page.waitForURL(/\/segments\/[0-9a-f-]{36}$/);
});

test('the campaign list starts empty and offers both kinds of campaign', async () => {
  await page.goto(`${base}/campaigns`);
  await hydrated(page);
  await page.getByText('No campaigns yet').waitFor();
  await page.locator('#new-campaign summary').click();
  await page.locator('#new-campaign').getByRole('link', { name: /Webhook campaign/ }).click();
  await page.waitForURL(/\/campaigns\/new\?kind=webhook$/);
  await page.locator('#campaign-title', { hasText: 'New webhook campaign' }).waitFor();
});

test('a rejected draft names the field and keeps what was typed', async () => {
  await page.getByLabel('Webhook URL').fill(receiverUrl);
  await page.locator('#panel-compose').getByRole('button', { name: 'Save draft' }).click();
  // No name yet: the server says so next to the name field, and the URL is still there.
  await page.locator('#panel-compose .field-error[data-field="name"]').waitFor();
  assert.equal(await page.getByLabel('Webhook URL').inputValue(), receiverUrl);
  assert.match(await page.locator('#panel-compose .save-bar [role="alert"]').first().innerText(), /^name/);
});

test('a webhook campaign with a Liquid body is saved as a draft', async () => {
  await page.getByLabel('Campaign name').fill('Welcome pros');
  await page.getByLabel('Tags').fill('onboarding');
  const first = page.locator('#composer-pairs .kv-row').first();
  await first.getByLabel('Key').fill('user');
  await first.getByLabel('Value (Liquid allowed)').fill('{{${user_id}}}');
  await page.getByRole('button', { name: '+ Add pair' }).click();
  const second = page.locator('#composer-pairs .kv-row').nth(1);
  await second.getByLabel('Key').fill('greeting');
  await second.getByLabel('Value (Liquid allowed)').fill('Hello {{${first_name}}}');
  // The preview renders the sample recipient.
  await page.locator('#preview-result').getByText('"greeting":"Hello Ada"').waitFor();
  await page.locator('#panel-compose').getByRole('button', { name: 'Save draft' }).click();
  await page.waitForURL(/\/campaigns\/[0-9a-f-]{36}\?step=compose$/);
  await page.locator('#campaign-title', { hasText: 'Welcome pros' }).waitFor();
  assert.equal(await page.locator('#composer-pairs .kv-row').nth(1).getByLabel('Value (Liquid allowed)').inputValue(), 'Hello {{${first_name}}}');
});

test('it is scheduled at launch and targets the segment, whose reach is counted live', async () => {
  await page.getByRole('tab', { name: /Delivery/ }).click();
  assert.equal(await page.locator('#schedule-kind').inputValue(), 'at_launch');
  await page.getByRole('tab', { name: /Audience/ }).click();
  // Every user first, then the segment only.
  await page.locator('#campaign-reach', { hasText: /^4$/ }).waitFor();
  await page.locator('#segment-picker').getByLabel('Pro users').check();
  await page.locator('#campaign-reach', { hasText: /^3$/ }).waitFor();
  await page.locator('#panel-audience').getByRole('button', { name: 'Save draft' }).click();
  await page.locator('#panel-audience').getByRole('status').filter({ hasText: 'Saved' }).waitFor();
});

test('launching sends every recipient its personalised webhook while the progress bar follows', async () => {
  await page.getByRole('tab', { name: /Review/ }).click();
  await page.locator('#summary-delivery', { hasText: 'as soon as it is launched' }).waitFor();
  await page.getByRole('button', { name: 'Launch campaign' }).click();
  await page.waitForURL(/\/campaigns\/[0-9a-f-]{36}\/report$/);
  // A retry takes at least a second, so the page first shows the sends under way, then done,
  // without a reload.
  await page.locator('#campaign-progress[data-state="busy"]').waitFor({ timeout: 5_000 });
  await page.locator('#campaign-progress[data-state="done"]').waitFor({ timeout: 60_000 });
  assert.equal(await page.locator('#progress-delivered').innerText(), '3');
  assert.equal(await page.locator('#progress-failed').innerText(), '0');

  // At least once, with a stable webhook-id: the retried send arrives twice under one id.
  assert.equal(received.length, 4);
  const delivered = new Map(received.map((r) => [r.headers['webhook-id'], r]));
  const bodies = [...delivered.values()].map((r) => JSON.parse(r.body)).sort((a, b) => a.user.localeCompare(b.user));
  assert.deepEqual(bodies, [
    { user: 'ada', greeting: 'Hello Ada' },
    { user: 'grace', greeting: 'Hello Grace' },
    { user: 'linus', greeting: 'Hello Linus' },
  ]);
  for (const request of received) {
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/campaign-hook');
    assert.ok(request.headers['webhook-id'], 'every send carries its webhook-id');
  }
  assert.equal(delivered.size, 3);

  // Sends 3, delivered 3, no errors of any class, none aborted, one retry, 3 unique recipients.
  await page.locator('#variant-stats tfoot', { hasText: 'Total' }).waitFor();
  assert.match(await page.locator('#variant-stats tfoot').innerText(), /Total\s+3\s+3\s+100\.0%\s+0\s+0\s+0\s+0\s+1\s+3/);

  // The Activity log opens narrowed to this campaign's sends.
  await page.locator('#campaign-activity').click();
  await page.waitForURL(/\/activity\?source=campaign&source_id=/);
  await hydrated(page);
  await page.locator('#filter-source-id').waitFor();
  await page.getByText('Welcome pros').first().waitFor();
});

test('an admin adds and removes a frequency-capping rule', async () => {
  await page.goto(`${base}/settings`);
  await hydrated(page);
  await page.locator('#no-cap-rules').waitFor();
  const form = page.locator('#cap-rule-form');
  await form.getByLabel('At most').fill('2');
  await form.getByLabel('webhooks per').fill('1');
  await form.getByLabel('for campaigns tagged').fill('promo');
  await form.getByRole('button', { name: 'Add rule' }).click();
  const row = page.locator('#cap-rules tr', { hasText: 'campaigns tagged “promo”' });
  await row.getByText('2 webhooks').waitFor();
  await row.getByText('1 day').waitFor();
  await row.getByRole('button', { name: 'Remove' }).click();
  await page.locator('#no-cap-rules').waitFor();
});

test('the list filters by status through the address and offers row actions', async () => {
  await page.goto(`${base}/campaigns?status=active`);
  await hydrated(page);
  const row = page.locator('#campaigns-table tr', { hasText: 'Welcome pros' });
  await row.locator('.campaign-status', { hasText: 'Active' }).waitFor();
  await row.getByText('onboarding').waitFor();

  await page.locator('#filter-status').selectOption('draft');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=draft/);
  await page.getByText('No campaign matches these filters').waitFor();

  await page.goto(`${base}/campaigns`);
  await hydrated(page);
  await page.locator('#campaigns-table tr', { hasText: 'Welcome pros' }).getByRole('button', { name: 'Duplicate' }).click();
  const copy = page.locator('#campaigns-table tr', { hasText: 'Copy of Welcome pros' });
  await copy.locator('.campaign-status', { hasText: 'Draft' }).waitFor();
  await copy.getByRole('button', { name: 'Archive' }).click();
  await page.locator('#campaigns-table tr', { hasText: 'Copy of Welcome pros' }).waitFor({ state: 'detached' });
});

test('no page raised a browser error', () => {
  assert.deepEqual(errors, []);
});
