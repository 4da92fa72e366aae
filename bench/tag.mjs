// What Signal's browser tag costs a page, next to analytics.js (Segment) and RudderStack's SDK.
//
//   cd tests/browser && npm ci && cd ../..      (once: playwright-core and the two SDKs, as the browser tests pin them)
//   node bench/tag.mjs [--runs N]               (N page loads per variant, 15 by default)
//
// It measures:
//  1. Transfer size: each SDK gzipped (level 9, node:zlib), as a page loads it. For analytics.js that is
//     the UMD index.js plus the chunks the page actually fetches; they are found by recording what the
//     page asks the local server for, not by guessing.
//  2. Page-load cost in headless Chromium (/usr/bin/chromium, or SIGNAL_CHROMIUM): a local site on
//     127.0.0.1 serves one small page per variant, and a stub collector on another 127.0.0.1 port serves
//     signal.js, answers `/signal/id` and accepts every event. Variants: (a) no script (baseline),
//     (b) signal.js + signal.page('Home'), (c) analytics.js + analytics.page(), (d) RudderStack + page().
//     Each load has a fresh browser context and a CDP session with `Performance.enable` from before the
//     navigation. Once the load event has fired, the SDK's first call has returned and its event has
//     reached the collector (so the send is counted too), `Performance.getMetrics` gives ScriptDuration
//     and TaskDuration; PerformanceNavigationTiming gives loadEventEnd. The variants take turns, load by
//     load, so that drift on the machine hits them alike. It prints medians, the difference over the
//     baseline and analytics.js ÷ signal.js of the added script time: a Markdown table, then one JSON line.
//
//     Caveat: Chromium's ScriptDuration counts script run from a task (a <script>, a timer, an event)
//     but not promise callbacks run as microtasks; those land in TaskDuration only. A promise-heavy SDK
//     (analytics.js) therefore shows less ScriptDuration than it spends, so the ratio is also given
//     on the added TaskDuration.
//
// Nothing leaves 127.0.0.1: the SDKs get their settings inline (cdnSettings, getSourceConfig), and one
// untimed load per variant first checks that with every request routed through a filter that refuses
// any other host. The script exits by itself: a watchdog ends it if anything hangs.

import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const browserTests = join(repo, 'tests/browser');
const modules = join(browserTests, 'node_modules');

// ---- Options and limits -------------------------------------------------------------------------

function option(name, fallback) {
  const args = process.argv.slice(2);
  const at = args.findIndex((a) => a === name || a.startsWith(name + '='));
  if (at < 0) return fallback;
  const value = args[at].includes('=') ? args[at].split('=')[1] : args[at + 1];
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 500) {
    console.error(`${name} wants a whole number from 1 to 500, not ${value}`);
    process.exit(2);
  }
  return n;
}
const RUNS = option('--runs', 15);
const LOAD_TIMEOUT = 20000; // one page load, call and send
const WATCHDOG = 60000 + RUNS * 4 * 30000; // the whole run, generously
setTimeout(() => {
  console.error(`bench/tag.mjs: gave up after ${WATCHDOG / 1000} s`);
  process.exit(3);
}, WATCHDOG).unref();

// ---- Packages, from tests/browser/node_modules ---------------------------------------------------

const sdkRoots = {
  segment: join(modules, '@segment/analytics-next/dist/umd') + sep,
  rudderstack: join(modules, '@rudderstack/analytics-js/dist/npm/modern/bundled/umd') + sep,
};
const signalFile = join(repo, 'tag/signal.js');
for (const path of [...Object.values(sdkRoots), join(modules, 'playwright-core'), signalFile]) {
  if (!existsSync(path)) {
    console.error(`missing ${path}; run \`npm ci\` in tests/browser first`);
    process.exit(2);
  }
}
const require = createRequire(join(browserTests, 'package.json'));
const { chromium } = require('playwright-core');
const version = (name) => JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')).version;

// Read once: the same bytes are measured and served.
const signalJs = readFileSync(signalFile);

