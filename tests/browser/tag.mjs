// Drives headless Chromium for the tests of Signal's own tag (tests/tag.rs): a small shop site on one
// loopback origin loads /signal.js from the collector on another, and the test sends commands, one
// JSON line each on standard input; this script answers each with a `done` line and reports every
// request to the collector (with its body), its answer, failures and the pages' console.
//
//   node tag.mjs '{"key":"K"}'          (it prints {"kind":"ready","origin":"http://127.0.0.1:PORT"}, the site's origin)
//   {"id":0,"do":"collector","url":"http://127.0.0.1:8080"}
//   {"id":1,"do":"open","tab":0,"path":"/shop.html?global=datafly"}
//   {"id":2,"do":"eval","tab":0,"js":"datafly.track('A')"}
//   {"id":3,"do":"click","tab":0,"selector":"#order"}  {"do":"offline","value":true}  {"do":"screenshot","tab":0,"file":"x.png"}
//   {"do":"delay_tag","ms":1500}  {"do":"wait_navigation","tab":0,"path":"/thanks.html"}  {"do":"close"}

import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const settings = JSON.parse(process.argv[2]);
const emit = (record) => process.stdout.write(JSON.stringify(record) + '\n');
// Known once the test has started `signal serve`, which needs the site's origin first.
let collector = 'http://collector.invalid';

const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

// The async snippet, as docs/guides/sites-and-apps.md gives it.
const snippet = (global) =>
  `!function(w,g){var s=w[g]=w[g]||{};if(s.q)return;s.q=[];["track","page","identify","alias","reset","consent","flush"].forEach(function(m){s[m]=function(){var a=[].slice.call(arguments);return new Promise(function(r){s.q.push([m,a,r])})}})}(window,${JSON.stringify(global)});`;

function shop(query) {
  const global = query.get('global') || '';
  const tagAttributes = `src="${escape(collector)}/signal.js" data-write-key="${escape(settings.key)}"${global ? ` data-global="${escape(global)}"` : ''}`;
  const tag = query.get('async') === '1'
    ? `<script>${snippet(global || 'signal')}</script>\n<script async ${tagAttributes}></script>`
    : `<script ${tagAttributes}></script>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signal demo shop</title>
<link rel="stylesheet" href="/shop.css">
${tag}
<script src="/shop.js" defer></script>
</head>
<body data-global="${escape(global || 'signal')}">
<header><strong>Demo shop</strong> · events by Signal's tag</header>
<main>
<h1>Trail running shoes</h1>
<p class="price">£89.99</p>
<p>Order <code>ORD-1001</code>, coupon <code>WELCOME10</code>.</p>
<button id="order">Complete order</button>
<p id="status">Loaded.</p>
</main>
</body></html>`;
}

const css = `body{font-family:sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px}
main{max-width:560px;margin:32px auto;background:#fff;padding:24px 32px;border-radius:8px;box-shadow:0 1px 4px #0002}
.price{font-size:28px;color:#0a7d38;margin:0 0 12px}
button{font-size:18px;padding:10px 20px;background:#0a7d38;color:#fff;border:0;border-radius:6px}`;

// The shop's own script: the document's example, then the page navigates away at once.
const shopScript = `document.getElementById('order').addEventListener('click', function () {
  var tag = window[document.body.dataset.global];
  tag.identify('u_8842', { email: 'jane@example.com', phone: '+447700900123' });
  tag.track('Order Completed', { order_id: 'ORD-1001', revenue: 89.99, currency: 'GBP', coupon: 'WELCOME10' });
  location.href = '/thanks.html';
});
document.getElementById('status').textContent = 'Ready: ' + (typeof window[document.body.dataset.global].track);`;

