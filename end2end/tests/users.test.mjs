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
