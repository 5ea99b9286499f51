// Canvases as a new user builds them: an action-based journey "on custom event signup → Message
// welcome → Delay 1 minute → Decision Split plan = pro → Message A / Message B" drawn in the
// builder's flow diagram and launched; users tracked over the REST API enter it, receive their
// personalised welcome webhook at a real local receiver, are held at the Delay, and a minute later
// the pro user gets Message A and the other Message B — on the version they entered, though the
// Canvas was saved as a new version meanwhile. While a step has a problem (no address, a Liquid
// error) its card shows a badge and the launch button stays disabled. Its conversion event, added
// in Basics, survives a reload, and a user who then performs it shows as converted in the report
// and on the diagram. A second, API-triggered Canvas renders the `context` of
// /api/canvas/trigger/send in its Message step. A third, never launched, drives the Audience Paths
// editor and the Settings tab through a save and a reload.
//
// Every Canvas launched here gives every branch a step: an empty branch blocks a launch.
//
// The one-minute Delay is waited out for real (herald has no way to move time from outside): the
// wait for Messages A and B polls the receiver for up to two minutes, while the tests in between
// run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createOwner, hydrated, launchBrowser, newPage, startHerald } from './helpers.mjs';

let herald, browser, page, base, key, receiver, receiverUrl, onboardingUrl;
const errors = [];
/// Every request the receiver got, with the time it arrived (`at`, ms since the epoch).
const received = [];
/// When the signup events were about to be tracked (ms since the epoch): no journey began before.
let signupTrackedAt;

