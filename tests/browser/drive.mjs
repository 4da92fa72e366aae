// Opens pages that load the unchanged browser SDKs in headless Chromium and reports, one JSON line
// each, every request to the collector, its answer, failures (CORS refusals among them) and the
// pages' console. The test that starts this script reads those lines and the sandbox; it writes
// `close` (or closes standard input) when it has seen what it waits for.
//
//   node drive.mjs '{"collector":"http://127.0.0.1:8080","key":"K","pages":[{"sdk":"segment","mode":"standard","user":"u1"}],"screenshot":"shot.png"}'

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const settings = JSON.parse(process.argv[2]);
const emit = (record) => process.stdout.write(JSON.stringify(record) + '\n');

// Each SDK is served from its npm package, as a site that bundles or self-hosts it would.
const roots = {
  '/sdk/segment/': join(here, 'node_modules/@segment/analytics-next/dist/umd/'),
  '/sdk/rudderstack/': join(here, 'node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/'),
};
const types = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };

const site = createServer(async (request, response) => {
  const path = new URL(request.url, 'http://site').pathname;
  let file = path === '/page.html' ? join(here, 'page.html') : null;
  for (const [prefix, root] of Object.entries(roots)) {
    if (path.startsWith(prefix)) {
      const candidate = normalize(join(root, path.slice(prefix.length)));
      if (candidate.startsWith(root)) file = candidate;
    }
  }
  try {
    if (!file) throw new Error('not found');
    const body = await readFile(file);
    response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
    response.end(body);
  } catch {
    response.writeHead(404);
    response.end();
  }
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${site.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.SIGNAL_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

// Nothing may be fetched from a CDN: the test sees any attempt as a failure.
const collectorOrigin = new URL(settings.collector).origin;
const pages = [];
for (const [index, spec] of settings.pages.entries()) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 600 }, timezoneId: spec.timezone });
  const page = await context.newPage();
  pages.push(page);
  const tag = { page: index, sdk: spec.sdk, mode: spec.mode };
  page.on('console', (message) => emit({ kind: 'console', ...tag, type: message.type(), text: message.text() }));
  page.on('pageerror', (error) => emit({ kind: 'pageerror', ...tag, text: String(error) }));
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.origin === origin) return;
    emit({
      kind: 'request',
      ...tag,
      method: request.method(),
      url: request.url(),
      to_collector: url.origin === collectorOrigin,
      headers: request.headers(),
      resource: request.resourceType(),
    });
  });
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.origin === origin) return;
    emit({ kind: 'response', ...tag, method: response.request().method(), url: response.url(), status: response.status() });
  });
  page.on('requestfailed', (request) => {
    emit({ kind: 'failed', ...tag, method: request.method(), url: request.url(), error: request.failure()?.errorText });
  });
  await page.addInitScript((values) => { window.signalSettings = values; },
    { sdk: spec.sdk, mode: spec.mode, user: spec.user, collector: settings.collector, key: settings.key });
  await page.goto(`${origin}/page.html`);
}
for (const [index, page] of pages.entries()) {
  const made = await page.waitForFunction(() => window.signalCallsMade, null, { timeout: 30000 }).catch((e) => e);
  emit({ kind: 'calls_made', page: index, result: made instanceof Error ? String(made) : await made.jsonValue() });
}
emit({ kind: 'ready', origin });

async function finish() {
  if (settings.screenshot) {
    for (const [index, page] of pages.entries()) {
      const path = settings.screenshot.replace(/\.png$/, `-${index}.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => {});
    }
  }
  for (const page of pages) await page.close({ runBeforeUnload: true }).catch(() => {});
  await browser.close();
  site.close();
  emit({ kind: 'closed' });
  process.exit(0);
}

// The test says when it is done; it never waits more than two minutes.
setTimeout(finish, 120000).unref();
const input = createInterface({ input: process.stdin });
input.on('line', (line) => { if (line.trim() === 'close') finish(); });
input.on('close', finish);
