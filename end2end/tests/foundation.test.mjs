// The foundation as a new user meets it: first run, sign-in, workspaces, invites, API keys.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { hydrated, launchBrowser, newPage, startHerald } from './helpers.mjs';

let herald, browser, admin, page;
const errors = [];
const owner = { email: 'owner@example.com', password: 'correct horse battery' };

before(async () => {
  herald = await startHerald();
  browser = await launchBrowser();
  admin = await browser.newContext({ baseURL: herald.base });
  page = await newPage(admin, errors);
});

after(async () => {
  await browser?.close();
  await herald?.stop();
});

test('the first visit offers to create the owner account and its workspace', async () => {
  await page.goto('/');
  await page.waitForURL('**/setup');
  await hydrated(page);
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill(owner.password);
  await page.getByLabel('Workspace name').fill('Acme');
  await page.getByRole('button', { name: 'Create owner account' }).click();
  await page.waitForURL(/\/w\/[0-9a-f-]{36}$/);
  await page.locator('.switcher-current', { hasText: 'Acme' }).waitFor();
  assert.match(await page.locator('.whoami').innerText(), /owner@example\.com · Admin/);
  // The set-up page is gone once an owner exists.
  await page.goto('/setup');
  await page.waitForURL('**/login');
});

test('signing out and in again, with a clear message for a wrong password', async () => {
  await page.goto('/');
  await page.waitForURL(/\/w\//);
  await hydrated(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL('**/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong email or password' }).waitFor();
  assert.equal(await page.getByLabel('Email').inputValue(), owner.email, 'the form keeps what was typed');
  await page.getByLabel('Password').fill(owner.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/w\/[0-9a-f-]{36}$/);
});

test('a second workspace is created from the switcher', async () => {
  await hydrated(page);
  await page.locator('#workspace-switcher summary').click();
  await page.getByRole('link', { name: '+ New workspace' }).click();
  await page.waitForURL('**/workspaces/new');
  await hydrated(page);
  await page.getByLabel('Name').fill('Staging');
  await page.getByRole('button', { name: 'Create workspace' }).click();
  await page.locator('.switcher-current', { hasText: 'Staging' }).waitFor();
  await page.locator('#workspace-switcher summary').click();
  await page.getByRole('link', { name: 'Acme' }).click();
  await page.locator('.switcher-current', { hasText: 'Acme' }).waitFor();
});

let acmeUrl;
let inviteLink;

test('an admin invites a new member, who joins through the one-time link', async () => {
  acmeUrl = page.url().replace(/\/(campaigns)?$/, '');
  await page.goto(`${acmeUrl}/settings/members`);
  await hydrated(page);
  const form = page.locator('#invite-form');
  await form.getByLabel('Email').fill('mia@example.com');
  await form.getByLabel('Role').selectOption('viewer');
  await form.getByRole('button', { name: 'Create invite link' }).click();
  inviteLink = await page.locator('#invite-link input').inputValue();
  assert.match(inviteLink, /\/invite\/[A-Za-z0-9]{32}$/);

  const guest = await browser.newContext({ baseURL: herald.base });
  const mia = await newPage(guest, errors);
  await mia.goto(inviteLink);
  await mia.getByRole('heading', { name: 'Join Acme' }).waitFor();
  await hydrated(mia);
  await mia.getByLabel('Choose a password').fill('mia has a password');
  await mia.getByRole('button', { name: 'Create account and join' }).click();
  await mia.waitForURL(/\/w\/[0-9a-f-]{36}$/);
  assert.match(await mia.locator('.whoami').innerText(), /mia@example\.com · Viewer/);
  // A viewer sees the keys page without the admin's forms.
  await mia.goto(`${acmeUrl}/settings/api-keys`);
  await mia.getByRole('heading', { name: 'REST API keys' }).waitFor();
  assert.equal(await mia.locator('#create-key-form').count(), 0);
  // The link works once.
  await mia.goto(inviteLink);
  await mia.getByText('already been used').waitFor();
  await guest.close();

  await page.reload();
  await page.locator('#members-table').getByText('mia@example.com').waitFor();
});

test('an API key is shown exactly once and authenticates REST calls', async () => {
  await page.goto(`${acmeUrl}/settings/api-keys`);
  await page.getByText('No API keys yet').waitFor();
  await hydrated(page);
  const form = page.locator('#create-key-form');
  await form.getByLabel('Name').fill('   ');
  await form.getByRole('button', { name: 'Create key' }).click();
  await page.getByRole('alert').filter({ hasText: 'name: is required' }).waitFor();
  await form.getByLabel('Name').fill('CRM sync');
  await form.getByRole('button', { name: 'Create key' }).click();
  await page.getByRole('alert').filter({ hasText: 'permissions: choose at least one permission' }).waitFor();
  await form.getByLabel('users.track').check();
  await form.getByLabel('herald.manage').check();
  await form.getByRole('button', { name: 'Create key' }).click();
  const secret = await page.locator('#new-key-secret').inputValue();
  assert.match(secret, /^hrld_[A-Za-z0-9]{40}$/);
  await page.locator('#api-keys-table').getByText('CRM sync').waitFor();

  const res = await fetch(`${herald.base}/api/v1/workspace`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.workspace.name, 'Acme');
  assert.deepEqual(body.api_key.permissions, ['users.track', 'herald.manage']);
  assert.ok(res.headers.get('x-ratelimit-remaining'));

  await page.reload();
  await page.locator('#api-keys-table').getByText('CRM sync').waitFor();
  assert.equal(await page.locator('#new-key-secret').count(), 0);
  assert.ok(!(await page.content()).includes(secret), 'the secret is never shown again');
});

test('no page raised a browser error', () => {
  assert.deepEqual(errors, []);
});