/// Waits until `count` requests reached `path`, or fails after `ms`.
async function arrivals(path, count, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const hits = received.filter((r) => r.url === path);
    if (hits.length >= count) return hits;
    if (Date.now() > deadline) {
      throw new Error(`expected ${count} request(s) at ${path}, got ${hits.length}: ${JSON.stringify(received.map((r) => r.url))}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function track(body) {
  const res = await fetch(`${herald.base}/api/users/track`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

/// Opens the "+" named `place` and picks a step type; the new step's side panel opens.
async function addStep(place, type) {
  await page.getByRole('button', { name: `Add a step ${place}`, exact: true }).click();
  await page.locator('#step-menu').getByRole('menuitem', { name: type, exact: true }).click();
  await page.locator('#step-panel').waitFor();
}

/// Fills the open Message step's composer: URL and JSON body pairs.
async function composeMessage(name, url, pairs) {
  const panel = page.locator('#step-panel');
  await panel.getByLabel('Step name').fill(name);
  await panel.getByLabel('Webhook URL').fill(url);
  for (let i = 0; i < pairs.length; i++) {
    if (i > 0) await panel.getByRole('button', { name: '+ Add pair' }).click();
    const row = panel.locator('#composer-pairs .kv-row').nth(i);
    await row.getByLabel('Key').fill(pairs[i][0]);
    await row.getByLabel('Value (Liquid allowed)').fill(pairs[i][1]);
  }
}

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}`;
  herald = await startHerald({ HERALD_ALLOW_PRIVATE_CIDRS: '127.0.0.0/8' });
  browser = await launchBrowser();
  const context = await browser.newContext({ baseURL: herald.base, viewport: { width: 1400, height: 900 } });
  page = await newPage(context, errors);
  base = await createOwner(page);

  await page.goto(`${base}/settings/api-keys`);
  await hydrated(page);
  const form = page.locator('#create-key-form');
  await form.getByLabel('Name').fill('Backend');
  await form.getByLabel('users.track').check();
  await form.getByLabel('canvas.trigger.send').check();
  await form.getByRole('button', { name: 'Create key' }).click();
  key = await page.locator('#new-key-secret').inputValue();
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  receiver?.close();
});

test('the Canvas list starts empty and leads to a new Canvas', async () => {
  await page.goto(`${base}/canvases`);
  await hydrated(page);
  await page.getByText('No Canvases yet').waitFor();
  await page.getByRole('link', { name: 'New Canvas' }).click();
  await page.waitForURL(/\/canvases\/new$/);
  await page.locator('#canvas-title', { hasText: 'New Canvas' }).waitFor();
});

test('an action-based Canvas on the custom event signup is saved as a draft', async () => {
  await page.getByLabel('Canvas name').fill('Onboarding');
  await page.getByLabel('Tags').fill('welcome');
  await page.getByRole('tab', { name: /Entry/ }).click();
  await page.locator('#panel-entry').getByText('Action-based', { exact: true }).click();
  await page.locator('#entry-action').getByLabel('Event name').fill('signup');
  await page.locator('#panel-entry').getByRole('button', { name: 'Save draft' }).click();
  await page.waitForURL(/\/canvases\/[0-9a-f-]{36}\?tab=entry$/);
  onboardingUrl = page.url().replace(/\?.*$/, '');
  await page.locator('#canvas-title', { hasText: 'Onboarding' }).waitFor();
  assert.equal(await page.locator('#entry-action').getByLabel('Event name').inputValue(), 'signup');
});

test('a conversion event added in Basics survives a reload', async () => {
  await page.getByRole('tab', { name: /Basics/ }).click();
  const card = page.locator('#canvas-conversions');
  await card.getByRole('button', { name: '+ Conversion event' }).click();
  const row = card.locator('.conversion-row').first();
  await row.getByLabel('Event name').fill('upgrade');
  await row.getByLabel('Window', { exact: true }).fill('2');
  await row.getByLabel('Window unit').selectOption('days');
  await page.locator('#panel-basics').getByRole('button', { name: 'Save draft' }).click();
  await page.locator('#panel-basics').getByRole('status').filter({ hasText: 'Saved' }).waitFor();

  await page.goto(`${onboardingUrl}?tab=basics`);
  await hydrated(page);
  const saved = page.locator('#canvas-conversions .conversion-row');
  assert.equal(await saved.count(), 1);
  assert.equal(await saved.getByLabel('Trigger kind').inputValue(), 'custom_event');
  assert.equal(await saved.getByLabel('Event name').inputValue(), 'upgrade');
  assert.equal(await saved.getByLabel('Window', { exact: true }).inputValue(), '2');
  assert.equal(await saved.getByLabel('Window unit').inputValue(), 'days');
  await page.getByRole('tab', { name: /Summary/ }).click();
  await page.locator('#summary-conversions', { hasText: 'performs “upgrade” within 2 days' }).waitFor();
});

test('the flow is drawn step by step with the + buttons, and problems show on the cards', async () => {
  await page.getByRole('tab', { name: /Build/ }).click();
  await page.locator('#flow-entry', { hasText: 'When a user performs “signup”' }).waitFor();

  await addStep('at the start', 'Message');
  // A Message with no address yet is a problem: a red badge on its card, and in the list.
  await page.locator('.step-card[data-kind="message"] .problem-badge').waitFor();
  await page.locator('#build-problems .problem').first().waitFor();
  await composeMessage('Welcome', `${receiverUrl}/welcome`, [
    ['user', '{{${user_id}}}'],
    ['greeting', 'Welcome {{${first_name}}}'],
  ]);
  await page.locator('.step-card[data-kind="message"] .problem-badge').waitFor({ state: 'detached' });

  // A Liquid error in the body is a problem of its step: a badge on its card, and no launch.
  const greeting = page.locator('#step-panel #composer-pairs .kv-row').nth(1).getByLabel('Value (Liquid allowed)');
  await greeting.fill('Welcome {{${first_name}');
  const welcomeCard = page.locator('.step-card', { hasText: 'Welcome' });
  await welcomeCard.locator('.problem-badge').waitFor();
  await page.getByRole('tab', { name: /Summary/ }).click();
  await page.locator('#summary-problems .problem').first().waitFor();
  await page.locator('#launch-blocked', { hasText: 'Fix the problems above to launch.' }).waitFor();
  assert.equal(await page.locator('#launch-canvas').isDisabled(), true, 'no launch while a problem shows');
  await page.getByRole('tab', { name: /Build/ }).click();
  await greeting.fill('Welcome {{${first_name}}}');
  await welcomeCard.locator('.problem-badge').waitFor({ state: 'detached' });

  await addStep('after “Welcome”', 'Delay');
  await page.locator('#step-panel').getByLabel('Delay amount').fill('1');
  await page.locator('#step-panel #delay-unit').selectOption('minutes');
  await page.locator('.step-card[data-kind="delay"]', { hasText: 'Wait 1 minute' }).waitFor();

  await addStep('after “Delay”', 'Decision Split');
  const split = page.locator('#step-panel');
  await split.getByLabel('Step name').fill('Is pro');
  await split.getByRole('button', { name: '+ Condition' }).click();
  await split.getByLabel('Attribute name').fill('plan');
  await split.getByLabel('Value', { exact: true }).fill('pro');
  await page.locator('.step-card[data-kind="decision_split"]', { hasText: 'plan equals pro' }).waitFor();
  await page.locator('.edge-label', { hasText: 'Yes' }).waitFor();
  await page.locator('.edge-label', { hasText: 'No' }).waitFor();

  // Both branches get a step: an empty branch would block the launch.
  await addStep('on the Yes path of “Is pro”', 'Message');
  await composeMessage('Message A', `${receiverUrl}/pro`, [
    ['user', '{{${user_id}}}'],
    ['offer', 'Pro perks for {{${first_name}}}'],
  ]);
  await addStep('on the No path of “Is pro”', 'Message');
  await composeMessage('Message B', `${receiverUrl}/free`, [
    ['user', '{{${user_id}}}'],
    ['offer', 'Go pro, {{${first_name}}}'],
  ]);

  assert.equal(await page.locator('.step-card').count(), 5);
  await page.locator('#build-problems .no-problems').waitFor();
  await page.locator('#panel-build').getByRole('button', { name: 'Save draft' }).click();
  await page.locator('#panel-build').getByRole('status').filter({ hasText: 'Saved' }).waitFor();

  // What was saved comes back as it was drawn.
  await page.goto(`${onboardingUrl}?tab=build`);
  await hydrated(page);
  assert.equal(await page.locator('.step-card').count(), 5);
  await page.locator('.step-card', { hasText: 'Message A' }).waitFor();
  await page.locator('.step-card', { hasText: 'Is pro' }).click();
  assert.equal(await page.locator('#step-panel').getByLabel('Attribute name').inputValue(), 'plan');
});

test('a step inserted on an edge and deleted again leaves the flow as it was', async () => {
  await page.locator('.edge-add[data-slot^="next-"]').first().click();
  await page.locator('#step-menu').getByRole('menuitem', { name: 'Context', exact: true }).click();
  await page.locator('#step-panel').getByLabel('Variable name').fill('greeting');
  await page.locator('#step-panel').getByLabel('Variable value').fill('hi');
  assert.equal(await page.locator('.step-card').count(), 6);
  await page.locator('#step-panel').getByRole('button', { name: 'Delete step' }).click();
  assert.equal(await page.locator('.step-card').count(), 5);
  await page.locator('.step-card[data-kind="delay"]').waitFor();
});

test('the Canvas launches once it has no problems', async () => {
  await page.getByRole('tab', { name: /Summary/ }).click();
  await page.locator('#summary-entry', { hasText: 'signup' }).waitFor();
  assert.equal(await page.locator('#summary-steps').innerText(), '5');
  const launch = page.getByRole('button', { name: 'Launch Canvas' });
  await launch.waitFor();
  await page.waitForFunction(() => !document.querySelector('#launch-canvas')?.disabled);
  await launch.click();
  await page.locator('#canvas-notice', { hasText: 'Launched' }).waitFor();
  await page.locator('.canvas-status[data-status="active"]').waitFor();
});

test('users performing signup receive their personalised welcome webhook and wait at the Delay', async () => {
  await track({
    attributes: [
      { external_id: 'ada', first_name: 'Ada', plan: 'pro' },
      { external_id: 'bob', first_name: 'Bob', plan: 'free' },
    ],
  });
  signupTrackedAt = Date.now();
  const now = new Date(signupTrackedAt).toISOString();
  await track({
    events: [
      { external_id: 'ada', name: 'signup', time: now },
      { external_id: 'bob', name: 'signup', time: now },
    ],
  });
  const hits = await arrivals('/welcome', 2);
  const bodies = hits.map((r) => JSON.parse(r.body)).sort((a, b) => a.user.localeCompare(b.user));
  assert.deepEqual(bodies, [
    { user: 'ada', greeting: 'Welcome Ada' },
    { user: 'bob', greeting: 'Welcome Bob' },
  ]);
  for (const hit of hits) {
    assert.equal(hit.method, 'POST');
    assert.ok(hit.headers['webhook-id'], 'every send carries its webhook-id');
  }
  // Held by the one-minute Delay: nothing went down the split yet.
  assert.equal(received.filter((r) => r.url === '/pro' || r.url === '/free').length, 0);
});

test('the report and the diagram count the entries and sends', async () => {
  await page.goto(`${onboardingUrl}/report`);
  await hydrated(page);
  await page.locator('#total-entries', { hasText: /^2$/ }).waitFor();
  const welcome = page.locator('#step-stats tr', { hasText: 'Welcome' });
  await welcome.waitFor();
  assert.match(await welcome.innerText(), /Welcome\s+Message\s+2\s+2/);
  await page.locator('#canvas-chart svg').waitFor();

  await page.goto(`${onboardingUrl}?tab=build`);
  await hydrated(page);
  await page.locator('.step-card', { hasText: 'Welcome' }).locator('.card-stats', { hasText: '2 entered · 2 sent' }).waitFor();
  await page.locator('.step-card[data-kind="delay"] .card-stats', { hasText: '2 entered' }).waitFor();
});

test('a user performing the conversion event shows as converted in the report and on the diagram', async () => {
  await track({ events: [{ external_id: 'ada', name: 'upgrade', time: new Date().toISOString() }] });
  await page.goto(`${onboardingUrl}/report`);
  await hydrated(page);
  await page.locator('#total-conversions', { hasText: /^1$/ }).waitFor();
  assert.equal(await page.locator('#total-conversion-rate').innerText(), '50.0%');
  await page.locator('#primary-conversion', { hasText: 'performs “upgrade” within 2 days' }).waitFor();
  const welcome = page.locator('#step-stats tr', { hasText: 'Welcome' });
  assert.equal(await welcome.locator('.step-converted').innerText(), '1');

  await page.goto(`${onboardingUrl}?tab=build`);
  await hydrated(page);
  const card = page.locator('.step-card', { hasText: 'Welcome' });
  await card.locator('.card-stats', { hasText: '2 entered · 2 sent · 1 converted' }).waitFor();
  await card.click();
  await page.locator('#step-panel .step-converted', { hasText: '1 (50.0% of entries)' }).waitFor();
});

test('a user’s profile lists their Canvas journey', async () => {
  await page.goto(`${base}/users`);
  await hydrated(page);
  await page.getByLabel('Search users').fill('ada');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('#users-table').getByRole('link', { name: 'ada' }).click();
  await page.waitForURL(/\/users\/[0-9a-f-]{36}$/);
  const journeys = page.locator('#user-journeys');
  await journeys.getByRole('link', { name: 'Onboarding' }).first().waitFor();
  await journeys.getByText('Entered').first().waitFor();
  await journeys.getByText('Welcome').first().waitFor();
});

test('saving a launched Canvas freezes a new version', async () => {
  await page.goto(`${onboardingUrl}?tab=build`);
  await hydrated(page);
  await page.locator('.step-card', { hasText: 'Message B' }).click();
  await page.locator('#step-panel').getByLabel('Step name').fill('Message for free users');
  await page.locator('#step-panel').getByLabel('Webhook URL').fill(`${receiverUrl}/free-v2`);
  await page.locator('.step-card', { hasText: 'Message for free users' }).waitFor();
  await page.locator('#panel-build').getByRole('button', { name: 'Save as new version' }).click();
  await page.locator('#canvas-notice', { hasText: /^Saved as version 2; users already inside stay on their version\.$/ }).waitFor();
  await page.locator('#canvas-version', { hasText: 'version 2' }).waitFor();
});

test('a minute after the welcome the pro user gets Message A and the other Message B, on their version', async () => {
  const welcomes = received.filter((r) => r.url === '/welcome');
  const welcomeOf = (user) => welcomes.find((r) => JSON.parse(r.body).user === user);
  assert.equal(welcomes.length, 2);
  // The Delay lets them go about a minute after the welcomes; allow the engine a minute more.
  const deadline = Math.max(...welcomes.map((r) => r.at)) + 120_000;
  const [pro] = await arrivals('/pro', 1, deadline - Date.now());
  const [free] = await arrivals('/free', 1, deadline - Date.now());

  assert.deepEqual(JSON.parse(pro.body), { user: 'ada', offer: 'Pro perks for Ada' });
  assert.deepEqual(JSON.parse(free.body), { user: 'bob', offer: 'Go pro, Bob' });
  for (const [hit, user] of [[pro, 'ada'], [free, 'bob']]) {
    // No journey began before the signup was tracked, so a full minute lies between the two.
    assert.ok(hit.at - signupTrackedAt >= 60_000, `${user} left the Delay ${hit.at - signupTrackedAt} ms after signing up`);
    // The welcome and the start of the Delay share one engine tick; the welcome's own delivery
    // (a few milliseconds) may land after the Delay began, hence the second of slack.
    const held = hit.at - welcomeOf(user).at;
    assert.ok(held >= 59_000, `${user} got the split's message ${held} ms after the welcome`);
  }
  // Only one message each, each down their own branch, and none from version 2's address: users
  // inside stay on the version they entered.
  const after = received.filter((r) => ['/pro', '/free', '/free-v2'].includes(r.url)).map((r) => r.url).sort();
  assert.deepEqual(after, ['/free', '/pro']);
});

test('an API-triggered Canvas renders the context of /api/canvas/trigger/send', async () => {
  await page.goto(`${base}/canvases/new`);
  await hydrated(page);
  await page.getByLabel('Canvas name').fill('Coupon');
  // Anyone can enter: the reach counts both tracked users.
  await page.getByRole('tab', { name: /Audience/ }).click();
  await page.locator('#canvas-reach', { hasText: /^2$/ }).waitFor();
  await page.getByRole('tab', { name: /Entry/ }).click();
  await page.locator('#panel-entry').getByText('API-triggered', { exact: true }).click();
  await page.locator('#api-usage', { hasText: 'Save the draft' }).waitFor();
  await page.getByRole('tab', { name: /Build/ }).click();
  await addStep('at the start', 'Message');
  await composeMessage('Send coupon', `${receiverUrl}/coupon`, [
    ['user', '{{${user_id}}}'],
    ['coupon', '{{context.${coupon}}}'],
  ]);
  await page.locator('#build-problems .no-problems').waitFor();
  await page.locator('#panel-build').getByRole('button', { name: 'Save draft' }).click();
  await page.waitForURL(/\/canvases\/[0-9a-f-]{36}\?tab=build$/);

  await page.getByRole('tab', { name: /Entry/ }).click();
  const canvasId = await page.locator('#canvas-id').innerText();
  assert.match(canvasId, /^[0-9a-f-]{36}$/);
  assert.match(await page.locator('#api-usage pre').innerText(), /\/api\/canvas\/trigger\/send[\s\S]*"context"/);

  await page.getByRole('tab', { name: /Summary/ }).click();
  await page.waitForFunction(() => !document.querySelector('#launch-canvas')?.disabled);
  await page.getByRole('button', { name: 'Launch Canvas' }).click();
  await page.locator('.canvas-status[data-status="active"]').waitFor();

  const res = await fetch(`${herald.base}/api/canvas/trigger/send`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      canvas_id: canvasId,
      context: { coupon: 'WELCOME10' },
      recipients: [{ external_user_id: 'ada' }],
    }),
  });
  assert.equal(res.status, 201, await res.text());
  const [hit] = await arrivals('/coupon', 1);
  assert.deepEqual(JSON.parse(hit.body), { user: 'ada', coupon: 'WELCOME10' });
});

