// Drives the Event Debugger page (`/debugger` on Signal's admin listener) in headless Chromium, as
// an operator would, and reports what it saw as JSON lines on standard output.
//
//   node debugger.mjs '{"admin":"http://127.0.0.1:9090","mode":"check","screenshot":"shot.png"}'
//
// mode "check": opens the page, says `ready`, waits for a delivered and a dropped event to appear
// live (the test sends them once the page is ready), opens each one's detail, filters by state,
// takes a screenshot and says `done`.
// mode "measure": opens the page over a full queue file, times its first render, loads 10,000 rows
// by scrolling, and times the frames of a scroll through them.

import { chromium } from 'playwright-core';

const settings = JSON.parse(process.argv[2]);
const emit = (record) => process.stdout.write(JSON.stringify(record) + '\n');

const browser = await chromium.launch({
  executablePath: process.env.SIGNAL_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'UTC' });
const page = await context.newPage();
page.on('console', (message) => {
  if (message.type() === 'error' || message.type() === 'warning') emit({ kind: 'console', type: message.type(), text: message.text() });
});
page.on('pageerror', (error) => emit({ kind: 'pageerror', text: String(error) }));
const requests = [];
page.on('request', (request) => requests.push(request.url()));
let dialogs = 0;
page.on('dialog', async (dialog) => { dialogs += 1; await dialog.dismiss(); });

const text = (selector) => page.$eval(selector, (element) => element.textContent ?? '').catch(() => null);

async function rowFacts() {
  return page.$$eval('#rows .row', (rows) =>
    rows.map((row) => ({ id: row.dataset.id, state: row.dataset.state, text: row.textContent })),
  );
}

async function openDetail(id) {
  await page.click(`#rows .row[data-id="${id}"]`);
  // Open when the address names it and its event has arrived in the pane.
  await page.waitForFunction(
    (id) => {
      const payload = document.querySelector('#detail-payload');
      return new URLSearchParams(location.search).get('id') === String(id)
        && payload && !payload.classList.contains('loading') && (payload.textContent ?? '').includes('{');
    },
    id,
    { timeout: 10000 },
  );
  return {
    kind: 'detail',
    id,
    state: await page.$eval(`#rows .row[data-id="${id}"]`, (row) => row.dataset.state),
    title: await text('#detail'),
    hint: await text('#detail-hint'),
    attempts: await text('#detail-attempts'),
    payload: await text('#detail-payload'),
    body: await text('#detail-body'),
    answer: await text('#detail-answer'),
  };
}

try {
  const started = Date.now();
  await page.goto(`${settings.admin}/debugger`);
  await page.waitForSelector('body[data-loaded="1"]', { timeout: 15000 });
  emit({ kind: 'loaded', ms: Date.now() - started, rows: await page.evaluate(() => window.__debugger.rowsLoaded()) });

  if (settings.mode === 'check') {
    emit({ kind: 'ready', live: await text('#live') });
    await page.waitForSelector('#rows .row[data-state="delivered"]', { timeout: 20000 });
    await page.waitForFunction(
      (count) => document.querySelectorAll('#rows .row[data-state="dropped"]').length >= count,
      settings.dropped ?? 1,
      { timeout: 20000 },
    );
    const rows = await rowFacts();
    emit({ kind: 'rows', rows, live: await text('#live') });
    // Every row's detail, the delivered one last: the screenshot shows it.
    const ordered = [...rows.filter((row) => row.state !== 'delivered'), ...rows.filter((row) => row.state === 'delivered')];
    for (const row of ordered) emit(await openDetail(row.id));
    emit({ kind: 'dom', images: await page.$$eval('img', (found) => found.length), alerts: dialogs });
    if (settings.screenshot) await page.screenshot({ path: settings.screenshot });
    await page.selectOption('#filter-state', 'dropped');
    await page.waitForFunction(
      () => {
        // Settled: the filtered list has loaded (an empty list while it loads would pass vacuously).
        const rows = [...document.querySelectorAll('#rows .row')];
        return !('loading' in document.body.dataset) && rows.length > 0 && rows.every((row) => row.dataset.state === 'dropped');
      },
      null,
      { timeout: 10000 },
    );
    emit({
      kind: 'filtered',
      rows: await rowFacts(),
      url: page.url(),
      asked: requests.filter((url) => url.includes('/api/events?')).pop(),
    });
  } else {
    // Scroll until 10,000 rows are loaded, then time a scroll through them, frame by frame.
    const loading = Date.now();
    while ((await page.evaluate(() => window.__debugger.rowsLoaded())) < 10000 && Date.now() - loading < 60000) {
      await page.$eval('#rows', (rows) => { rows.scrollTop = rows.scrollHeight; });
      await page.waitForTimeout(50);
    }
    const rows = await page.evaluate(() => window.__debugger.rowsLoaded());
    emit({ kind: 'scrolled_to_load', rows, ms: Date.now() - loading });
    const frames = await page.evaluate(async () => {
      const container = document.querySelector('#rows');
      container.scrollTop = 0;
      const times = [];
      let last = performance.now();
      for (let frame = 0; frame < 300; frame += 1) {
        container.scrollTop += container.scrollHeight / 300;
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const now = performance.now();
        times.push(now - last);
        last = now;
      }
      times.sort((a, b) => a - b);
      return { p50: times[150], p95: times[285], max: times[299], rendered: container.querySelectorAll('.row').length };
    });
    emit({ kind: 'frames', ...frames });
    if (settings.screenshot) await page.screenshot({ path: settings.screenshot });
  }
  emit({ kind: 'done' });
} catch (error) {
  emit({ kind: 'failed', text: String(error?.stack ?? error) });
} finally {
  await browser.close();
}
