// Starts a real `herald serve` on a fresh SQLite database and a free port, and a headless Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '..', '..');

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

export async function startHerald(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-e2e-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const binary = process.env.HERALD_BIN ?? join(root, 'target', 'debug', 'herald');
  const child = spawn(binary, ['serve'], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${join(dir, 'herald.db')}?mode=rwc`,
      HERALD_BIND: `127.0.0.1:${port}`,
      HERALD_PUBLIC_URL: base,
      HERALD_LOG: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`herald exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('herald did not become ready within 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/// A page that fails the test on any uncaught error in the browser (a broken hydration shows here).
export async function newPage(context, errors) {
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    // Expected HTTP errors (a wrong password's 401, say) show as "Failed to load resource"; skip those.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  return page;
}

/// Waits until the page's WebAssembly has hydrated, so clicks go through Leptos, not plain HTML.
export async function hydrated(page) {
  await page.waitForFunction(() => window.__heraldHydrated === true, null, { timeout: 30_000 });
}

/// First run through the dashboard: creates the owner and its workspace; returns the workspace URL.
export async function createOwner(page, { email = 'owner@example.com', password = 'correct horse battery', workspace = 'Acme' } = {}) {
  await page.goto('/setup');
  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Workspace name').fill(workspace);
  await page.getByRole('button', { name: 'Create owner account' }).click();
  await page.waitForURL(/\/w\/[0-9a-f-]{36}$/);
  return page.url().replace(/\/$/, '');
}