const site = createServer((request, response) => {
  const url = new URL(request.url, 'http://site');
  const headers = { 'cache-control': 'no-store' };
  if (url.searchParams.get('csp') === '1') {
    headers['content-security-policy'] =
      `default-src 'none'; script-src 'self' ${collector}; connect-src ${collector}; style-src 'self'; img-src 'self'`;
  }
  const pages = {
    '/shop.html': ['text/html', () => shop(url.searchParams)],
    '/thanks.html': ['text/html', () => '<!doctype html><title>Thanks</title><p>Thank you for your order.</p>'],
    '/shop.js': ['text/javascript', () => shopScript],
    '/shop.css': ['text/css', () => css],
  };
  const found = pages[url.pathname];
  if (!found) {
    response.writeHead(404);
    response.end();
    return;
  }
  response.writeHead(200, { 'content-type': found[0], ...headers });
  response.end(found[1]());
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${site.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.SIGNAL_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 900, height: 520 }, timezoneId: 'Europe/London', locale: 'en-GB' });
let tagDelay = 0;
await context.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (event) => {
    console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
  });
});

const tabs = [];
async function tab(index) {
  while (tabs.length <= index) {
    const page = await context.newPage();
    const number = tabs.length;
    const tag = { tab: number };
    page.on('console', (message) => emit({ kind: 'console', ...tag, type: message.type(), text: message.text() }));
    page.on('pageerror', (error) => emit({ kind: 'pageerror', ...tag, text: String(error) }));
    page.on('request', (request) => {
      if (new URL(request.url()).origin !== collector) return;
      emit({ kind: 'request', ...tag, method: request.method(), url: request.url(), resource: request.resourceType(), body: request.postData() });
    });
    page.on('response', (response) => {
      if (new URL(response.url()).origin !== collector) return;
      emit({ kind: 'response', ...tag, method: response.request().method(), url: response.url(), status: response.status() });
    });
    page.on('requestfailed', (request) => {
      if (new URL(request.url()).origin !== collector) return;
      emit({ kind: 'failed', ...tag, method: request.method(), url: request.url(), error: request.failure()?.errorText });
    });
    tabs.push(page);
  }
  return tabs[index];
}

async function run(command) {
  switch (command.do) {
    case 'collector':
      collector = new URL(command.url).origin;
      await context.route(`${collector}/signal.js`, async (route) => {
        if (tagDelay > 0) await new Promise((resolve) => setTimeout(resolve, tagDelay));
        await route.continue();
      });
      return collector;
    case 'open': {
      const page = await tab(command.tab ?? 0);
      // `domcontentloaded` does not wait for async scripts, as `load` does.
      await page.goto(origin + command.path, { waitUntil: command.wait || 'load' });
      return page.url();
    }
    case 'eval':
      return (await tab(command.tab ?? 0)).evaluate(command.js);
    case 'click':
      await (await tab(command.tab ?? 0)).click(command.selector, { noWaitAfter: true });
      return true;
    case 'wait_navigation': {
      const page = await tab(command.tab ?? 0);
      await page.waitForURL((url) => url.pathname === command.path, { timeout: 20000 });
      return page.url();
    }
    case 'offline':
      await context.setOffline(Boolean(command.value));
      return command.value;
    case 'delay_tag':
      tagDelay = command.ms;
      return tagDelay;
    case 'screenshot':
      await (await tab(command.tab ?? 0)).screenshot({ path: command.file, fullPage: true });
      return command.file;
    case 'close':
      return finish();
    default:
      throw new Error(`unknown command ${command.do}`);
  }
}

let finished = false;
async function finish() {
  if (finished) return;
  finished = true;
  for (const page of tabs) await page.close({ runBeforeUnload: true }).catch(() => {});
  await browser.close().catch(() => {});
  site.close();
  emit({ kind: 'closed' });
  process.exit(0);
}

// Commands run one at a time, in order.
let chain = Promise.resolve();
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  chain = chain.then(async () => {
    try {
      emit({ kind: 'done', id: command.id, result: (await run(command)) ?? null });
    } catch (error) {
      emit({ kind: 'done', id: command.id, error: String(error) });
    }
  });
});
input.on('close', () => chain.then(finish));
// A test never needs more than four minutes of a browser.
setTimeout(finish, 240000).unref();
emit({ kind: 'ready', origin });