test('the Audience Paths editor: a path with a condition survives a save and a reload', async () => {
  await page.goto(`${base}/canvases/new`);
  await hydrated(page);
  await page.getByLabel('Canvas name').fill('Segmented');
  await page.getByRole('tab', { name: /Build/ }).click();
  await addStep('at the start', 'Audience Paths');
  const panel = page.locator('#step-panel');
  await panel.getByLabel('Step name').fill('By plan');
  const paths = panel.locator('.path-box');
  assert.equal(await paths.count(), 1);
  await paths.nth(0).getByLabel('Path name').fill('Pro');
  await paths.nth(0).getByRole('button', { name: '+ Condition' }).click();
  await paths.nth(0).getByLabel('Attribute name').fill('plan');
  await paths.nth(0).getByLabel('Value', { exact: true }).fill('pro');
  await panel.getByRole('button', { name: '+ Path' }).click();
  assert.equal(await paths.count(), 2);
  await paths.nth(1).getByLabel('Path name').fill('Trial');
  await paths.nth(1).getByRole('button', { name: '+ Condition' }).click();
  await paths.nth(1).getByLabel('Attribute name').fill('plan');
  await paths.nth(1).getByLabel('Value', { exact: true }).fill('trial');
  await page.locator('.edge-label', { hasText: 'Trial' }).waitFor();
  await page.locator('.edge-label', { hasText: 'Everyone else' }).waitFor();

  // Its three branches are empty: problems of the step until each has a step.
  await page.locator('.step-card[data-kind="audience_paths"] .problem-badge').waitFor();
  for (const place of ['on the Pro path of “By plan”', 'on the Trial path of “By plan”', 'on the Everyone else path of “By plan”']) {
    await addStep(place, 'Exit');
  }
  assert.equal(await page.locator('.step-card[data-kind="exit"]').count(), 3);
  await page.locator('#build-problems .no-problems').waitFor();
  await page.locator('#panel-build').getByRole('button', { name: 'Save draft' }).click();
  await page.waitForURL(/\/canvases\/[0-9a-f-]{36}\?tab=build$/);

  await page.goto(page.url());
  await hydrated(page);
  assert.equal(await page.locator('.step-card[data-kind="exit"]').count(), 3);
  await page.locator('.step-card', { hasText: 'By plan' }).click();
  const saved = page.locator('#step-panel .path-box');
  assert.equal(await saved.count(), 2);
  for (const [i, name, plan] of [[0, 'Pro', 'pro'], [1, 'Trial', 'trial']]) {
    assert.equal(await saved.nth(i).getByLabel('Path name').inputValue(), name);
    assert.equal(await saved.nth(i).getByLabel('Attribute name').inputValue(), 'plan');
    assert.equal(await saved.nth(i).getByLabel('Value', { exact: true }).inputValue(), plan);
  }
  await page.locator('#build-problems .no-problems').waitFor();
});

