// Audience data as a new user meets it: a key from the dashboard tracks a user through the
// Braze-compatible API, the profile page shows it, and the composer previews with its attributes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createOwner, hydrated, launchBrowser, newPage, startHerald } from './helpers.mjs';

let herald, browser, page, base, key;
const errors = [];

before(async () => {
  herald = await startHerald();
  browser = await launchBrowser();
  const context = await browser.newContext({ baseURL: herald.base });
  page = await newPage(context, errors);
  base = await createOwner(page);
  await page.goto(`${base}/settings/api-keys`);
  await hydrated(page);
  const form = page.locator('#create-key-form');
  await form.getByLabel('Name').fill('Braze client');
  await form.getByLabel('users.track').check();
  await form.getByRole('button', { name: 'Create key' }).click();
  key = await page.locator('#new-key-secret').inputValue();
});

after(async () => {
  await browser?.close();
  await herald?.stop();
});

test('a user tracked through /api/users/track shows on its profile page', async () => {
  const res = await fetch(`${herald.base}/api/users/track`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      attributes: [{ external_id: 'user-42', first_name: 'Grace', email: 'grace@example.com', plan: 'pro' }],
      events: [{ external_id: 'user-42', name: 'checkout', time: new Date().toISOString(), properties: { total: 99 } }],
      purchases: [{ external_id: 'user-42', product_id: 'gold', currency: 'USD', price: 9.99, time: new Date().toISOString() }],
    }),
  });
  assert.equal(res.status, 200);
  const answer = await res.json();
  assert.deepEqual([answer.attributes_processed, answer.events_processed, answer.purchases_processed], [1, 1, 1]);

  await page.goto(`${base}/users`);
  await hydrated(page);
  await page.locator('#event-catalog').getByText('checkout').waitFor();
  await page.getByLabel('Search users').fill('grace@');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('#users-table').getByRole('link', { name: 'user-42' }).click();
  await page.waitForURL(/\/users\/[0-9a-f-]{36}$/);
  await page.locator('#user-attributes').getByText('Grace', { exact: true }).first().waitFor();
  await page.locator('#user-attributes').getByText('grace@example.com').waitFor();
  await page.locator('#custom-attributes').getByText('"plan": "pro"').waitFor();
  await page.locator('#user-timeline').getByText('checkout').waitFor();
  await page.locator('#user-timeline').getByText('gold').waitFor();
});

test('the composer previews a webhook with a chosen user’s attributes', async () => {
  await page.goto(`${base}/templates/new`);
  await hydrated(page);
  await page.getByLabel('Webhook URL').fill('https://example.com/hooks/{{${user_id}}}');
  const pair = page.locator('#composer-pairs .kv-row').first();
  await pair.getByLabel('Key').fill('hello');
  await pair.getByLabel('Value (Liquid allowed)').fill('{{${first_name}}} on {{custom_attribute.${plan}}}');
  await page.getByLabel('Preview as user').fill('user-42');
  await page.getByRole('button', { name: 'Use their data' }).click();
  const preview = page.locator('#preview-result');
  await preview.getByText('"hello":"Grace on pro"').waitFor();
  await preview.getByText('https://example.com/hooks/user-42').waitFor();
  await page.getByLabel('Preview as user').fill('nobody');
  await page.getByRole('button', { name: 'Use their data' }).click();
  await page.getByRole('alert').filter({ hasText: 'no user has the external id' }).waitFor();
});

test('no page raised a browser error', () => {
  assert.deepEqual(errors, []);
});

test('a segment built from an attribute and a recent event shows its live size and members', async () => {
  const now = Date.now();
  const days = (n) => new Date(now - n * 86_400_000).toISOString();
  const res = await fetch(`${herald.base}/api/users/track`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      attributes: [
        { external_id: 'pro-recent', plan: 'pro' },
        { external_id: 'pro-old', plan: 'pro' },
        { external_id: 'free-recent', plan: 'free' },
      ],
      events: [
        { external_id: 'pro-recent', name: 'checkout', time: days(2) },
        { external_id: 'pro-old', name: 'checkout', time: days(20) },
        { external_id: 'free-recent', name: 'checkout', time: days(1) },
      ],
    }),
  });
  assert.equal(res.status, 200);

  await page.goto(`${base}/segments`);
  await page.getByText('No segments yet').waitFor();
  await page.goto(`${base}/segments/new`);
  await hydrated(page);
  await page.getByLabel('Name', { exact: true }).fill('Pro buyers this week');
  await page.getByRole('button', { name: '+ Custom attribute' }).click();
  const attribute = page.locator('.seg-condition').first();
  await attribute.getByLabel('Custom attribute').fill('plan');
  await attribute.getByLabel('Custom attribute').press('Tab');
  await page.locator('.seg-condition').first().getByLabel('Value').fill('pro');
  await page.locator('.seg-condition').first().getByLabel('Value').press('Tab');
  // user-42 (tracked above) is on the pro plan too.
  await page.locator('#segment-size', { hasText: /^3$/ }).waitFor();

  await page.getByRole('button', { name: '+ Custom event' }).click();
  const event = page.locator('.seg-condition').nth(1);
  await event.getByLabel('Event name').fill('checkout');
  await event.getByLabel('Event name').press('Tab');
  await page.locator('.seg-condition').nth(1).getByLabel('Days').fill('7');
  await page.locator('.seg-condition').nth(1).getByLabel('Days').press('Tab');
  await page.locator('#segment-size', { hasText: /^2$/ }).waitFor();
  await page.locator('#segment-estimate').getByText('pro-recent').waitFor();
  assert.equal(await page.locator('#segment-estimate').getByText('pro-old').count(), 0);

  await page.getByRole('button', { name: 'Save segment' }).click();
  await page.waitForURL(/\/segments\/[0-9a-f-]{36}$/);
  await page.goto(`${base}/segments`);
  const row = page.locator('#segments-table tr', { hasText: 'Pro buyers this week' });
  assert.equal(await row.locator('td.size').innerText(), '2');
});

test('no page raised a browser error after the segment builder', () => {
  assert.deepEqual(errors, []);
});