// ---- Stub collector --------------------------------------------------------------------------------

const KEY = 'bench-write-key';
let eventsSeen = 0; // event requests (not metrics, not /signal/id) since the current load began
const collectorCalls = new Map(); // "METHOD path" -> count, over the whole run

const collector = createServer((request, response) => {
  const path = new URL(request.url, 'http://collector').pathname;
  const origin = request.headers.origin;
  const label = `${request.method} ${path}`;
  collectorCalls.set(label, (collectorCalls.get(label) ?? 0) + 1);
  request.resume();
  request.on('end', () => {
    if (request.method === 'GET' && path === '/signal.js') {
      response.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      return response.end(signalJs);
    }
    if (request.method === 'GET' && path === '/signal/id') {
      // Asked with credentials: the answer names the origin.
      response.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': origin ?? '*',
        'access-control-allow-credentials': 'true',
        vary: 'Origin',
      });
      return response.end('{"cookie":false}');
    }
    if (request.method === 'OPTIONS') {
      response.writeHead(204, {
        'access-control-allow-origin': origin ?? '*',
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': request.headers['access-control-request-headers'] ?? '*',
        'access-control-max-age': '600',
        vary: 'Origin',
      });
      return response.end();
    }
    if (request.method === 'POST' && path.startsWith('/v1/')) {
      if (path !== '/v1/m') eventsSeen += 1;
      response.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      return response.end('{"success":true}');
    }
    response.writeHead(404, { 'access-control-allow-origin': '*' });
    response.end();
  });
});

// ---- Site ---------------------------------------------------------------------------------------------

let collectorUrl = '';
const fetched = { segment: new Set(), rudderstack: new Set() }; // SDK files the pages asked for

// What each variant adds to the same small page. Each script ends by setting window.benchCalled.
const variants = {
  baseline: { label: '(a) no script', head: () => `<script>window.benchCalled = true;</script>` },
  signal: {
    label: '(b) signal.js',
    head: () => `<script src="${collectorUrl}/signal.js" data-write-key="${KEY}"></script>
<script>
signal.page('Home').then(() => { window.benchCalled = true; }, (e) => { window.benchCalled = 'error: ' + e; });
</script>`,
  },
  segment: {
    label: '(c) analytics.js',
    head: () => {
      const host = new URL(collectorUrl).host + '/v1';
      return `<script src="/sdk/segment/index.js"></script>
<script>
// The settings analytics.js would fetch from Segment's CDN, inline as in tests/browser/page.html.
AnalyticsNext.AnalyticsBrowser.load(
  {
    writeKey: ${JSON.stringify(KEY)},
    cdnSettings: {
      integrations: { 'Segment.io': { apiKey: ${JSON.stringify(KEY)}, apiHost: ${JSON.stringify(host)}, protocol: 'http' } },
      metrics: { sampleRate: 1, flushTimer: 500 },
    },
  },
  { integrations: { 'Segment.io': { apiHost: ${JSON.stringify(host)}, protocol: 'http' } } },
)
  .then(([analytics]) => analytics.page())
  .then(() => { window.benchCalled = true; }, (e) => { window.benchCalled = 'error: ' + e; });
</script>`;
    },
  },
  rudderstack: {
    label: '(d) RudderStack',
    head: () => `<script src="/sdk/rudderstack/index.js"></script>
<script>
// The source configuration RudderStack would fetch from its control plane, inline as in page.html.
const analytics = new rudderanalytics.RudderAnalytics();
analytics.load(${JSON.stringify(KEY)}, ${JSON.stringify(collectorUrl)}, {
  getSourceConfig: () => ({
    source: { id: 'bench', name: 'bench', workspaceId: 'w', enabled: true, config: {}, destinations: [] },
  }),
  logLevel: 'WARN',
});
analytics.ready(() => { analytics.page(); window.benchCalled = true; });
</script>`,
  },
};

