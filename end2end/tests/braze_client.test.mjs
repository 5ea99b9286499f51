// Herald as other systems meet it: a script creates and launches campaigns through the management
// API, and an existing Braze client library (npm's braze-api, unchanged but for its base URL)
// tracks users, triggers an API-triggered campaign and sends through an API campaign.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Braze } from 'braze-api';
import { createOwner, hydrated, launchBrowser, newPage, startHerald } from './helpers.mjs';

const PERMISSIONS = ['herald.manage', 'users.track', 'campaigns.trigger.send', 'campaigns.details', 'messages.send'];
let herald, browser, key, braze, receiverUrl;
const arrived = [];
const waiting = [];
let receiver;

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      arrived.push(JSON.parse(body));
      waiting.splice(0).forEach((wake) => wake());
      res.end('ok');
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  herald = await startHerald({ HERALD_ALLOW_PRIVATE_CIDRS: '127.0.0.0/8' });
  browser = await launchBrowser();
  const context = await browser.newContext({ baseURL: herald.base });
  const page = await newPage(context, []);
  const base = await createOwner(page);
  await page.goto(`${base}/settings/api-keys`);
  await hydrated(page);
  const form = page.locator('#create-key-form');
  await form.getByLabel('Name').fill('Backend');
  for (const permission of PERMISSIONS) await form.getByLabel(permission, { exact: true }).check();
  await form.getByRole('button', { name: 'Create key' }).click();
  key = await page.locator('#new-key-secret').inputValue();
  braze = new Braze(`${herald.base}/api`, key);
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  receiver?.close();
});

/// Waits until `n` webhooks have arrived (or fails after 20 s) and takes them.
async function take(n) {
  const deadline = Date.now() + 20_000;
  while (arrived.length < n) {
    if (Date.now() > deadline) throw new Error(`only ${arrived.length} of ${n} webhooks arrived`);
    await new Promise((wake) => {
      waiting.push(wake);
      setTimeout(wake, 200);
    });
  }
  return arrived.splice(0, n);
}

/// The management API, called as a deployment script would.
async function manage(method, path, body) {
  const res = await fetch(`${herald.base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await res.json();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

async function createAndLaunch(definition) {
  const { campaign } = await manage('POST', '/campaigns', definition);
  assert.equal(campaign.status, 'draft');
  const launched = await manage('POST', `/campaigns/${campaign.id}/launch`);
  assert.equal(launched.campaign.status, 'active');
  return launched.campaign;
}

test('an API-triggered campaign sends to three recipients with their own trigger_properties through a Braze client library', async () => {
  await braze.users.track({
    attributes: [
      { external_id: 'ada', first_name: 'Ada' },
      { external_id: 'bob', first_name: 'Bob' },
      { external_id: 'cy', first_name: 'Cy' },
    ],
  });
  const campaign = await createAndLaunch({
    name: 'Order shipped',
    kind: 'webhook',
    variants: [{
      name: 'Main',
      percent: 100,
      message: {
        method: 'POST',
        url: receiverUrl,
        headers: [['Content-Type', 'application/json']],
        body: { kind: 'raw', text: '{"to": "{{${first_name}}}", "order": "{{api_trigger_properties.${order}}}", "carrier": "{{api_trigger_properties.${carrier}}}"}' },
      },
    }],
    delivery: { type: 'api' },
  });
  const answer = await braze.campaigns.trigger.send({
    campaign_id: campaign.id,
    trigger_properties: { carrier: 'Post' },
    recipients: [
      { external_user_id: 'ada', trigger_properties: { order: 'A-1' } },
      { external_user_id: 'bob', trigger_properties: { order: 'B-2', carrier: 'Courier' } },
      { external_user_id: 'cy', trigger_properties: { order: 'C-3' } },
    ],
  });
  assert.equal(answer.message, 'success');
  assert.ok(answer.dispatch_id);
  const bodies = (await take(3)).sort((a, b) => a.order.localeCompare(b.order));
  assert.deepEqual(bodies, [
    { to: 'Ada', order: 'A-1', carrier: 'Post' },
    { to: 'Bob', order: 'B-2', carrier: 'Courier' },
    { to: 'Cy', order: 'C-3', carrier: 'Post' },
  ]);
  const details = await braze.campaigns.details({ campaign_id: campaign.id });
  assert.equal(details.name, 'Order shipped');
  assert.equal(details.schedule_type, 'api_triggered');
});

test('/messages/send with a webhook object reaches the receiver and counts under its API campaign', async () => {
  const campaign = await createAndLaunch({
    name: 'Receipts',
    kind: 'api',
    variants: [{ name: 'Webhook', percent: 100 }],
    delivery: { type: 'api' },
  });
  const variation = campaign.variants[0].id;
  const answer = await braze.messages.send({
    campaign_id: campaign.id,
    external_user_ids: ['ada'],
    messages: {
      webhook: {
        url: receiverUrl,
        request_method: 'POST',
        request_headers: { 'Content-Type': 'application/json' },
        body: '{"receipt": "{{${first_name}}}", "campaign": "{{campaign.${api_id}}}"}',
        message_variation_id: variation,
      },
    },
  });
  assert.equal(answer.message, 'success');
  assert.deepEqual(await take(1), [{ receipt: 'Ada', campaign: campaign.id }]);
  let stats;
  for (let i = 0; i < 50; i++) {
    ({ stats } = await manage('GET', `/campaigns/${campaign.id}/stats`));
    if (stats.total.delivered === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(stats.total.sends, 1);
  assert.equal(stats.total.delivered, 1);
  assert.equal(stats.variants[0].variant_id, variation);
});
