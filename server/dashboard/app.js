// Vigil dashboard: plain JavaScript over the HTTPS API (docs/api.md). The token is kept in
// sessionStorage (this tab only) and sent as "Authorization: Bearer ..." on every call. Every
// piece of data reaches the page through textContent or attributes set one by one, never as
// HTML. Routes: #/ (fleet) and #/device/ID.
'use strict';

(() => {
  const TOKEN_KEY = 'vigil.token';
  const PAGE = 500;
  const STATUSES = ['COMPLIANT', 'NON_COMPLIANT', 'STALE', 'TAMPERED', 'EXCEPTED', 'UNKNOWN',
                    'PENDING', 'REVOKED'];
  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers ---------------------------------------------------------------------------

  // el('td', {class: 'x', 'data-check': id}, 'text', childNode, ...): text is always textContent.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v; else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function show(node, on) { node.classList.toggle('hidden', !on); }

  function when(ts) {
    if (!ts) return 'never';
    const d = new Date(ts);
    if (isNaN(d.getTime())) return String(ts);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function ago(ts) {
    if (!ts) return 'never';
    const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
    if (!isFinite(s)) return String(ts);
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }
  function statusBadge(status) {
    const s = status || 'UNKNOWN';
    return el('span', {class: 'status status-' + s.toLowerCase(), 'data-status': s}, s);
  }
  // "idleSeconds" -> "idle seconds"
  function words(key) {
    return key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase();
  }

  // ---- API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(path, options) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = {'Accept': 'application/json'};
    if (token) headers['Authorization'] = 'Bearer ' + token;
    const resp = await fetch(path, Object.assign({headers, cache: 'no-store'}, options || {}));
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(resp.status, err.code || String(resp.status),
                         err.message || resp.statusText);
    }
    return body;
  }

  function showError(err) {
    if (err instanceof ApiError && err.status === 401) {
      logout('Your token was refused: ' + err.message);
      return;
    }
    const banner = $('error');
    banner.textContent = err instanceof ApiError ? err.code + ': ' + err.message : String(err);
    show(banner, true);
  }
  function clearError() { show($('error'), false); }

  // ---- login ---------------------------------------------------------------------------------

  function setState(state) {
    document.body.dataset.state = state;
    show($('login-view'), state === 'login');
    show($('fleet-view'), state === 'fleet');
    show($('device-view'), state === 'device');
    show($('logout'), state !== 'login');
    show($('refresh'), state !== 'login');
  }

  async function login(event) {
    event.preventDefault();
    const token = $('token').value.trim();
    const msg = $('login-error');
    show(msg, false);
    if (!/^vgt_[0-9a-f]{12}_[A-Za-z0-9_-]+$/.test(token)) {
      msg.textContent = 'That does not look like a Vigil token (vgt_…).';
      show(msg, true);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await api('/api/v1/summary');
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      msg.textContent = err instanceof ApiError ? err.message : String(err);
      show(msg, true);
      return;
    }
    $('token').value = '';
    route();
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearError();
    setState('login');
    const msg = $('login-error');
    msg.textContent = message || '';
    show(msg, !!message);
  }

  // ---- fleet view ----------------------------------------------------------------------------

  const fleet = {devices: [], nextPageToken: '', status: null};

  function renderSummary(summary) {
    const box = $('summary');
    clear(box);
    const counts = {};
    for (const c of summary.byStatus || []) counts[c.status] = Number(c.count);
    box.append(el('div', {class: 'count total', 'data-status-count': 'TOTAL'},
                  el('span', {class: 'n'}, Number(summary.total || 0)), el('span', {}, 'devices')));
    for (const s of STATUSES) {
      const n = counts[s] || 0;
      if (!n && !['COMPLIANT', 'NON_COMPLIANT', 'STALE', 'TAMPERED'].includes(s)) continue;
      const card = el('a', {class: 'count status-' + s.toLowerCase(), 'data-status-count': s,
                            href: '#/', title: 'show ' + s + ' devices'},
                      el('span', {class: 'n'}, n), el('span', {}, s));
      card.addEventListener('click', (e) => {
        e.preventDefault();
        $('status-filter').value = s;
        loadDevices();
      });
      box.append(card);
    }
    $('policy-version').textContent = summary.policyVersion ? 'policy ' + summary.policyVersion : '';
  }

  function matches(d, text) {
    if (!text) return true;
    const hay = [d.hostname, d.deviceId, d.os, d.osName, d.status, d.statusReason,
                 ...(d.tags || []), ...(d.failingChecks || [])].join(' ').toLowerCase();
    return text.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
  }

  function renderDevices() {
    const tbody = $('device-rows');
    clear(tbody);
    const text = $('text-filter').value.trim();
    let shown = 0;
    for (const d of fleet.devices) {
      if (!matches(d, text)) continue;
      shown++;
      const link = el('a', {href: '#/device/' + encodeURIComponent(d.deviceId),
                            'data-device-link': d.deviceId}, d.hostname || d.deviceId);
      const failing = el('td', {class: 'failing'});
      for (const c of d.failingChecks || []) failing.append(el('span', {class: 'chip'}, c));
      const tags = el('td');
      for (const t of d.tags || []) tags.append(el('span', {class: 'chip tag'}, t));
      tbody.append(el('tr', {'data-device-id': d.deviceId, 'data-status': d.status},
                      el('td', {}, link),
                      el('td', {}, statusBadge(d.status)),
                      failing,
                      el('td', {}, d.osName || d.os || ''),
                      tags,
                      el('td', {title: when(d.lastSeen)}, ago(d.lastSeen)),
                      el('td', {class: 'mono'}, d.deviceId)));
    }
    $('device-count').textContent = shown + ' of ' + fleet.devices.length +
        (fleet.nextPageToken ? '+' : '') + ' shown';
    show($('no-devices'), shown === 0);
    show($('load-more'), !!fleet.nextPageToken);
    $('devices').dataset.loaded = 'true';
  }

  async function loadDevices(more) {
    const status = $('status-filter').value;
    const params = new URLSearchParams({limit: String(PAGE)});
    if (status) params.set('status', status);
    if (more && fleet.nextPageToken) params.set('pageToken', fleet.nextPageToken);
    $('devices').dataset.loaded = 'false';
    try {
      const [summary, list] = await Promise.all([
        api('/api/v1/summary'), api('/api/v1/devices?' + params.toString())]);
      // A slower answer for a filter no longer selected is dropped.
      if (status !== $('status-filter').value) return;
      renderSummary(summary);
      fleet.devices = more ? fleet.devices.concat(list.devices || []) : (list.devices || []);
      fleet.nextPageToken = list.nextPageToken || '';
      fleet.status = status;
      renderDevices();
      clearError();
    } catch (err) {
      showError(err);
    }
  }

  // ---- device view ---------------------------------------------------------------------------

  // Evidence, readably: facts ({value, from}) as "value  (source:line key = raw, locked)",
  // objects as nested definition lists, lists as lists.
  function provenance(from) {
    if (!from) return null;
    let where = from.source || '';
    if (from.line) where += ':' + from.line;
    const parts = [];
    if (where) parts.push(where);
    if (from.key) parts.push('(' + from.key + ')');
    if (from.raw !== undefined && from.raw !== '') parts.push('\u201c' + from.raw + '\u201d');
    const flags = [];
    if (from.locked) flags.push('locked');
    if (from.userCanOverride) flags.push('user can override');
    if (flags.length) parts.push('(' + flags.join(', ') + ')');
    return parts.length ? el('span', {class: 'from'}, parts.join(' ')) : null;
  }
  function isFact(v) {
    return v && typeof v === 'object' && !Array.isArray(v) && 'from' in v &&
        Object.keys(v).every((k) => k === 'value' || k === 'from');
  }
  function renderValue(v, depth) {
    if (v === null || v === undefined) return el('span', {class: 'muted'}, '—');
    if (isFact(v)) {
      return el('span', {class: 'fact'},
                v.value === undefined || v.value === '' ?
                    el('span', {class: 'muted'}, 'not set') :
                    el('span', {class: 'value'}, String(v.value)),
                ' ',
                provenance(v.from));
    }
    if (Array.isArray(v)) {
      if (!v.length) return el('span', {class: 'muted'}, 'none');
      const ul = el('ul', {class: 'evidence-list'});
      for (const item of v) ul.append(el('li', {}, renderValue(item, depth + 1)));
      return ul;
    }
    if (typeof v === 'object') {
      const keys = Object.keys(v);
      if (!keys.length) return el('span', {class: 'muted'}, 'nothing collected');
      if (depth > 8) return el('code', {}, JSON.stringify(v));
      const dl = el('dl', {class: 'evidence'});
      for (const k of keys) {
        if (v[k] === '') continue;  // an unset text field (the API prints defaults)
        dl.append(el('dt', {'data-field': k}, words(k)), el('dd', {}, renderValue(v[k], depth + 1)));
      }
      return dl;
    }
    return el('span', {class: 'value'}, String(v));
  }

  function renderChecks(checks) {
    const box = $('checks');
    clear(box);
    if (!checks || !checks.length) {
      box.append(el('p', {class: 'muted'}, 'No evidence yet.'));
      return;
    }
    for (const c of checks) {
      const evidence = el('details', {class: 'evidence-box'}, el('summary', {}, 'Evidence'),
                          renderValue(c.evidence, 0));
      if (c.status === 'FAIL' || c.status === 'ERROR' || c.status === 'CHECK_EXCEPTED') {
        evidence.open = true;
      }
      box.append(el('div', {class: 'card check check-' + String(c.status).toLowerCase(),
                            'data-check': c.check, 'data-status': c.status},
                    el('h4', {}, el('span', {class: 'check-id'}, c.check), ' ',
                       el('span', {class: 'status status-' + String(c.status).toLowerCase()},
                          c.status)),
                    el('p', {class: 'reason'}, c.reason || ''),
                    evidence));
    }
  }

  function historyRow(h) {
    return el('tr', {'data-sequence': h.sequence},
              el('td', {class: 'mono'}, h.sequence), el('td', {}, when(h.issuedAt)),
              el('td', {}, when(h.receivedAt)), el('td', {}, statusBadge(h.status)),
              el('td', {}, (h.failingChecks || []).join(', ')));
  }

  const device = {id: '', nextBefore: ''};

  async function loadDevice(id) {
    device.id = id;
    $('device-view').dataset.loaded = 'false';
    try {
      const r = await api('/api/v1/devices/' + encodeURIComponent(id) + '?historyLimit=50');
      if (device.id !== id) return;
      const d = r.device || {};
      $('device-hostname').textContent = d.hostname || d.deviceId;
      const st = $('device-status');
      st.textContent = d.status;
      st.className = 'status status-' + String(d.status).toLowerCase();
      st.dataset.status = d.status;
      $('device-reason').textContent = d.statusReason || '';
      const facts = $('device-facts');
      clear(facts);
      const p = r.platform || {};
      const rows = [['Device id', d.deviceId], ['OS', d.osName || d.os],
                    ['Kernel', p.kernel], ['Architecture', p.arch],
                    ['Enrolled', when(d.enrolledAt)], ['Last seen', when(d.lastSeen)],
                    ['Last sequence', d.lastSequence], ['Tags', (d.tags || []).join(', ') || '—'],
                    ['Failing checks', (d.failingChecks || []).join(', ') || 'none'],
                    ['Policy', r.policyVersion]];
      for (const [k, v] of rows) {
        if (v === undefined || v === '') continue;
        facts.append(el('dt', {}, k), el('dd', {}, v));
      }
      renderChecks(r.checks);
      const ev = $('events').tBodies[0];
      clear(ev);
      for (const e of r.events || []) {
        ev.append(el('tr', {'data-event': e.kind}, el('td', {}, when(e.at)), el('td', {}, e.kind),
                     el('td', {}, e.detail || '')));
      }
      if (!(r.events || []).length) ev.append(el('tr', {}, el('td', {colspan: 3, class: 'muted'}, 'none')));
      const hist = $('history').tBodies[0];
      clear(hist);
      for (const h of r.history || []) hist.append(historyRow(h));
      const last = (r.history || []).slice(-1)[0];
      device.nextBefore = (r.history || []).length >= 50 && last ? String(last.sequence) : '';
      show($('more-history'), !!device.nextBefore);
      $('device-view').dataset.loaded = 'true';
      clearError();
    } catch (err) {
      showError(err);
    }
  }

  async function moreHistory() {
    if (!device.nextBefore) return;
    try {
      const params = new URLSearchParams({limit: '100', beforeSequence: device.nextBefore});
      const r = await api('/api/v1/devices/' + encodeURIComponent(device.id) + '/history?' +
                          params.toString());
      const hist = $('history').tBodies[0];
      for (const h of r.entries || []) hist.append(historyRow(h));
      device.nextBefore = r.nextBeforeSequence && r.nextBeforeSequence !== '0' ?
          String(r.nextBeforeSequence) : '';
      show($('more-history'), !!device.nextBefore);
    } catch (err) {
      showError(err);
    }
  }

  // ---- routing -------------------------------------------------------------------------------

  function route() {
    if (!sessionStorage.getItem(TOKEN_KEY)) {
      setState('login');
      return;
    }
    const m = /^#\/device\/(.+)$/.exec(location.hash);
    if (m) {
      let id;
      try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; }
      setState('device');
      loadDevice(id);
    } else {
      setState('fleet');
      loadDevices();
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout());
    $('refresh').addEventListener('click', route);
    $('status-filter').addEventListener('change', () => loadDevices());
    $('text-filter').addEventListener('input', renderDevices);
    $('load-more').addEventListener('click', () => loadDevices(true));
    $('more-history').addEventListener('click', moreHistory);
    window.addEventListener('hashchange', route);
    // The fleet view refreshes itself every 30 s while the tab is visible.
    setInterval(() => {
      if (document.body.dataset.state === 'fleet' && !document.hidden) loadDevices();
    }, 30000);
    route();
  });
})();