const pageHtml = (name) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Home</title>
${variants[name].head()}
</head>
<body>
<h1>Trail running shoes</h1>
<p>£89.99. Order <code>ORD-1001</code>, coupon <code>WELCOME10</code>.</p>
</body></html>`;

const site = createServer((request, response) => {
  const path = new URL(request.url, 'http://site').pathname;
  if (path === '/favicon.ico') {
    response.writeHead(204);
    return response.end();
  }
  const page = /^\/(\w+)\.html$/.exec(path);
  if (page && variants[page[1]]) {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    return response.end(pageHtml(page[1]));
  }
  const sdk = /^\/sdk\/(segment|rudderstack)\/(.+)$/.exec(path);
  const file = sdk && normalize(join(sdkRoots[sdk[1]], sdk[2]));
  if (file && file.startsWith(sdkRoots[sdk[1]]) && existsSync(file)) {
    fetched[sdk[1]].add(file.slice(sdkRoots[sdk[1]].length));
    response.writeHead(200, { 'content-type': extname(file) === '.js' ? 'text/javascript' : 'application/octet-stream' });
    return response.end(readFileSync(file));
  }
  response.writeHead(404);
  response.end();
});

const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)));
const siteUrl = await listen(site);
collectorUrl = await listen(collector);

// ---- Browser -------------------------------------------------------------------------------------------

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

const chromiumVersion = browser.version();
const odd = []; // anything worth a line under the table
const note = (text) => { if (!odd.includes(text)) odd.push(text); };
const isLocal = (url) => { try { return new URL(url).hostname === '127.0.0.1'; } catch { return true; } };

// One page load; returns {script, task, load} in ms. `check` loads untimed, refusing other hosts.
async function measure(name, check = false) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 600 } });
  try {
    if (check) {
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (isLocal(url)) return route.continue();
        note(`${name}: tried to reach ${url} (refused)`);
        return route.abort();
      });
    }
    const page = await context.newPage();
    page.on('pageerror', (error) => note(`${name}: page error: ${error}`));
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') note(`${name}: console ${message.type()}: ${message.text()}`);
    });
    if (check) page.on('requestfailed', (r) => note(`${name}: request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));

    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    eventsSeen = 0;
    const deadline = Date.now() + LOAD_TIMEOUT;
    await page.goto(`${siteUrl}/${name}.html`, { waitUntil: 'load', timeout: LOAD_TIMEOUT });
    const called = await (await page.waitForFunction(() => window.benchCalled, null, { timeout: LOAD_TIMEOUT })).jsonValue();
    if (called !== true) throw new Error(`${name}: ${called}`);
    while (name !== 'baseline' && eventsSeen === 0) {
      if (Date.now() > deadline) throw new Error(`${name}: no event reached the collector in ${LOAD_TIMEOUT} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const { metrics } = await cdp.send('Performance.getMetrics');
    const metric = (key) => (metrics.find((m) => m.name === key)?.value ?? NaN) * 1000;
    const load = await page.evaluate(() => performance.getEntriesByType('navigation')[0].loadEventEnd);
    return { script: metric('ScriptDuration'), task: metric('TaskDuration'), load };
  } finally {
    await context.close().catch(() => {});
  }
}

const names = Object.keys(variants);
const samples = Object.fromEntries(names.map((n) => [n, []]));
try {
  for (const name of names) await measure(name, true);
  for (const set of Object.values(fetched)) set.clear(); // counted again below, from the timed loads
  for (let run = 0; run < RUNS; run++) {
    for (const name of names) samples[name].push(await measure(name));
    process.stderr.write(`\rloads: ${(run + 1) * names.length}/${RUNS * names.length}`);
  }
  process.stderr.write('\n');
} finally {
  await browser.close().catch(() => {});
  site.close();
  collector.close();
}

// ---- Sizes ------------------------------------------------------------------------------------------------

const gz = (buffer) => gzipSync(buffer, { level: 9 }).length;
const sizeOf = (root, files) => files.reduce(
  (sum, f) => { const b = readFileSync(join(root, f)); return { raw: sum.raw + b.length, gzip: sum.gzip + gz(b) }; },
  { raw: 0, gzip: 0 },
);
const sorted = (set) => [...set].sort((a, b) => (a === 'index.js' ? -1 : b === 'index.js' ? 1 : a.localeCompare(b)));
const segmentFiles = sorted(fetched.segment);
const rudderFiles = sorted(fetched.rudderstack);
const sizes = {
  signal: { files: ['tag/signal.js'], raw: signalJs.length, gzip: gz(signalJs) },
  segment: { version: version('@segment/analytics-next'), files: segmentFiles, ...sizeOf(sdkRoots.segment, segmentFiles) },
  rudderstack: { version: version('@rudderstack/analytics-js'), files: rudderFiles, ...sizeOf(sdkRoots.rudderstack, rudderFiles) },
};

// ---- Times ------------------------------------------------------------------------------------------------

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const times = {};
for (const name of names) {
  const pick = (k) => median(samples[name].map((s) => s[k]));
  times[name] = { script_ms: pick('script'), task_ms: pick('task'), load_ms: pick('load') };
}
for (const name of names) {
  for (const k of ['script_ms', 'task_ms', 'load_ms']) times[name]['added_' + k] = times[name][k] - times.baseline[k];
}
const ratio = times.segment.added_script_ms / times.signal.added_script_ms;
const taskRatio = times.segment.added_task_ms / times.signal.added_task_ms;

// ---- Report -------------------------------------------------------------------------------------------------

const f1 = (x) => x.toFixed(1);
const signed = (x) => (x >= 0 ? '+' : '') + x.toFixed(1);
const kb = (bytes) => (bytes / 1024).toFixed(1);
const lines = [
  `Browser tags: size and page-load cost (${RUNS} loads per variant, medians; headless Chromium ${chromiumVersion})`,
  '',
  '| SDK | files | raw bytes | gzip -9 bytes | gzip KB |',
  '|---|---|---:|---:|---:|',
  `| signal.js | signal.js | ${sizes.signal.raw} | ${sizes.signal.gzip} | ${kb(sizes.signal.gzip)} |`,
  `| analytics.js ${sizes.segment.version} | ${segmentFiles.join(' + ')} | ${sizes.segment.raw} | ${sizes.segment.gzip} | ${kb(sizes.segment.gzip)} |`,
  `| RudderStack ${sizes.rudderstack.version} | ${rudderFiles.join(' + ')} | ${sizes.rudderstack.raw} | ${sizes.rudderstack.gzip} | ${kb(sizes.rudderstack.gzip)} |`,
  '',
  '| variant | ScriptDuration ms | added | TaskDuration ms | added | loadEventEnd ms | added |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...names.map((n) => {
    const t = times[n];
    const add = (k) => (n === 'baseline' ? '' : signed(t[k]));
    return `| ${variants[n].label} | ${f1(t.script_ms)} | ${add('added_script_ms')} | ${f1(t.task_ms)} | ${add('added_task_ms')} | ${f1(t.load_ms)} | ${add('added_load_ms')} |`;
  }),
  '',
  `Added script time (ScriptDuration), analytics.js ÷ signal.js: ${ratio.toFixed(1)}×; ` +
    `on added TaskDuration: ${taskRatio.toFixed(1)}× (ScriptDuration leaves out promise callbacks).`,
];
console.log(lines.join('\n'));
if (odd.length) console.log('\nNoticed:\n' + odd.map((o) => `- ${o}`).join('\n'));
console.log('\n' + JSON.stringify({
  bench: 'tag',
  runs: RUNS,
  chromium: chromiumVersion,
  sizes,
  times,
  ratio_added_script_segment_over_signal: ratio,
  ratio_added_task_segment_over_signal: taskRatio,
  collector_requests: Object.fromEntries(collectorCalls),
  noticed: odd,
}));
process.exit(0);