test('the Settings tab: variants with a control group and an entry limit survive a save and a reload', async () => {
  const url = page.url().replace(/\?.*$/, '');
  await page.getByRole('tab', { name: /Settings/ }).click();
  const settings = page.locator('#panel-settings');
  const variants = page.locator('#canvas-variants');
  await variants.getByRole('button', { name: '+ Variant' }).click();
  await variants.getByLabel('Variant name').nth(1).fill('Quiet');
  await variants.getByLabel('Variant percent').nth(0).fill('45');
  await variants.getByLabel('Variant percent').nth(1).fill('45');
  await variants.locator('#control-percent').fill('10');
  await variants.getByText('Total: 100% (must be 100%)').waitFor();
  await settings.locator('#settings-entry-limit').fill('500');
  await settings.getByLabel('Entry limit period').selectOption('lifetime');
  await settings.getByRole('button', { name: 'Save draft' }).click();
  await settings.getByRole('status').filter({ hasText: 'Saved' }).waitFor();

  await page.goto(`${url}?tab=settings`);
  await hydrated(page);
  const names = page.locator('#canvas-variants').getByLabel('Variant name');
  assert.equal(await names.count(), 2);
  assert.equal(await names.nth(0).inputValue(), 'Variant 1');
  assert.equal(await names.nth(1).inputValue(), 'Quiet');
  const percents = page.locator('#canvas-variants').getByLabel('Variant percent');
  assert.equal(await percents.nth(0).inputValue(), '45');
  assert.equal(await percents.nth(1).inputValue(), '45');
  assert.equal(await page.locator('#control-percent').inputValue(), '10');
  assert.equal(await page.locator('#settings-entry-limit').inputValue(), '500');
  assert.equal(await page.locator('#panel-settings').getByLabel('Entry limit period').inputValue(), 'lifetime');
  // The first variant kept its path; the new one starts empty, side by side on the diagram.
  await page.getByRole('tab', { name: /Build/ }).click();
  await page.locator('.flow-node.variant-node', { hasText: 'Quiet' }).waitFor();
  await page.locator('.flow-node.control-node').waitFor();
  assert.equal(await page.locator('.step-card').count(), 4);
});

