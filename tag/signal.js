/*! Signal tag. Async snippet, to queue calls made before the tag loads (name = data-global):
 * !function(w,g){var s=w[g]=w[g]||{};if(s.q)return;s.q=[];["track","page","identify","alias","reset","consent","flush"].forEach(function(m){s[m]=function(){var a=[].slice.call(arguments);return new Promise(function(r){s.q.push([m,a,r])})}})}(window,"signal");
 */
(function (w, d) {
  'use strict';
  const VERSION = '1.0.0';
  const N = w.navigator;
  const C = w.console;
  const MAX = 1000;
  const BATCH = 20;
  const LIMIT = 60000;
  const CAP = 60000;
  const METHODS = ['track', 'page', 'identify', 'alias', 'reset', 'consent', 'flush'];

  const me = d.currentScript || [].filter.call(d.querySelectorAll('script[src]'), (s) => {
    try { return /\/signal(-[0-9a-f]+)?\.js$/.test(new URL(s.src).pathname); } catch (e) { return false; }
  }).pop();
  const attr = (name) => me && me.getAttribute('data-' + name);
  const global = attr('global') || 'signal';
  const key = attr('write-key');
  const stub = w[global];
  // Loaded twice: one copy is enough.
  if (stub && stub.VERSION) return;

  const install = (api) => {
    api.VERSION = VERSION;
    // A snippet run later sees `q` and leaves the real API alone.
    api.q = [];
    w[global] = api;
    ((stub && stub.q) || []).forEach((call) => {
      const method = api[call[0]];
      call[2](method ? method.apply(api, call[1]) : undefined);
    });
  };

  if (!key) {
    C.error('signal.js: no data-write-key on the <script> tag; nothing will be sent');
    const api = {};
    METHODS.forEach((m) => { api[m] = () => Promise.resolve(); });
    install(api);
    return;
  }

  const base = new URL(me.src).origin;
  const url = base + '/v1/batch?writeKey=' + encodeURIComponent(key);
  const P = 'signal:' + key + ':';

  // Memory stands in where localStorage is missing or throws (private mode, quota).
  let ls = null;
  try {
    ls = w.localStorage;
    ls.setItem(P + 't', '1');
    ls.removeItem(P + 't');
  } catch (e) {
    ls = null;
  }
  const mem = new Map();
  const get = (k) => {
    k = P + k;
    if (mem.has(k)) return mem.get(k);
    try { return ls ? ls.getItem(k) : null; } catch (e) { return null; }
  };
  const set = (k, v) => {
    k = P + k;
    try { ls.setItem(k, v); mem.delete(k); } catch (e) { mem.set(k, v); }
  };
  const del = (k) => {
    k = P + k;
    mem.delete(k);
    try { if (ls) ls.removeItem(k); } catch (e) { }
  };
  const keys = (prefix) => {
    const all = new Set(mem.keys());
    try { for (let i = 0; ls && i < ls.length; i++) all.add(ls.key(i)); } catch (e) { }
    prefix = P + prefix;
    return [...all].filter((k) => k && k.startsWith(prefix)).map((k) => k.slice(P.length)).sort();
  };
  const parse = (s) => { try { return JSON.parse(s); } catch (e) { return null; } };
  const str = JSON.stringify;
  const now = Date.now;
  const iso = () => new Date().toISOString();
  const size = (s) => new Blob([s]).size;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const uuid = () => {
    const c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = [...b].map((x) => (x + 256).toString(16).slice(1)).join('');
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  };

  // Read at each call, so that every tab follows the latest.
  const off = () => get('consent') === 'denied';
  const mint = () => { const id = uuid(); set('aid', id); return id; };
  const anon = () => get('aid') || mint();
  const user = () => parse(get('uid'));
  const remember = (id) => set('uid', str(id));

  const pageInfo = () => {
    const l = w.location;
    return { path: l.pathname, url: l.href, title: d.title, referrer: d.referrer, search: l.search };
  };
  const context = () => {
    const q = new URLSearchParams(w.location.search);
    const campaign = {};
    ['source', 'medium', 'campaign', 'term', 'content'].forEach((k) => {
      const v = q.get('utm_' + k);
      if (v != null) campaign[k === 'campaign' ? 'name' : k] = v;
    });
    let timezone;
    try { timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { }
    const c = {
      page: pageInfo(), locale: N.language, timezone, user_agent: N.userAgent,
      library: { name: 'signal.js', version: VERSION },
    };
    if (Object.keys(campaign).length) c.campaign = campaign;
    return c;
  };

  const trim = () => {
    const ks = keys('q:');
    const over = ks.length - MAX;
    if (over <= 0) return ks.length;
    ks.slice(0, over).forEach(del);
    C.warn('signal.js: queue full; dropped the ' + over + ' oldest events');
    return MAX;
  };

  // Keys keep call order even for two calls in one millisecond.
  let last = 0;
  const enqueue = (body) => {
    if (off()) return undefined;
    const uid = user();
    const event = Object.assign(
      { message_id: uuid(), anonymous_id: anon() },
      uid != null ? { user_id: uid } : {},
      { timestamp: iso(), context: context() },
      body
    );
    last = Math.max(now(), last + 1);
    // Stored before returning: a navigation right after cannot lose it.
    set('q:' + String(last).padStart(13, '0') + ':' + event.message_id, str(event));
    // The probe starts with the first event, so that a page left at once has its answer.
    ready();
    schedule(trim() >= BATCH ? 0 : 1000);
    return { message_id: event.message_id };
  };

  // The collector may keep the id in an HttpOnly cookie, which the tag cannot read.
  let cookie = false;
  let probing = null;
  let minted = null;
  // Until the probe has answered, a freshly minted id is not sent with credentials: the cookie
  // may hold the visitor's real id, which it would overwrite.
  let probed = false;
  const ready = () => probing || (probing = (async () => {
    const mode = parse(get('mode'));
    if (mode && now() - mode.at < 864e5) {
      cookie = mode.cookie === true;
      probed = true;
      return;
    }
    let t;
    try {
      const ac = new AbortController();
      t = setTimeout(() => ac.abort(), 3000);
      const r = await fetch(base + '/signal/id?writeKey=' + encodeURIComponent(key), { credentials: 'include', signal: ac.signal });
      // A 5xx says nothing: ask again next page.
      if (r.status >= 500) return;
      const answer = r.ok ? await r.json() : {};
      if (off()) return;
      cookie = answer.cookie === true;
      set('mode', str({ cookie, at: now() }));
      del('fresh');
      const id = answer.anonymous_id;
      // A stored id is kept: the cookie follows the events.
      if (cookie && id && typeof id === 'string' && minted && id !== minted && get('aid') === minted) {
        set('aid', id);
        keys('q:').forEach((k) => {
          const e = parse(get(k));
          if (e && e.anonymous_id === minted) {
            e.anonymous_id = id;
            set(k, str(e));
          }
        });
      }
    } catch (e) {
      // No cookie mode on this page.
    } finally {
      clearTimeout(t);
      probed = true;
    }
  })());

  // The lease tells a leaving page (which cannot await a Web Lock), and browsers without
  // Web Locks, that another tab is sending.
  const TAB = uuid();
  const lease = () => {
    const l = parse(get('lock'));
    if (l && l.tab !== TAB && l.until > now()) return false;
    set('lock', str({ tab: TAB, until: now() + 5000 }));
    return true;
  };
  const unlease = () => {
    const l = parse(get('lock'));
    if (l && l.tab === TAB) del('lock');
  };

  const body = (items) => {
    const sentAt = iso();
    return str({ batch: items.map((i) => { i.e.sent_at = sentAt; return i.e; }), sentAt });
  };
  const take = (ks) => {
    const items = [];
    while (ks.length && items.length < BATCH) {
      const k = ks.shift();
      const e = parse(get(k));
      if (e) items.push({ k, e }); else del(k);
    }
    let n = items.length;
    while (n > 1 && size(body(items.slice(0, n))) >= LIMIT) n >>= 1;
    ks.unshift(...items.slice(n).map((i) => i.k));
    return items.slice(0, n);
  };
  const post = (b, keepalive) => fetch(url, {
    method: 'POST',
    // text/plain keeps the request "simple": no CORS preflight.
    headers: { 'Content-Type': 'text/plain' },
    body: b,
    keepalive,
    credentials: cookie ? 'include' : 'omit',
  });

  let timer = 0;
  let timerAt = 0;
  let notBefore = 0;
  let attempt = 0;
  let refused = false;
  let busy = false;
  const inflight = new Set();

  const schedule = (ms) => {
    const at = Math.max(now() + ms, notBefore);
    if (timer && timerAt <= at) return;
    clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = 0;
      if (now() < notBefore) schedule(0); else flush();
    }, at - now());
  };

  const backoff = (r, max) => {
    const ra = r && r.headers.get('Retry-After');
    const floor = ra ? (isNaN(ra) ? Date.parse(ra) - now() : ra * 1000) : 0;
    const wait = max ? CAP : Math.random() * Math.min(CAP, 1000 * Math.pow(2, attempt++));
    notBefore = now() + Math.max(wait, floor > 0 ? floor : 0);
    schedule(0);
  };

  // Sends one batch; true when the cycle may go on.
  const send = async (items, done) => {
    const b = body(items);
    let r = null;
    items.forEach((i) => inflight.add(i.k));
    try {
      r = await post(b, size(b) < LIMIT);
    } catch (e) {
      // A network error: retried like a 5xx.
    } finally {
      items.forEach((i) => inflight.delete(i.k));
    }
    const status = r ? r.status : 0;
    const answer = r ? await r.json().catch(() => ({})) : {};
    if (status >= 200 && status < 300) {
      items.forEach((i) => del(i.k));
      attempt = 0;
      notBefore = 0;
      done.sent += items.length;
      (answer.rejected || []).forEach((x) => {
        const item = items[x.event_index];
        C.warn('signal.js: event rejected (' + x.field + '): ' + x.message, item && item.e);
      });
      return true;
    }
    if (status === 400 || status === 413) {
      if (items.length > 1) {
        const half = items.length >> 1;
        return (await send(items.slice(0, half), done)) && send(items.slice(half), done);
      }
      // One event refused on its own: resending it cannot help.
      del(items[0].k);
      C.error('signal.js: event refused and dropped: ' + ((answer.error || {}).message || status), items[0].e);
      return true;
    }
    if (status === 401 || status === 403) {
      if (!refused) C.error('signal.js: write key refused (' + status + '); events kept');
      refused = true;
      backoff(r, true);
      return false;
    }
    backoff(r, false);
    return false;
  };

  const cycle = async () => {
    const done = { sent: 0 };
    let mine = lease();
    // Without Web Locks both tabs may write the lease: whoever reads it back wins.
    if (mine && !N.locks) mine = await sleep(50).then(lease);
    if (!mine) {
      schedule(1000);
      return done;
    }
    busy = true;
    const renew = setInterval(lease, 2000);
    try {
      // Relisted until empty: other tabs' new events go too.
      while (!off() && N.onLine !== false) {
        if (!lease()) {
          schedule(1000);
          break;
        }
        const items = take(keys('q:'));
        if (!items.length || !(await send(items, done))) break;
      }
    } finally {
      clearInterval(renew);
      busy = false;
      unlease();
    }
    return done;
  };

  let chain = Promise.resolve();
  let next = null;
  const flush = () => next || (next = chain = chain.then(async () => {
    next = null;
    if (off() || N.onLine === false) return { sent: 0 };
    await ready();
    const L = N.locks;
    // Web Locks throw in opaque origins (sandboxed frames).
    return L ? L.request('signal:' + key + ':send', cycle).catch(cycle) : cycle();
  }).catch((e) => {
    C.error('signal.js:', e);
    return { sent: 0 };
  }));

  // Leaving: only synchronous work is sure to run.
  // The events stay queued: nobody learns whether a beacon arrived (a 503, a collector
  // restarting), so the next page sends them again and the collector drops what it already has.
  const leave = () => {
    if (off() || !lease()) return;
    const ks = keys('q:').filter((k) => !inflight.has(k));
    for (let items = take(ks); items.length; items = take(ks)) {
      const b = body(items);
      let ok = false;
      // A beacon always carries cookies: not before the probe has confirmed a minted id.
      if (!minted || probed) {
        try { ok = N.sendBeacon(url, new Blob([b], { type: 'text/plain' })); } catch (e) { }
      }
      if (!ok) post(b, true).catch(() => {});
    }
    if (!busy) unlease();
  };

  const isObject = (v) => v !== null && typeof v === 'object';
  const method = (f) => (...a) => {
    try { return Promise.resolve(f(...a)); } catch (e) { return Promise.reject(e); }
  };

  const api = {
    track: method((event, properties) => {
      if (typeof event !== 'string' || !event) throw new TypeError('signal.js: track() needs an event name');
      return enqueue({ type: 'track', event, properties: properties || {} });
    }),
    page: method((name, properties) => {
      if (isObject(name)) {
        properties = name;
        name = null;
      }
      const e = { type: 'page', properties: Object.assign(pageInfo(), properties) };
      if (name) e.name = name;
      return enqueue(e);
    }),
    identify: method((userId, traits) => {
      if (isObject(userId)) {
        traits = userId;
        userId = null;
      }
      if (off()) return undefined;
      if (userId != null) remember(userId);
      return enqueue({ type: 'identify', traits: traits || {} });
    }),
    alias: method((userId, previousId) => {
      if (userId == null) throw new TypeError('signal.js: alias() needs a user id');
      if (off()) return undefined;
      const uid = user();
      const queued = enqueue({
        type: 'alias',
        user_id: userId,
        previous_id: previousId != null ? previousId : uid != null ? uid : anon(),
      });
      remember(userId);
      return queued;
    }),
    reset: method(() => {
      del('uid');
      if (!off()) mint();
    }),
    consent: method((granted) => {
      if (granted) {
        set('consent', 'granted');
        anon();
        return;
      }
      set('consent', 'denied');
      keys('q:').forEach(del);
      ['aid', 'uid', 'mode', 'fresh'].forEach((k) => del(k));
      clearTimeout(timer);
      timer = 0;
      probing = null;
      cookie = false;
    }),
    flush: method(flush),
  };

  // The probe waits for the first event: a page that withholds consent makes no request at all.
  // A minted id stays unconfirmed, across pages, until the probe has answered.
  if (!off() && !get('aid')) {
    minted = mint();
    set('fresh', '1');
  } else if (get('fresh')) {
    minted = get('aid');
  }
  install(api);
  // Left by an earlier page, a crash or time offline.
  if (keys('q:').length) schedule(0);

  w.addEventListener('online', () => flush());
  w.addEventListener('pagehide', leave);
  // A hidden tab may be closed without a pagehide (mobile browsers): send now, the usual way,
  // so that answers are still read while the page lives.
  d.addEventListener('visibilitychange', () => {
    if (d.visibilityState === 'hidden') flush();
  });
})(window, document);
