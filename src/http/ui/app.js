// agentkv's status page. Polls GET /admin/status and acts through the admin
// API (POST/DELETE only); chart.js draws the chart. Every value from the
// server is written with textContent, never parsed as HTML. No framework,
// nothing fetched from elsewhere: the Content-Security-Policy allows
// agentkv's own files and agentkv only.
'use strict';

(() => {
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const RECENT = 30;
  const KEY_STORE = 'agentkv-admin-key';
  const PLACEMENTS = ['resident', 'restored', 'prefix', 'cold', 'stateless'];
  // What an agent id may hold as the admin API names it (id, or id@scope).
  const AGENT_ID = /^[A-Za-z0-9._-]{1,128}(@[0-9a-z]{1,16})?$/;

  const $ = (id) => document.getElementById(id);
  const needsKey = document.body.dataset.auth === 'key';
  const state = {
    key: needsKey ? (sessionStorage.getItem(KEY_STORE) || '') : '',
    offset: 0, filter: '', sort: 'last_used', paused: false, timer: 0, busy: false, pending: false,
    refreshes: 0,
  };

  // --- formatting -----------------------------------------------------------

  const nf = new Intl.NumberFormat('en-US');
  const num = (v) => (v === null || v === undefined ? '–' : nf.format(v));
  function bytes(v) {
    if (v === null || v === undefined) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    let x = v;
    while (x >= 1000 && i < units.length - 1) { x /= 1000; i += 1; }
    return (i === 0 ? String(x) : x.toFixed(x < 10 ? 1 : 0)) + ' ' + units[i];
  }
  function ago(ms) {
    if (ms === null || ms === undefined || ms < 0) return '–';
    const s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h';
    return Math.floor(s / 86400) + ' d';
  }
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  const percent = (r) => (r === null || r === undefined ? '–' : Math.round(r * 100) + '%');

  // --- DOM helpers (text only) ----------------------------------------------

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function setText(node, text) {
    const t = String(text);
    if (node.textContent !== t) node.textContent = t;
  }
  function cells(tr, n, numeric) {
    while (tr.cells.length < n) {
      const td = el('td');
      if (numeric.includes(tr.cells.length)) td.className = 'num';
      tr.appendChild(td);
    }
    return tr.cells;
  }
  // Keeps one row per key, in the order of `items`, updating rows in place so
  // that a button under the pointer survives a refresh.
  function syncRows(tbody, items, keyOf, update) {
    const old = new Map();
    for (const tr of Array.from(tbody.rows)) old.set(tr.dataset.key, tr);
    let before = tbody.firstChild;
    for (const item of items) {
      const key = keyOf(item);
      let tr = old.get(key);
      if (tr) old.delete(key); else { tr = el('tr'); tr.dataset.key = key; }
      update(tr, item);
      if (tr !== before) tbody.insertBefore(tr, before); else before = before.nextSibling;
    }
    for (const tr of old.values()) tr.remove();
  }

  // --- the admin API --------------------------------------------------------

  async function api(method, path) {
    const headers = {};
    if (state.key) headers.Authorization = 'Bearer ' + state.key;
    if (method === 'POST') headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit' });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const message = body && body.error && body.error.message ? body.error.message : 'HTTP ' + res.status;
      const err = new Error(message);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function statusPath() {
    let q = 'offset=' + state.offset + '&limit=' + PAGE_SIZE + '&sort=' + state.sort + '&recent=' + RECENT;
    if (state.filter) q += '&filter=' + state.filter;  // [A-Za-z0-9._@-] only, see the filter input
    return '/admin/status?' + q;
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.paused) state.timer = setTimeout(refresh, POLL_MS);
  }

  async function refresh() {
    if (state.busy) { state.pending = true; return; }  // again once this one is in
    if (needsKey && !state.key) { askForKey(''); return; }
    state.busy = true;
    let again = true;
    try {
      const s = await api('GET', statusPath());
      render(s);
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      $('banner').hidden = true;
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        again = false;
        askForKey(err.message);
      } else {
        showBanner('Cannot read the status: ' + err.message);
        setHealth('unreachable', 'bad');
      }
    } finally {
      state.busy = false;
      if (state.pending && again) {
        state.pending = false;
        refresh();
      } else if (again) {
        schedule();
      }
    }
  }

  async function act(action, id) {
    if (!AGENT_ID.test(id)) return;
    const base = '/admin/agents/' + id;
    const calls = {
      warm: ['POST', base + '/warm', 'warmed'],
      pin: ['POST', base + '/pin', 'pinned'],
      unpin: ['DELETE', base + '/pin', 'unpinned'],
      delete: ['DELETE', base, 'deleted'],
    };
    const call = calls[action];
    if (!call) return;
    if (action === 'delete' &&
        !window.confirm('Delete agent ' + id + '? Its slot is erased and its saved memory deleted.')) {
      return;
    }
    const status = $('action-status');
    status.className = 'muted';
    setText(status, action + ' ' + id + '…');
    try {
      await api(call[0], call[1]);
      setText(status, id + ' ' + call[2]);
    } catch (err) {
      status.className = 'error';
      setText(status, action + ' ' + id + ': ' + err.message);
    }
    refresh();
  }

  // --- key, banner, health --------------------------------------------------

  function askForKey(message) {
    clearTimeout(state.timer);
    $('key-panel').hidden = false;
    $('main').hidden = true;
    setText($('key-error'), message || '');
    setHealth('admin key needed', '');
    $('key').focus();
  }
  function useKey() {
    const key = $('key').value.trim();
    if (!key) return;
    state.key = key;
    sessionStorage.setItem(KEY_STORE, key);
    $('key').value = '';
    $('key-panel').hidden = true;
    $('forget-key').hidden = false;
    refresh();
  }
  function forgetKey() {
    state.key = '';
    sessionStorage.removeItem(KEY_STORE);
    $('forget-key').hidden = true;
    askForKey('');
  }
  function showBanner(text) {
    setText($('banner'), text);
    $('banner').hidden = false;
  }
  function setHealth(text, cls) {
    const pill = $('health');
    setText(pill, text);
    pill.className = 'pill' + (cls ? ' ' + cls : '');
  }

  // --- rendering ------------------------------------------------------------

  function render(s) {
    $('main').hidden = false;
    $('key-panel').hidden = true;
    $('forget-key').hidden = !needsKey;
    setHealth(s.upstream_up ? 'llama-server up' : 'llama-server down', s.upstream_up ? 'ok' : 'bad');
    setText($('version'), s.version || '');
    setText($('updated'), 'updated ' + clock(s.now) + (s.persistence ? '' : ' · memory off (stateless)'));
    renderTotals(s.totals);
    renderSlots(s.slots);
    renderAgents(s.agents, s.now);
    renderRecent(s.recent);
    window.agentkvChart.draw($('chart'), $('legend'), s.ttft, s.now);
  }

  function renderTotals(t) {
    const budget = t.disk_budget_bytes > 0 ? t.disk_budget_bytes : 0;
    const seen = t.tokens_reused + t.tokens_prefilled;
    const tiles = [
      ['slots', t.resident + ' / ' + t.slots, 'in use · ' + num(t.waiting) + ' waiting'],
      ['agents', num(t.agents), num(t.resident) + ' resident · ' + num(t.agents_on_disk) + ' on disk'],
      ['disk', bytes(t.bytes_on_disk), budget ? 'of ' + bytes(budget) + ' budget' : 'no budget',
        budget ? t.bytes_on_disk / budget : null],
      ['restores', num(t.restores), num(t.evictions) + ' evictions'],
      ['saves', num(t.saves), num(t.save_failures) + ' failed', null, t.save_failures > 0],
      ['fallbacks', num(t.fallbacks), 'restores not done or not trusted', null, t.fallbacks > 0],
      ['quarantined', num(t.quarantined), num(t.quarantine_files) + ' files · ' + bytes(t.quarantine_bytes),
        null, t.quarantined > 0],
      ['upstream restarts', num(t.upstream_restarts), num(t.resets) + ' slot resets', null,
        t.upstream_restarts > 0],
      ['reuse', seen > 0 ? percent(t.tokens_reused / seen) : '–',
        num(t.tokens_reused) + ' reused · ' + num(t.tokens_prefilled) + ' prefilled'],
    ];
    const box = $('totals');
    while (box.children.length < tiles.length) {
      const tile = el('div', null, 'tile');
      tile.append(el('div', null, 'label'), el('div', null, 'value'), el('div', null, 'detail'));
      box.appendChild(tile);
    }
    tiles.forEach(([label, value, detail, fill, warn], i) => {
      const tile = box.children[i];
      tile.className = 'tile' + (warn ? ' warn' : '');
      setText(tile.children[0], label);
      setText(tile.children[1], value);
      setText(tile.children[2], detail);
      let bar = tile.querySelector('.bar');
      if (fill === null || fill === undefined) { if (bar) bar.remove(); return; }
      if (!bar) { bar = el('div', null, 'bar'); bar.appendChild(el('div')); tile.appendChild(bar); }
      bar.firstChild.style.width = Math.min(100, Math.round(fill * 100)) + '%';
    });
  }

  function renderSlots(slots) {
    syncRows($('slots').tBodies[0], slots, (s) => String(s.slot), (tr, s) => {
      const c = cells(tr, 5, [3]);
      setText(c[0], s.slot);
      setText(c[1], s.state + (s.dirty ? ' · unsaved' : ''));
      c[1].className = 'state-' + s.state;
      setText(c[2], s.agent === null ? '–' : s.agent);
      c[2].className = 'id';
      setText(c[3], num(s.tokens));
      setText(c[4], ago(s.for_ms));
      c[4].title = clock(s.since);
    });
  }

  function placementsText(p) {
    const parts = PLACEMENTS.filter((k) => p[k]).map((k) => p[k] + ' ' + k);
    return parts.length ? parts.join(' · ') : '–';
  }

  // How the agent's last turn ended, and what its client said of the next.
  function lastTurnText(g) {
    if (!g.last_finish) return '–';
    return g.last_finish.replace('_', ' ') + (g.next ? ' · next: ' + g.next : '');
  }

  function renderAgents(a, now) {
    if (a.items.length === 0 && a.offset > 0) {  // past the end (agents went): back a page
      state.offset = Math.max(0, Math.min(a.offset - PAGE_SIZE, a.total - 1));
      state.offset -= state.offset % PAGE_SIZE;
      state.pending = true;
    }
    const first = a.total === 0 ? 0 : a.offset + 1;
    setText($('agent-count'), num(a.total) + (a.filter ? ' matching' : ''));
    setText($('page'), num(first) + '–' + num(a.offset + a.items.length) + ' of ' + num(a.total));
    $('prev').disabled = a.offset === 0;
    $('next').disabled = a.offset + a.items.length >= a.total;
    syncRows($('agents').tBodies[0], a.items, (g) => g.id, (tr, g) => {
      const c = cells(tr, 10, [2, 3, 5, 7]);
      c[0].className = 'id';
      setText(c[0], g.id);
      c[0].title = g.id;
      setText(c[1], (g.resident ? 'slot ' + g.slot + (g.dirty ? ' · unsaved' : '') : 'disk') +
        (g.pinned ? ' · pinned' : ''));
      setText(c[2], num(g.tokens));
      setText(c[3], bytes(g.saved_bytes));
      setText(c[4], g.last_used === null ? '–' : ago(now - g.last_used) + ' ago');
      setText(c[5], num(g.requests));
      setText(c[6], placementsText(g.placements));
      setText(c[7], percent(g.reuse));
      setText(c[8], lastTurnText(g));
      actionButtons(c[9], g);
    });
  }

  function actionButtons(td, g) {
    td.className = 'actions';
    if (!td.firstChild) {
      for (const [action, label] of [['warm', 'warm'], ['pin', 'pin'], ['delete', 'delete']]) {
        const b = el('button', label);
        b.type = 'button';
        b.dataset.action = action;
        if (action === 'delete') b.className = 'danger';
        td.appendChild(b);
      }
    }
    const [warm, pin] = td.children;
    warm.disabled = g.resident || g.saved_bytes === null;
    warm.title = g.resident ? 'already in a slot' : 'restore it into a slot now';
    pin.dataset.action = g.pinned ? 'unpin' : 'pin';
    setText(pin, g.pinned ? 'unpin' : 'pin');
  }

  function renderRecent(recent) {
    const rows = recent.map((r) => {
      const tr = el('tr');
      const values = [clock(r.at), r.agent === null ? '(stateless)' : r.agent, r.slot, r.placement,
        r.status, num(r.cache_n), num(r.prompt_n), num(r.ttft_ms), num(r.ms)];
      values.forEach((v, i) => {
        const td = el('td', v, [2, 4, 5, 6, 7, 8].includes(i) ? 'num' : (i === 1 ? 'id' : ''));
        tr.appendChild(td);
      });
      return tr;
    });
    $('recent').tBodies[0].replaceChildren(...rows);
  }

  // --- wiring ---------------------------------------------------------------

  function init() {
    $('key-submit').addEventListener('click', useKey);
    $('key').addEventListener('keydown', (e) => { if (e.key === 'Enter') useKey(); });
    $('forget-key').addEventListener('click', forgetKey);
    $('pause').addEventListener('click', () => {
      state.paused = !state.paused;
      setText($('pause'), state.paused ? 'Resume' : 'Pause');
      if (state.paused) clearTimeout(state.timer); else refresh();
    });
    let debounce = 0;
    $('filter').addEventListener('input', () => {
      const cleaned = $('filter').value.replace(/[^A-Za-z0-9._@-]/g, '');
      if (cleaned !== $('filter').value) $('filter').value = cleaned;
      clearTimeout(debounce);
      debounce = setTimeout(() => { state.filter = cleaned; state.offset = 0; refresh(); }, 250);
    });
    $('sort').addEventListener('change', () => { state.sort = $('sort').value; state.offset = 0; refresh(); });
    $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); refresh(); });
    $('next').addEventListener('click', () => { state.offset += PAGE_SIZE; refresh(); });
    $('agents').tBodies[0].addEventListener('click', (e) => {
      const button = e.target.closest('button[data-action]');
      if (!button || button.disabled) return;
      act(button.dataset.action, button.closest('tr').dataset.key);
    });
    refresh();
  }

  init();
})();