test('the list filters by status through the address and offers row actions', async () => {
  await page.goto(`${base}/canvases?status=active`);
  await hydrated(page);
  const row = page.locator('#canvases-table tr', { hasText: 'Onboarding' });
  await row.locator('.canvas-status', { hasText: 'Active' }).waitFor();
  await row.getByText('welcome').waitFor();
  await row.getByText('Action-based').waitFor();
  await page.locator('#canvases-table tr', { hasText: 'Coupon' }).getByText('API-triggered').waitFor();

  await row.getByRole('button', { name: 'Pause' }).click();
  await page.locator('#canvases-table tr', { hasText: 'Onboarding' }).waitFor({ state: 'detached' });
  await page.locator('#filter-status').selectOption('paused');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=paused/);
  const paused = page.locator('#canvases-table tr', { hasText: 'Onboarding' });
  await paused.locator('.canvas-status', { hasText: 'Paused' }).waitFor();
  await paused.getByRole('button', { name: 'Resume' }).click();
  await page.getByText('No Canvas matches these filters').waitFor();

  await page.goto(`${base}/canvases`);
  await hydrated(page);
  await page.locator('#canvases-table tr', { hasText: 'Onboarding' }).first().getByRole('button', { name: 'Duplicate' }).click();
  const copy = page.locator('#canvases-table tr', { hasText: 'Copy of Onboarding' });
  await copy.locator('.canvas-status', { hasText: 'Draft' }).waitFor();
  await copy.getByRole('button', { name: 'Archive' }).click();
  await page.locator('#canvases-table tr', { hasText: 'Copy of Onboarding' }).waitFor({ state: 'detached' });
});

test('no page raised a browser error', () => {
  assert.deepEqual(errors, []);
});
