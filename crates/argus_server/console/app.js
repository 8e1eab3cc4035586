// Argus analyst console: a single-page app over the /v1 API, no framework and no build step.
// Every string from the API reaches the DOM as a text node or an attribute value (never as HTML).
'use strict';
(() => {
  const S = { user: null, role: null, perms: [], csrf: null, after: null, gen: 0, inboxes: null,
    queue: { inbox: '', status: 'open', pages: [] } };
  const SVGNS = 'http://www.w3.org/2000/svg';
  const SVG_TAGS = new Set(['svg', 'g', 'circle', 'rect', 'polygon', 'line', 'polyline', 'text', 'title']);
  const GRAPH_CAP = 300;
  const DISPOSITIONS = ['confirmed_fraud', 'legitimate', 'not_enough_evidence'];
  const main = document.getElementById('main');
  const enc = encodeURIComponent;

  // ---- DOM helpers -------------------------------------------------------------------------
  // h('a', {href, test: 'x', onclick: fn}, 'text', child, [more]): attributes are set with
  // setAttribute, strings become text nodes; `test` is the data-test attribute.
  function h(tag, attrs, ...kids) {
    const el = SVG_TAGS.has(tag) ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k === 'test' ? 'data-test' : k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  let uid = 0;
  const nextId = (p) => `${p}-${++uid}`;
  // A labelled control: a div holding a label whose for= points at the control.
  function field(labelText, control) {
    if (!control.id) control.id = nextId('f');
    return h('div', { class: 'field' }, h('label', { for: control.id }, labelText), control);
  }
  function select(attrs, options, current) {
    return h('select', attrs, options.map(([value, text]) =>
      h('option', { value, selected: String(value) === String(current ?? '') }, text)));
  }
  const json = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  function fmtTime(t) {
    if (t == null || t === '') return '—';
    const d = new Date(typeof t === 'number' ? t : Date.parse(t));
    return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  const pct = (x) => (x == null ? '—' : `${(x * 100).toFixed(1)} %`);
  const entityHref = (kind, id) => `#/entity/${enc(kind)}/${enc(id)}`;
  const graphHref = (kind, id) => `#/graph/${enc(kind)}/${enc(id)}`;
  const caseHref = (id) => `#/case/${enc(id)}`;
  function table(test, headers, rows, caption) {
    return h('table', { test }, caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length }, 'Nothing here.'))));
  }
  const td = (...kids) => h('td', {}, ...kids);
  function kv(pairs, test) {
    return h('dl', { class: 'kv', test }, pairs.map(([k, v, t]) => [h('dt', {}, k), h('dd', { test: t }, v)]));
  }
  function section(title, test, ...kids) {
    const id = nextId('s');
    return h('section', { 'aria-labelledby': id, test }, h('h2', { id }, title), ...kids);
  }
  const pre = (v) => h('pre', { class: 'payload' }, JSON.stringify(v, null, 2));

  // ---- messages (one aria-live region) -----------------------------------------------------
  const msg = document.getElementById('messages');
  function say(text, kind = 'info') {
    msg.className = `messages ${kind}`;
    msg.textContent = text;
  }
  function fail(e) {
    say(`Error: ${e && e.message ? e.message : e}`, 'error');
  }
  // Wrap an event handler: prevent the default, disable the button while it runs (it stays
  // disabled if the handler calls keepDisabled on it), show errors.
  function act(fn) {
    return async (ev) => {
      if (ev) ev.preventDefault();
      const btn = ev && (ev.submitter || (ev.currentTarget instanceof HTMLButtonElement ? ev.currentTarget : null));
      if (btn) { btn.disabled = true; btn.dataset.busy = '1'; }
      try { await fn(ev); } catch (e) { fail(e); } finally {
        if (btn && btn.dataset.busy) { btn.disabled = false; delete btn.dataset.busy; }
      }
    };
  }
  const keepDisabled = (btn) => { delete btn.dataset.busy; btn.disabled = true; };

  // ---- API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(code, message, status, details) { super(message); this.code = code; this.status = status; this.details = details; }
  }
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    let res;
    try {
      res = await fetch(path, { method, headers, credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError('network', `network error: ${e.message}`, 0);
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && path !== '/v1/session') {
        S.user = S.csrf = null;
        showUser();
        if (!location.hash.startsWith('#/login')) { S.after = location.hash; location.hash = '#/login'; }
      }
      throw new ApiError(err.code || `http_${res.status}`, err.message || `HTTP ${res.status}`, res.status, err.details);
    }
    return data;
  }
  const get = (path) => api('GET', path);
  const post = (path, body) => api('POST', path, body === undefined ? {} : body);
  async function inboxes(fresh) {
    if (!S.inboxes || fresh) S.inboxes = (await get('/v1/inboxes')).inboxes || [];
    return S.inboxes;
  }

  // ---- session -----------------------------------------------------------------------------
  function setSession(s) {
    S.user = s.user; S.role = s.role; S.perms = s.permissions || []; S.csrf = s.csrf;
    showUser();
  }
  function showUser() {
    document.getElementById('whoami').textContent = S.user ? `${S.user} (${S.role})` : '';
    document.getElementById('logout').hidden = !S.user;
  }
  document.getElementById('logout').addEventListener('click', act(async () => {
    await api('DELETE', '/v1/session');
    S.user = S.csrf = S.role = null;
    showUser();
    say('Signed out.');
    location.hash = '#/login';
  }));
  document.querySelector('.skip').addEventListener('click', (ev) => { ev.preventDefault(); main.focus(); });

  // ---- router ------------------------------------------------------------------------------
  const routes = [
    [/^\/login$/, viewLogin], [/^\/queue$/, viewQueue], [/^\/case\/([^/]+)$/, viewCase],
    [/^\/entity\/([^/]+)\/([^/]+)$/, viewEntity], [/^\/graph\/([^/]+)\/([^/]+)$/, viewGraph],
    [/^\/rules$/, viewRules], [/^\/findings$/, viewFindings], [/^\/outbox$/, viewOutbox],
    [/^\/bulk$/, viewBulk], [/^\/editor(?:\/([^/]+))?$/, viewEditor], [/^\/versions$/, viewVersions],
    [/^\/version\/([^/]+)$/, viewVersion], [/^\/backtest\/([^/]+)$/, viewBacktest], [/^\/approvals$/, viewApprovals],
    [/^\/rollout$/, viewRollout], [/^\/guard$/, viewGuard],
  ];
  async function route() {
    const path = location.hash.replace(/^#/, '') || '/queue';
    if (path === 'main') return;
    const gen = ++S.gen;
    const alive = () => gen === S.gen;
    if (!S.user && path !== '/login') { S.after = `#${path}`; location.hash = '#/login'; return; }
    for (const a of document.querySelectorAll('nav a')) {
      const match = a.dataset.match ? new RegExp(a.dataset.match).test(path) : path.startsWith(a.getAttribute('href').slice(1));
      if (match) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const found = routes.find(([re]) => re.test(path));
    main.setAttribute('aria-busy', 'true');
    main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
    try {
      const node = found
        ? await found[1](alive, ...path.match(found[0]).slice(1).map((x) => (x == null ? x : decodeURIComponent(x))))
        : h('h1', {}, 'Page not found');
      if (!alive()) return;
      main.replaceChildren(node);
      const h1 = main.querySelector('h1');
      if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); document.title = `${h1.textContent} · Argus`; }
    } catch (e) {
      if (!alive()) return;
      main.replaceChildren(h('h1', {}, 'Could not load this page'), h('p', {}, e.message));
      fail(e);
    } finally {
      if (alive()) main.removeAttribute('aria-busy');
    }
  }

  // ---- #/login -----------------------------------------------------------------------------
  function viewLogin() {
    const user = h('input', { name: 'username', autocomplete: 'username', required: true, test: 'login-user' });
    const pw = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, test: 'login-password' });
    const form = h('form', { class: 'card narrow', test: 'login-form', onsubmit: act(async () => {
      setSession(await post('/v1/session', { username: user.value, password: pw.value }));
      say(`Signed in as ${S.user}.`);
      const to = S.after && !S.after.startsWith('#/login') ? S.after : '#/queue';
      S.after = null;
      location.hash = to;
    }) }, field('Username', user), field('Password', pw),
    h('button', { type: 'submit', test: 'login-submit' }, 'Sign in'));
    // Single sign-on, when the server has an OpenID Connect provider ([server.oidc]).
    const sso = h('p', { class: 'narrow', test: 'login-methods' });
    get('/v1/session/methods').then((m) => {
      if (m && m.oidc) sso.append(h('a', { href: m.oidc.url, class: 'button', test: 'login-sso' }, m.oidc.label));
    }).catch(() => {});
    return h('div', {}, h('h1', {}, 'Sign in'), form, sso);
  }

  // ---- #/queue -----------------------------------------------------------------------------
  async function viewQueue(alive) {
    const boxes = await inboxes(true);
    const q = S.queue;
    if (!boxes.some((b) => b.name === q.inbox)) q.inbox = boxes.length ? boxes[0].name : '';
    const inboxSel = select({ test: 'inbox-select' }, boxes.map((b) =>
      [b.name, `${b.name} — ${b.open} open, ${b.in_review} in review`]), q.inbox);
    const statusSel = select({ test: 'status-filter' }, [['', 'any'], ['open', 'open'],
      ['in_review', 'in review'], ['resolved', 'resolved']], q.status);
    const body = h('div', { class: 'table-wrap' });
    const info = h('p', { test: 'queue-total' });
    const prevBtn = h('button', { type: 'button', test: 'first-page' }, 'First page');
    const nextBtn = h('button', { type: 'button', test: 'next-page' }, 'Next page');
    let next = null;
    async function load() {
      const p = new URLSearchParams({ limit: '50' });
      if (q.inbox) p.set('inbox', q.inbox);
      if (q.status) p.set('status', q.status);
      const after = q.pages[q.pages.length - 1];
      if (after) p.set('after', after);
      const r = await get(`/v1/cases?${p}`);
      if (!alive()) return;
      next = r.next ?? null;
      nextBtn.disabled = next == null;
      prevBtn.disabled = q.pages.length === 0;
      info.textContent = (r.total != null ? `${r.total} case(s)` : `${(r.cases || []).length} case(s) shown`) + ` in ${q.inbox || 'all inboxes'}` +
        (q.pages.length ? `, page ${q.pages.length + 1}` : '');
      body.replaceChildren(table('case-table', ['Case', 'Subject', 'Status', 'Priority', 'SLA due', 'Assignee', 'Triggers'],
        (r.cases || []).map((c) => h('tr', { 'data-id': c.id },
          td(h('a', { href: caseHref(c.id), test: 'case-link' }, c.id)),
          td(`${c.subject.kind} ${c.subject.id}`), td(c.status), td(c.priority),
          td(h('span', { class: c.sla_due < Date.now() && c.status !== 'resolved' ? 'overdue' : '' }, fmtTime(c.sla_due))),
          td(c.assignee || '—'), td(c.triggers)))));
      body.firstChild.setAttribute('data-inbox', q.inbox);
    }
    inboxSel.addEventListener('change', act(async () => { q.inbox = inboxSel.value; q.pages = []; await load(); }));
    statusSel.addEventListener('change', act(async () => { q.status = statusSel.value; q.pages = []; await load(); }));
    nextBtn.addEventListener('click', act(async () => { if (next != null) { q.pages.push(next); await load(); } }));
    prevBtn.addEventListener('click', act(async () => { q.pages = []; await load(); }));
    const nextCase = h('button', { type: 'button', class: 'primary', test: 'next-case', onclick: act(async () => {
      try {
        const c = await post('/v1/cases/next', { inbox: q.inbox });
        say(`Claimed case ${c.id}.`);
        location.hash = caseHref(c.id);
      } catch (e) {
        if (e.code === 'no_case') say(`No case is waiting in ${q.inbox}.`); else throw e;
      }
    }) }, 'Next case');
    await load();
    return h('div', {}, h('h1', {}, 'Review queue'),
      h('div', { class: 'toolbar' }, field('Inbox', inboxSel), field('Status', statusSel), nextCase),
      info, body, h('div', { class: 'toolbar' }, prevBtn, nextBtn));
  }

  // ---- #/case/<id> -------------------------------------------------------------------------
  // A decision entry's body is `{seq, decision, event}` (the flat shape of api.md is read too).
  function decisionOf(e) {
    const b = e.body || {};
    const d = b.decision && typeof b.decision === 'object' ? b.decision : b;
    const ev = b.event ?? d.event ?? {};
    return { d, ev, type: d.checkpoint ?? d.type ?? ev.type, time: ev.time ?? d.time, actor: ev.actor ?? d.actor };
  }
  const findingOf = (e) => (e.body && e.body.finding ? e.body.finding : e.body || {});
  // A rule's reads are `[[name, value], …]` (or an object of name → value).
  const readsOf = (r) => (Array.isArray(r) ? r : Object.entries(r || {}));
  function firedTable(test, fired) {
    return table(test, ['Rule', 'Action', 'Score', 'Reason', 'Values read'], fired.map((f) => h('tr', {},
      td(h('code', {}, f.rule)), td(f.action ?? '—'), td(f.score ?? '—'), td(f.reason ?? '—'),
      td(kv(readsOf(f.reads).map(([k, v]) => [k, json(v)]))))));
  }
  function modelView(m) {
    if (!m || typeof m !== 'object') return h('li', {}, json(m));
    return h('li', {}, h('strong', {}, m.name ?? 'model'), m.version ? ` ${m.version}` : '', `: score ${m.score ?? '—'}`,
      (m.reasons || []).length ? h('ul', {}, m.reasons.map((r) => h('li', {}, r && typeof r === 'object'
        ? `${r.feature} = ${r.value ?? 'missing'} (contribution ${r.contribution >= 0 ? '+' : ''}${r.contribution})` : json(r)))) : null);
  }
  function decisionView(e) {
    const { d, ev, type, time, actor } = decisionOf(e);
    const fired = d.fired || [], shadow = d.shadow || [], models = d.models || [];
    return h('article', { class: 'decision card', test: 'decision', 'data-event': d.event_id },
      h('h3', {}, `Decision on ${type || 'event'} ${d.event_id || ''}: ${d.action || '?'}`, d.score != null ? ` (score ${d.score})` : ''),
      kv([['Event time', fmtTime(time)], ['Actor', json(actor ?? '—')], ['Policy', d.policy_version ?? '—'],
        ['Decided by', d.decided_by ?? '—'], ['Recorded', fmtTime(e.at)]]),
      h('h4', {}, 'Rules that fired'), firedTable('fired-rules', fired),
      shadow.length ? [h('h4', {}, 'Shadow rules that fired (they changed nothing)'), firedTable('shadow-rules', shadow)] : null,
      models.length ? [h('h4', {}, 'Models'), h('ul', { test: 'models' }, models.map(modelView))] : null,
      h('details', {}, h('summary', {}, 'Event payload (as received, personal data as tokens)'), pre(ev)));
  }
  function findingView(e) {
    const f = findingOf(e);
    return h('article', { class: 'finding card', test: 'finding' },
      h('h3', {}, `Finding ${f.id ?? ''} by ${f.detector ?? 'detector'}`),
      kv([['Time', fmtTime(f.time)], ['Density', f.density ?? '—'], ['Confirmed accounts', json(f.confirmed ?? '—')],
        ['Accounts', h('span', {}, (f.accounts || []).map((a, i) => [i ? ', ' : '', h('a', { href: entityHref('user', a) }, a)]))],
        ['Shared values', (f.objects || []).join(', ') || '—']]));
  }
  function summary(e) {
    const b = e.body || {};
    switch (e.kind) {
      case 'note': return b.text ?? b.note ?? '';
      case 'verdict': return `${b.disposition ?? ''}${b.reason ? ` — ${b.reason}` : ''}${b.ban ? ' (ring banned)' : ''}`;
      case 'escalate': return `to ${b.inbox ?? b.to ?? '?'}${b.reason ? ` — ${b.reason}` : ''}`;
      case 'decision': { const x = decisionOf(e); return `${x.type ?? ''} ${x.d.event_id ?? ''} → ${x.d.action ?? ''}`; }
      case 'finding': { const f = findingOf(e); return `${f.detector ?? ''} ${f.id ?? ''}: ${(f.accounts || []).length} accounts`; }
      case 'action': return `${b.kind ?? ''} ${b.target ?? ''} ${b.status ?? ''}`;
      default: return '';
    }
  }
  // The account or value an action applies to (a label's subject, a list item's value).
  const actionValue = (a) => { const b = a.body || {}; return b.value ?? b.data?.subject ?? b.actor ?? b.case ?? ''; };
  function actionsTable(test, actions, reload, withCase) {
    return table(test, [withCase ? 'Case' : null, 'Kind', 'Target', 'Value', 'Status', 'Attempts', 'Last error', 'Next try', ''].filter((x) => x != null),
      actions.map((a) => {
        const what = `${a.kind} ${typeof a.target === 'string' ? a.target : json(a.target)} ${json(actionValue(a))}`;
        return h('tr', { 'data-id': a.id, title: a.id },
          withCase ? td(a.case_id ? h('a', { href: caseHref(a.case_id) }, a.case_id) : '—') : null,
          td(a.kind), td(typeof a.target === 'string' ? a.target : json(a.target)), td(json(actionValue(a))),
          td(h('span', { class: `st st-${a.status}`, test: 'action-status' }, a.status)),
          td(a.attempts ?? 0), td(a.last_error || '—'), td(a.status === 'done' ? '—' : fmtTime(a.next_at)),
          td(a.status === 'failed' ? h('button', { type: 'button', class: 'small', test: 'retry', 'data-id': a.id, 'aria-label': `Retry ${what}`,
            onclick: act(async () => { await post(`/v1/outbox/${enc(a.id)}/retry`); say(`Action ${what} queued again.`); await reload(); }) },
          'Retry') : null));
      }));
  }

  async function viewCase(alive, id) {
    let d = await get(`/v1/cases/${enc(id)}`);
    const c0 = d.case;
    const ring = c0.subject.kind === 'ring';
    const head = h('div'), members = h('div'), why = h('div'), acts = h('div'), tl = h('div');
    let polls = 0, timer = null;
    async function reload() {
      const fresh = await get(`/v1/cases/${enc(id)}`);
      if (alive()) fill(fresh);
    }
    function fill(data) {
      d = data;
      const c = d.case;
      const lock = c.lock_owner ? `${c.lock_owner} until ${fmtTime(c.lock_until)}` : 'not locked';
      head.replaceChildren(kv([
        ['Subject', h('span', { test: 'case-subject', 'data-kind': c.subject.kind, 'data-id': c.subject.id },
          ring ? `ring ${c.subject.id}` : h('a', { href: entityHref(c.subject.kind, c.subject.id) }, `${c.subject.kind} ${c.subject.id}`))],
        ['Status', h('span', { class: `st st-${c.status}` }, c.status), 'case-status'],
        ['Disposition', c.disposition || '—', 'case-disposition'],
        ['Priority', c.priority], ['Inbox', c.inbox, 'case-inbox'],
        ['SLA due', h('span', { class: c.sla_due < Date.now() && c.status !== 'resolved' ? 'overdue' : '' }, fmtTime(c.sla_due))],
        ['Assignee', c.assignee || '—', 'case-assignee'], ['Lock', lock, 'case-lock'],
        ['Opened', fmtTime(c.opened_at)], ['Updated', fmtTime(c.updated_at)], ['Triggers', c.triggers],
      ], 'case-header'));
      const m = d.members || [];
      members.replaceChildren(ring ? section(`Ring members (${m.length})`, 'case-members-section',
        h('ul', { class: 'members', test: 'case-members' }, m.map((a) =>
          h('li', {}, h('a', { href: entityHref('user', a), test: 'member', 'data-id': a }, a))))) : '');
      const tline = d.timeline || [];
      const triggers = tline.filter((e) => e.kind === 'decision' || e.kind === 'finding');
      // The first and the latest few triggers in full (a ring may have hundreds); all are on the timeline.
      const shown = triggers.length > 8 ? [...triggers.slice(0, 4), ...triggers.slice(-4)] : triggers;
      why.replaceChildren(section(`Why this case (${triggers.length} trigger${triggers.length === 1 ? '' : 's'})`, 'case-triggers',
        triggers.length ? shown.map((e) => (e.kind === 'decision' ? decisionView(e) : findingView(e)))
          : h('p', {}, 'No decision or finding on the timeline.'),
        shown.length < triggers.length ? h('p', {}, `The first 4 and the latest 4 are shown; all ${triggers.length} are on the timeline below.`) : null));
      acts.replaceChildren(section('Actions', 'case-actions-section', actionsTable('case-actions', d.actions || [], reload, false)));
      tl.replaceChildren(section('Timeline', 'case-timeline', h('ol', { class: 'timeline' }, tline.map((e) =>
        h('li', { 'data-kind': e.kind }, h('time', {}, fmtTime(e.at)), ' ', h('strong', {}, e.kind), ` by ${e.actor} `,
          h('span', {}, summary(e)), h('details', {}, h('summary', {}, 'Details'), pre(e.body)))))));
      schedule();
    }
    // Keep the header and the actions fresh while actions are pending (and a little after a verdict).
    function schedule() {
      clearTimeout(timer);
      const pending = (d.actions || []).some((a) => a.status === 'pending');
      if (!(pending || polls > 0)) return;
      polls = Math.max(0, polls - 1);
      timer = setTimeout(() => { if (alive()) reload().catch(fail); }, 1500);
    }

    const noteText = h('textarea', { rows: 3, required: true, test: 'note-text' });
    const notes = h('form', { class: 'card', test: 'note-form', onsubmit: act(async () => {
      await post(`/v1/cases/${enc(id)}/notes`, { text: noteText.value });
      noteText.value = '';
      say('Note added.');
      await reload();
    }) }, h('h3', {}, 'Add a note'), field('Note', noteText), h('button', { type: 'submit', test: 'note-submit' }, 'Add note'));

    const claim = h('button', { type: 'button', test: 'claim', onclick: act(async () => {
      await post(`/v1/cases/${enc(id)}/claim`);
      say(`Case ${id} claimed.`);
      await reload();
    }) }, 'Claim case');
    const release = h('button', { type: 'button', test: 'release', onclick: act(async () => {
      await post(`/v1/cases/${enc(id)}/release`);
      say(`Case ${id} released.`);
      await reload();
    }) }, 'Release case');

    const boxes = await inboxes().catch(() => []);
    const escInbox = select({ test: 'escalate-inbox' }, boxes.map((b) => [b.name, b.name]), boxes.find((b) => b.name !== c0.inbox)?.name);
    const escReason = h('input', { required: true, test: 'escalate-reason' });
    const escalate = h('form', { class: 'card', test: 'escalate-form', onsubmit: act(async () => {
      await post(`/v1/cases/${enc(id)}/escalate`, { inbox: escInbox.value, reason: escReason.value });
      say(`Case ${id} escalated to ${escInbox.value}.`);
      await reload();
    }) }, h('h3', {}, 'Escalate'), field('To inbox', escInbox), field('Reason', escReason),
    h('button', { type: 'submit', test: 'escalate-submit' }, 'Escalate'));

    const disp = select({ required: true, test: 'verdict-disposition' },
      [['', 'Choose…'], ...DISPOSITIONS.map((x) => [x, x.replace(/_/g, ' ')])], '');
    const ban = h('input', { type: 'checkbox', test: 'verdict-ban', disabled: true });
    const reason = h('textarea', { rows: 3, required: true, test: 'verdict-reason' });
    // Snooze: rules that keep flagging the accounts this verdict clears, skipped for them a while.
    const snoozeRules = h('input', { type: 'text', test: 'verdict-snooze-rules', placeholder: 'rule names, comma-separated (optional)' });
    const snoozeTtl = h('input', { type: 'text', test: 'verdict-snooze-ttl', value: '30d' });
    disp.addEventListener('change', () => { ban.disabled = disp.value !== 'confirmed_fraud'; if (ban.disabled) ban.checked = false; });
    if (ban.id === '') ban.id = nextId('f');
    const verdict = h('form', { class: 'card', test: 'verdict-form', onsubmit: act(async () => {
      const body = { disposition: disp.value, reason: reason.value };
      if (ring) body.ban = ban.checked;
      const rules = snoozeRules.value.split(',').map((x) => x.trim()).filter(Boolean);
      if (rules.length) body.snooze = { rules, ttl: snoozeTtl.value.trim() || '30d' };
      const r = await post(`/v1/cases/${enc(id)}/verdict`, body);
      say(`Verdict recorded: ${disp.value}${body.ban ? ', ring banned' : ''}; ${(r.actions || []).length} action(s) queued${(r.snoozes || []).length ? `; ${r.snoozes.length} snooze(s)` : ''}.`);
      polls = 8;
      if (alive()) fill({ ...d, case: r.case || d.case, actions: r.actions || d.actions });
      await reload();
    }) }, h('h3', {}, 'Verdict'), field('Disposition', disp),
    ring ? h('div', { class: 'field check' }, ban, h('label', { for: ban.id }, 'Ban every account of the ring')) : null,
    field('Reason', reason), field('Snooze rules for these accounts', snoozeRules), field('Snooze for', snoozeTtl),
    h('button', { type: 'submit', class: 'primary', test: 'verdict-submit' }, 'Record verdict'));

    fill(d);
    // The graph's nodes are accounts: a ring's members, or a user subject.
    const graphLink = ring || c0.subject.kind === 'user'
      ? h('a', { href: graphHref('case', id), class: 'button', test: 'open-graph' }, 'Linked accounts graph') : null;
    return h('div', { class: 'case' },
      h('h1', {}, 'Case ', h('span', { test: 'case-id' }, id)),
      h('div', { class: 'toolbar' }, graphLink, claim, release,
        h('button', { type: 'button', test: 'refresh', onclick: act(reload) }, 'Refresh')),
      head, members, why, acts,
      h('div', { class: 'forms' }, verdict, notes, escalate), tl);
  }

  // ---- #/entity/<kind>/<id> ----------------------------------------------------------------
  async function viewEntity(alive, kind, id) {
    const e = await get(`/v1/entities/${enc(kind)}/${enc(id)}`);
    // The entity's cases and labels come from their own route (or with the profile).
    const ec = await get(`/v1/entities/${enc(kind)}/${enc(id)}/cases`).catch(() => ({}));
    if (!Array.isArray(e.cases)) e.cases = ec.cases || [];
    if (!Array.isArray(e.labels)) e.labels = ec.labels || [];
    const feats = Object.entries(e.features || {}).sort(([a], [b]) => a.localeCompare(b));
    return h('div', {},
      h('h1', {}, `${kind} ${id}`),
      h('p', {}, `Key ${e.key ?? id}, as of ${fmtTime(e.as_of)}. `,
        kind === 'user' ? h('a', { href: graphHref(kind, id), test: 'open-graph' }, 'Linked accounts graph') : null),
      section('Lists', 'entity-lists', (e.lists || []).length
        ? h('ul', {}, e.lists.map((l) => h('li', {}, h('strong', {}, l.list), ` (${l.kind ?? 'list'})`,
          l.reason ? ` — ${l.reason}` : '', l.expires ? `, expires ${fmtTime(l.expires)}` : '')))
        : h('p', {}, 'On no list.')),
      section('Labels', 'entity-labels', (e.labels || []).length
        ? h('ul', {}, e.labels.map((l) => h('li', {}, h('strong', {}, l.type), l.status ? ` (${l.status})` : '',
          ` at ${fmtTime(l.at ?? l.time)}`, l.reason ? ` — ${l.reason}` : '',
          l.case ? [', case ', h('a', { href: caseHref(l.case) }, l.case)] : '', l.job ? `, bulk job ${l.job}` : '')))
        : h('p', {}, 'No labels.')),
      section('Features now', 'entity-features-section', table('entity-features', ['Feature', 'Value'],
        feats.map(([k, v]) => h('tr', {}, td(h('code', {}, k)), td(json(v)))))),
      section('Recent decisions', 'entity-decisions-section', table('entity-decisions', ['Event', 'Time', 'Checkpoint', 'Action', 'Score'],
        (e.recent_decisions || []).map((x) => h('tr', {}, td(x.event_id), td(fmtTime(x.time)), td(x.checkpoint), td(x.action), td(x.score ?? '—'))))),
      section('Cases', 'entity-cases-section', table('entity-cases', ['Case', 'Status', 'Inbox', 'Disposition', 'Opened'],
        (e.cases || []).map((c) => h('tr', {}, td(h('a', { href: caseHref(c.id) }, c.id)), td(c.status), td(c.inbox),
          td(c.disposition || '—'), td(fmtTime(c.opened_at)))))));
  }

  // ---- #/graph/<kind>/<id> -----------------------------------------------------------------
  const FIELD_STYLE = {
    account: { shape: 'circle', color: '#2f6fb5' }, device: { shape: 'square', color: '#7a4fb0' },
    card: { shape: 'diamond', color: '#b06a00' }, shipping_address: { shape: 'triangle', color: '#1d7f55' },
    payout_account: { shape: 'hexagon', color: '#a0336a' }, other: { shape: 'square', color: '#666' },
  };
  const fieldOf = (n) => (n.type === 'account' ? 'account' : n.field || String(n.id).split(':')[0]);
  const styleOf = (n) => FIELD_STYLE[fieldOf(n)] || FIELD_STYLE.other;
  function shape(n, r) {
    const st = styleOf(n);
    const pts = (list) => list.map(([x, y]) => `${(x * r).toFixed(1)},${(y * r).toFixed(1)}`).join(' ');
    const common = { fill: st.color, class: 'shape' };
    switch (st.shape) {
      case 'circle': return h('circle', { r, ...common });
      case 'diamond': return h('polygon', { points: pts([[0, -1.2], [1.2, 0], [0, 1.2], [-1.2, 0]]), ...common });
      case 'triangle': return h('polygon', { points: pts([[0, -1.2], [1.1, 0.9], [-1.1, 0.9]]), ...common });
      case 'hexagon': return h('polygon', { points: pts([0, 1, 2, 3, 4, 5].map((i) => [Math.cos(i * Math.PI / 3), Math.sin(i * Math.PI / 3)])), ...common });
      default: return h('rect', { x: -r * 0.85, y: -r * 0.85, width: r * 1.7, height: r * 1.7, ...common });
    }
  }
  // A small force layout: pairwise repulsion, springs along edges, a pull to the centre; nodes
  // already placed start where they were, new ones next to the node that brought them.
  function layout(G, iters) {
    const N = [...G.nodes.values()];
    const E = [...G.edges.values()].map(([a, b]) => [G.nodes.get(a), G.nodes.get(b)]).filter(([a, b]) => a && b);
    for (let it = 0; it < iters; it++) {
      const temp = 12 * (1 - it / iters) + 0.5;
      for (const n of N) { n.fx = -0.02 * n.x; n.fy = -0.02 * n.y; }
      for (let i = 0; i < N.length; i++) {
        const a = N[i];
        for (let j = i + 1; j < N.length; j++) {
          const b = N[j];
          let dx = a.x - b.x, dy = a.y - b.y;
          let d2 = dx * dx + dy * dy;
          if (d2 < 0.01) { dx = Math.random() - 0.5; dy = Math.random() - 0.5; d2 = 0.5; }
          if (d2 > 90000) continue;
          const f = 2200 / d2, d = Math.sqrt(d2);
          a.fx += (dx / d) * f; a.fy += (dy / d) * f; b.fx -= (dx / d) * f; b.fy -= (dy / d) * f;
        }
      }
      for (const [a, b] of E) {
        const dx = b.x - a.x, dy = b.y - a.y, d = Math.sqrt(dx * dx + dy * dy) || 1;
        const f = (d - 50) * 0.08;
        a.fx += (dx / d) * f; a.fy += (dy / d) * f; b.fx -= (dx / d) * f; b.fy -= (dy / d) * f;
      }
      for (const n of N) {
        const m = Math.sqrt(n.fx * n.fx + n.fy * n.fy) || 1, s = Math.min(m, temp) / m;
        n.x += n.fx * s; n.y += n.fy * s;
      }
    }
  }
  function merge(G, data, near) {
    const origin = near ? G.nodes.get(near) : null;
    for (const n of data.nodes || []) {
      n.confirmed = !!n.confirmed || n.disposition === 'confirmed_fraud';
      const old = G.nodes.get(n.id);
      if (old) { Object.assign(old, { confirmed: old.confirmed || n.confirmed, case: n.case ?? old.case, disposition: n.disposition ?? old.disposition }); continue; }
      if (G.nodes.size >= GRAPH_CAP) { G.capped = true; continue; }
      const a = Math.random() * 2 * Math.PI, r = origin ? 30 + Math.random() * 30 : 150 * Math.random();
      G.nodes.set(n.id, { ...n, confirmed: !!n.confirmed, x: (origin ? origin.x : 0) + r * Math.cos(a), y: (origin ? origin.y : 0) + r * Math.sin(a), fx: 0, fy: 0 });
    }
    for (const e of data.edges || []) {
      if (G.nodes.has(e.account) && G.nodes.has(e.value)) G.edges.set(`${e.account}\u0000${e.value}`, [e.account, e.value, e.last]);
    }
    G.truncated = G.truncated || !!data.truncated;
  }
  const short = (t) => (String(t).length > 12 ? `${String(t).slice(0, 11)}…` : String(t));
  const fetchGraph = (kind, id) => get(`/v1/graph/${enc(kind)}/${enc(id)}?hops=2`);

  async function viewGraph(alive, kind, id) {
    const G = { nodes: new Map(), edges: new Map(), expanded: new Set(), loading: new Set(), truncated: false, capped: false };
    let back = null, title = `Linked accounts of ${kind} ${id}`;
    if (kind === 'case') {
      // A case's graph: its subject, or for a ring every member (the first few fetched, merged).
      const d = await get(`/v1/cases/${enc(id)}`);
      const c = d.case;
      back = h('a', { href: caseHref(id), test: 'back-to-case' }, `Back to case ${id}`);
      title = `Linked accounts of case ${id} (${c.subject.kind} ${c.subject.id})`;
      const seeds = c.subject.kind === 'ring' ? (d.members || []) : [c.subject.id];
      const seedKind = c.subject.kind === 'ring' ? 'user' : c.subject.kind;
      for (const m of seeds.slice(0, 12)) {
        if (G.nodes.has(m) && seedKind === 'user') continue;
        merge(G, await fetchGraph(seedKind, m));
        if (seedKind === 'user') G.expanded.add(m);
        if (G.nodes.size >= GRAPH_CAP) break;
      }
    } else {
      merge(G, await fetchGraph(kind, id));
      if (kind === 'user') G.expanded.add(id);
    }
    layout(G, 300);
    const svg = h('svg', { test: 'graph-svg', class: 'graph', role: 'group', 'aria-label': `Graph: ${title}` });
    const panel = h('div', { class: 'graph-panel' });
    const stats = h('p', { test: 'graph-stats' });

    async function expand(nodeId) {
      if (G.expanded.has(nodeId)) { say(`${nodeId} is already expanded.`); return; }
      if (G.loading.has(nodeId)) return;
      G.loading.add(nodeId);
      const before = G.nodes.size;
      try { merge(G, await fetchGraph('user', nodeId), nodeId); } finally { G.loading.delete(nodeId); }
      G.expanded.add(nodeId);
      if (!alive()) return;
      layout(G, 150);
      draw(nodeId);
      say(`Expanded ${nodeId}: ${G.nodes.size - before} new node(s)${G.capped ? `; capped at ${GRAPH_CAP} nodes` : ''}.`);
    }
    function label(n) {
      if (n.type === 'account') return `account ${n.id}${n.confirmed ? ', confirmed' : ''}${G.expanded.has(n.id) ? ', expanded' : ''}`;
      return `${fieldOf(n)} ${String(n.id).replace(/^[^:]*:/, '')}`;
    }
    function draw(focusId) {
      const N = [...G.nodes.values()];
      const xs = N.map((n) => n.x), ys = N.map((n) => n.y);
      // Fit the drawing, but never zoom in past a 420 × 300 window (small graphs stay small).
      const lo = (v) => Math.min(...v, 0), hi = (v) => Math.max(...v, 0);
      const w = Math.max(hi(xs) - lo(xs) + 80, 420), hgt = Math.max(hi(ys) - lo(ys) + 80, 300);
      const cx = (hi(xs) + lo(xs)) / 2, cy = (hi(ys) + lo(ys)) / 2;
      svg.setAttribute('viewBox', `${(cx - w / 2).toFixed(0)} ${(cy - hgt / 2).toFixed(0)} ${w.toFixed(0)} ${hgt.toFixed(0)}`);
      const edges = h('g', { class: 'edges', 'aria-hidden': 'true' }, [...G.edges.values()].map(([a, b]) => {
        const A = G.nodes.get(a), B = G.nodes.get(b);
        return h('line', { x1: A.x.toFixed(1), y1: A.y.toFixed(1), x2: B.x.toFixed(1), y2: B.y.toFixed(1) });
      }));
      const nodes = h('g', { class: 'nodes' }, N.map((n) => {
        const acct = n.type === 'account';
        const g = h('g', { class: `node ${acct ? 'account' : 'value'}${n.confirmed ? ' confirmed' : ''}`,
          test: 'graph-node', 'data-id': n.id, 'data-type': n.type, 'data-field': fieldOf(n),
          'data-confirmed': n.confirmed ? 'true' : 'false', 'data-expanded': G.expanded.has(n.id) ? 'true' : 'false',
          transform: `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`,
          tabindex: acct ? 0 : null, role: acct ? 'button' : 'img', 'aria-label': label(n) },
        h('title', {}, label(n)),
        n.confirmed ? h('circle', { r: 13, class: 'ring-mark' }) : null,
        shape(n, acct ? 8 : 6),
        h('text', { y: acct ? 20 : 16, 'text-anchor': 'middle' }, short(acct ? n.id : String(n.id).replace(/^[^:]*:/, ''))));
        if (acct) {
          g.addEventListener('click', act(() => expand(n.id)));
          g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') act(() => expand(n.id))(ev); });
        }
        return g;
      }));
      svg.replaceChildren(edges, nodes);
      const accts = N.filter((n) => n.type === 'account'), vals = N.filter((n) => n.type !== 'account');
      const degree = new Map();
      for (const [a, b] of G.edges.values()) { degree.set(a, (degree.get(a) || 0) + 1); degree.set(b, (degree.get(b) || 0) + 1); }
      stats.textContent = `${accts.length} accounts, ${vals.length} shared values, ${G.edges.size} links` +
        (G.truncated ? '; the server truncated the graph' : '') + (G.capped ? `; capped at ${GRAPH_CAP} nodes` : '');
      panel.replaceChildren(
        section(`Accounts (${accts.length})`, 'graph-accounts', h('ul', {}, accts.map((n) => h('li', {},
          h('a', { href: entityHref('user', n.id) }, n.id), n.confirmed ? h('span', { class: 'tag bad' }, 'confirmed') : null,
          n.case ? [' ', h('a', { href: caseHref(n.case), title: `case ${n.case}`, 'aria-label': `case ${n.case}` }, 'case')] : null, ' ',
          h('button', { type: 'button', class: 'small', test: 'graph-expand', 'data-id': n.id, disabled: G.expanded.has(n.id),
            onclick: act(() => expand(n.id)) }, G.expanded.has(n.id) ? `${n.id} expanded` : `Expand ${n.id}`))))),
        section(`Shared values (${vals.length})`, 'graph-values', h('ul', {}, [...vals].sort((x, y) => (degree.get(y.id) || 0) - (degree.get(x.id) || 0)).map((n) => h('li', {},
          h('span', { class: 'swatch', 'aria-hidden': 'true' }, h('svg', { width: 14, height: 14, viewBox: '-8 -8 16 16' }, shape(n, 6))),
          ` ${label(n)} — ${degree.get(n.id) || 0} account(s)`)))),
        section('Legend', 'graph-legend', h('ul', { class: 'legend' }, Object.entries(FIELD_STYLE).map(([k]) => h('li', {},
          h('svg', { width: 14, height: 14, viewBox: '-8 -8 16 16', 'aria-hidden': 'true' }, shape(k === 'account' ? { type: 'account' } : { type: 'value', field: k }, 6)),
          ` ${k.replace(/_/g, ' ')}`)), h('li', {}, 'Red ring: confirmed fraud'))));
      if (focusId) { const el = svg.querySelector(`[data-id="${CSS.escape(focusId)}"]`); if (el) el.focus(); }
    }
    draw();
    return h('div', {}, h('h1', {}, title), back ? h('p', {}, back) : null,
      h('p', { class: 'hint' }, 'Click an account, or focus it and press Enter, to expand its links. The list beside the graph holds the same nodes.'),
      stats, h('div', { class: 'graph-layout' }, h('div', { class: 'graph-box' }, svg), panel));
  }

  // ---- #/rules -----------------------------------------------------------------------------
  // Hourly hits on one time axis for every rule (the hours without hits are zeros), at most a week.
  const HOUR = 3600e3;
  function sparkline(hourly, [from, to]) {
    const counts = new Map((hourly || []).map(([t, c]) => [Math.floor(t / HOUR), c]));
    const pts = [];
    for (let hr = from; hr <= to; hr++) pts.push(counts.get(hr) || 0);
    const max = Math.max(1, ...pts), w = 120, ht = 24, step = pts.length > 1 ? w / (pts.length - 1) : w;
    const total = pts.reduce((x, y) => x + y, 0);
    return h('svg', { width: w, height: ht, viewBox: `0 0 ${w} ${ht}`, class: 'spark', role: 'img',
      'aria-label': `${total} hit(s) over the last ${pts.length} hour(s), peak ${Math.max(0, ...pts)} in an hour` },
    h('polyline', { points: pts.length > 1 ? pts.map((c, i) => `${(i * step).toFixed(1)},${(ht - 2 - (c / max) * (ht - 4)).toFixed(1)}`).join(' ')
      : `0,${ht - 2} ${w},${ht - 2 - (pts[0] || 0) / max * (ht - 4)}` }));
  }
  async function viewRules() {
    const [r, banner] = await Promise.all([get('/v1/rules/stats'), guardBanner()]);
    const rules = [...(r.rules || [])].sort((a, b) => b.hits - a.hits);
    const hours = rules.flatMap((x) => (x.hourly || []).map(([t]) => Math.floor(t / HOUR)));
    const to = hours.length ? Math.max(...hours) : 0, from = hours.length ? Math.max(Math.min(...hours), to - 167) : 0;
    const modeRule = select({ test: 'mode-rule' }, rules.map((x) => [x.rule, x.rule]), rules[0]?.rule);
    const modeSel = select({ test: 'mode-mode' }, [['shadow', 'shadow (log only)'], ['enforce', 'enforce']], 'enforce');
    const modeMsg = h('input', { test: 'mode-message', size: 40 });
    const modeForm = h('form', { class: 'card', test: 'mode-form', onsubmit: act(async () => {
      const body = { mode: modeSel.value };
      if (modeMsg.value.trim()) body.message = modeMsg.value.trim();
      const v = await post(`/v1/rules/${enc(modeRule.value)}/mode`, body);
      say(`Draft ${v.label || `v${v.id}`} moves ${modeRule.value} to ${modeSel.value}.`);
      location.hash = versionHref(v.id);
    }) }, h('h2', {}, 'Shadow or enforce a rule'),
    h('p', { class: 'hint' }, 'Makes a draft version from the running policies with the rule in the chosen mode; it goes through review like any other change.'),
    h('div', { class: 'toolbar' }, field('Rule', modeRule), field('Mode', modeSel), field('Message (optional)', modeMsg),
      h('button', { type: 'submit', test: 'mode-submit' }, 'Make draft')));
    return h('div', {}, h('h1', {}, 'Rules'), rulesTabs('dashboard'), banner, table('rules-table',
      ['Rule', 'Checkpoint', 'Hits', 'Precision', 'Confirmed / legitimate', 'Hourly hits'],
      rules.map((x) => h('tr', { 'data-rule': x.rule }, td(h('code', {}, x.rule)), td(x.checkpoint), td(x.hits),
        td(pct(x.precision)), td(`${x.confirmed ?? 0} / ${x.legitimate ?? 0}`), td(sparkline(x.hourly, [from, to]))))),
      hours.length ? h('p', { class: 'hint' }, `Hourly hits from ${fmtTime(from * HOUR)} to ${fmtTime(to * HOUR)} (event time).`) : null,
      h('h2', {}, 'Policy changes'),
      (r.policy_changes || []).length
        ? h('ul', { 'data-test': 'policy-changes' }, [...r.policy_changes].reverse().map((c) => h('li', {}, h('code', {}, c.version), ` installed ${fmtTime(c.at)}`)))
        : h('p', {}, 'No policy installed.'),
      rules.length ? modeForm : null);
  }

  // ---- #/findings --------------------------------------------------------------------------
  async function viewFindings() {
    const r = await get('/v1/findings?limit=100');
    const list = r.findings || [];
    return h('div', {}, h('h1', {}, 'Findings'), h('p', {}, `${list.length} shown of ${r.total ?? list.length}.`),
      table('findings-table', ['Finding', 'Detector', 'Time', 'Accounts', 'Shared values', 'Density'],
        list.map((f) => h('tr', {}, td(f.id), td(f.detector), td(fmtTime(f.time)),
          td((f.accounts || []).slice(0, 30).map((a, i) => [i ? ', ' : '', h('a', { href: entityHref('user', a), class: (f.confirmed || []).includes?.(a) ? 'confirmed' : null }, a)]),
            (f.accounts || []).length > 30 ? ` and ${f.accounts.length - 30} more` : ''),
          td((f.objects || []).slice(0, 10).join(', ')), td(f.density ?? '—')))));
  }

  // ---- #/outbox ----------------------------------------------------------------------------
  async function viewOutbox(alive) {
    let status = '';
    const sel = select({ test: 'outbox-status' }, [['', 'any'], ['pending', 'pending'], ['done', 'done'], ['failed', 'failed']], '');
    const wrap = h('div', { class: 'table-wrap' });
    async function load() {
      const p = new URLSearchParams({ limit: '200' });
      if (status) p.set('status', status);
      const r = await get(`/v1/outbox?${p}`);
      if (!alive()) return;
      wrap.replaceChildren(actionsTable('outbox-table', r.actions || [], load, true));
    }
    sel.addEventListener('change', act(async () => { status = sel.value; await load(); }));
    await load();
    return h('div', {}, h('h1', {}, 'Outbox'), h('div', { class: 'toolbar' }, field('Status', sel),
      h('button', { type: 'button', onclick: act(load) }, 'Refresh')), wrap);
  }

  // ---- #/bulk ------------------------------------------------------------------------------
  async function viewBulk(alive) {
    const boxes = await inboxes();
    const byCase = h('input', { type: 'radio', name: 'target', value: 'case', checked: true, test: 'bulk-by-case' });
    const byFilter = h('input', { type: 'radio', name: 'target', value: 'filter', test: 'bulk-by-filter' });
    const caseId = h('input', { test: 'bulk-case', size: 48 });
    const inbox = select({ test: 'bulk-inbox' }, boxes.map((b) => [b.name, b.name]), boxes[0]?.name);
    const status = select({ test: 'bulk-status' }, [['open', 'open'], ['in_review', 'in review'], ['resolved', 'resolved']], 'open');
    const action = select({ test: 'bulk-action' }, [['ban', 'ban'], ['label_fraud', 'label fraud'], ['resolve_legitimate', 'resolve as legitimate']], 'ban');
    const reason = h('textarea', { rows: 2, test: 'bulk-reason' });
    const out = h('div', { test: 'bulk-preview' });
    const progress = h('div', { test: 'bulk-progress' });
    const run = h('button', { type: 'button', class: 'primary', test: 'bulk-run', disabled: true }, 'Run');
    let preview = null;
    const req = () => ({ target: byCase.checked ? { case: caseId.value.trim() } : { filter: { inbox: inbox.value, status: status.value } },
      action: action.value });
    for (const el of [byCase, byFilter, caseId, inbox, status, action]) el.addEventListener('change', () => { preview = null; run.disabled = true; });
    const previewBtn = h('button', { type: 'button', test: 'bulk-preview-button', onclick: act(async () => {
      const body = req();
      const r = await post('/v1/bulk/preview', body);
      preview = { body, count: r.count };
      const over = r.over_cap ?? (r.cap != null && r.count > r.cap);
      run.disabled = r.count === 0 || over;
      out.replaceChildren(h('p', {}, `${r.count} account(s)`, r.cases != null ? ` in ${r.cases} case(s)` : '', `; the cap is ${r.cap}.`,
        over ? ' Over the cap: narrow the target.' : ''),
      h('ul', {}, (r.members || []).map((m) => h('li', {}, typeof m === 'string' ? h('a', { href: entityHref('user', m) }, m) : json(m)))));
      say(`Preview: ${r.count} target(s).`);
    }) }, 'Preview');
    run.addEventListener('click', act(async () => {
      if (!preview) throw new Error('preview first');
      if (!reason.value.trim()) throw new Error('a reason is required');
      let job = await post('/v1/bulk', { ...preview.body, reason: reason.value, expect_count: preview.count });
      say(`Bulk job ${job.id} started on ${job.total} target(s).`);
      // A job is finished when its status says so, or when done and failed add up to its total.
      const running = () => (job.status ? job.status === 'running' : (job.done || 0) + (job.failed || 0) < (job.total || 0));
      const show = () => progress.replaceChildren(h('p', {}, `Job ${job.id}: ${job.done || 0} of ${job.total} done`,
        job.failed ? `, ${job.failed} failed` : '', running() ? ', running.' : ', finished.'),
      h('progress', { max: job.total || 1, value: (job.done || 0) + (job.failed || 0), 'aria-label': 'Bulk job progress' }));
      show();
      while (running() && alive()) {
        await new Promise((r) => setTimeout(r, 1000));
        job = await get(`/v1/bulk/${enc(job.id)}`);
        show();
      }
      if (alive()) say(`Bulk job ${job.id} finished: ${job.done || 0} of ${job.total} done${job.failed ? `, ${job.failed} failed` : ''}.`);
      preview = null;
      keepDisabled(run);
    }));
    return h('div', {}, h('h1', {}, 'Bulk actions'),
      h('form', { class: 'card', test: 'bulk-form', onsubmit: (ev) => ev.preventDefault() },
        h('fieldset', {}, h('legend', {}, 'Target'),
          h('div', { class: 'field check' }, byCase, h('label', { for: (byCase.id = nextId('f')) }, 'A ring case')), field('Case id', caseId),
          h('div', { class: 'field check' }, byFilter, h('label', { for: (byFilter.id = nextId('f')) }, 'Cases matching a filter')),
          field('Inbox', inbox), field('Status', status)),
        field('Action', action), previewBtn, out, field('Reason', reason), run, progress));
  }

  // ---- safe rule changes: shared pieces ---------------------------------------------------
  // replaceChildren with h()'s rules: nested arrays flattened, null and false skipped.
  const put = (el, ...kids) => el.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false));
  const versionHref = (id) => `#/version/${enc(id)}`;
  const backtestHref = (id) => `#/backtest/${enc(id)}`;
  const vlabel = (v) => v.label || `v${v.id}`;
  const RULE_TABS = [['dashboard', '#/rules', 'Dashboard'], ['editor', '#/editor', 'Editor'], ['versions', '#/versions', 'Versions'],
    ['approvals', '#/approvals', 'Approvals'], ['rollout', '#/rollout', 'Rollout'], ['guard', '#/guard', 'Guard & snoozes']];
  function rulesTabs(current) {
    return h('nav', { class: 'subtabs', 'aria-label': 'Rules' }, h('ul', {}, RULE_TABS.map(([k, href, text]) =>
      h('li', {}, h('a', { href, test: `tab-${k}`, 'aria-current': k === current ? 'page' : null }, text)))));
  }
  // A notice when the blast-radius guard paused a rule and nobody resumed it (nothing when the
  // guard cannot be read, e.g. without the lifecycle).
  async function guardBanner() {
    let g;
    try { g = await get('/v1/guard'); } catch { return null; }
    const open = (g.pauses || []).filter((p) => !p.resumed_at);
    if (!open.length) return null;
    return h('div', { class: 'banner warn', role: 'note', test: 'guard-banner' },
      h('strong', {}, `The guard paused ${open.length} rule${open.length === 1 ? '' : 's'}: `),
      open.map((p, i) => [i ? ', ' : '', h('code', {}, p.rule), ` (${p.checkpoint ?? '?'}, since ${fmtTime(p.paused_at)})`]),
      '. ', h('a', { href: '#/guard', test: 'guard-banner-link' }, 'Review the pauses'));
  }
  const statusTag = (st, test) => h('span', { class: `st st-${st}`, test, 'data-status': st }, st);
  // Text "a → b" of the change's fields.
  const changeText = (c) => `${c.change}${(c.fields || []).length ? ` (${c.fields.join(', ')})` : ''}`;
  function approvalList(reasons, test) {
    return (reasons || []).length
      ? h('ul', { class: 'reasons', test }, reasons.map((r) => h('li', {}, r)))
      : h('p', { test }, 'No change that needs another person\u2019s approval.');
  }
  function ruleChangesTable(test, changes) {
    return table(test, ['Rule', 'Checkpoint', 'Change', 'Before', 'After'], (changes || []).map((c) => h('tr', { 'data-rule': c.rule, 'data-change': c.change },
      td(h('code', {}, c.rule)), td(c.checkpoint ?? '—'), td(h('span', { class: `chg chg-${c.change}` }, changeText(c))),
      td(ruleBrief(c.before, c.fields)), td(ruleBrief(c.after, c.fields)))));
  }
  function ruleBrief(r, fields) {
    if (!r) return '—';
    const keys = (fields || []).length ? fields.filter((f) => f in r) : ['when', 'action', 'score', 'mode'];
    return kv(keys.filter((k) => r[k] != null).map((k) => [k, h('code', {}, json(r[k]))]));
  }
  // A unified diff, one text line per span, colored by its first character.
  function unifiedDiff(text, test) {
    const lines = String(text || '').replace(/\n$/, '').split('\n');
    return h('pre', { class: 'diff', test }, lines.map((l) => {
      const cls = l.startsWith('+++') || l.startsWith('---') ? 'diff-meta' : l.startsWith('@@') ? 'diff-hunk'
        : l.startsWith('+') ? 'diff-add' : l.startsWith('-') ? 'diff-del' : 'diff-ctx';
      return h('span', { class: cls }, `${l}\n`);
    }));
  }
  function download(name, data) {
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
    const a = h('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  // ---- #/editor[/<version>] ----------------------------------------------------------------
  // Where a problem is: its line and column, or the "at line N, column M" of a TOML parse error.
  function problemPos(p) {
    if (p.line != null) return { line: p.line, column: p.column ?? 1 };
    const m = /line (\d+), column (\d+)/.exec(p.message || '');
    return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
  }
  // The problem's line of the file with a caret under its span, as a compiler prints it.
  function problemExcerpt(text, p, pos) {
    if (!pos || text == null) return null;
    const lines = text.split('\n');
    const src = lines[pos.line - 1];
    if (src == null) return null;
    const start = Math.max(1, pos.column);
    let len = p.length ?? (p.start != null && p.end != null ? p.end - p.start : 1);
    len = Math.max(1, Math.min(len, src.length - start + 1));
    const gutter = String(pos.line);
    return h('pre', { class: 'excerpt', test: 'problem-excerpt', 'aria-label': `line ${pos.line} of ${p.file}` },
      h('span', { class: 'gutter' }, `${gutter} | `), src.slice(0, start - 1), h('mark', {}, src.slice(start - 1, start - 1 + len) || ' '),
      src.slice(start - 1 + len), '\n',
      h('span', { class: 'gutter' }, `${' '.repeat(gutter.length)} | `), ' '.repeat(start - 1), h('span', { class: 'caret' }, '^'.repeat(len)));
  }
  function offsetOf(text, line, column) {
    const lines = text.split('\n');
    let off = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) off += lines[i].length + 1;
    return off + Math.max(0, column - 1);
  }

  async function viewEditor(alive, fromId) {
    const [base, list] = await Promise.all([
      fromId ? get(`/v1/versions/${enc(fromId)}`).then((d) => d.version) : get('/v1/policies/running'),
      get('/v1/versions?limit=1').catch(() => ({})),
    ]);
    const orig = { ...(base.files || {}) };
    const files = { ...orig };
    const source = base.source || list.source;
    const parent = fromId ? Number(fromId) : list.active ?? null;
    const names = () => Object.keys(files).sort((a, b) => (a.startsWith('lists/') - b.startsWith('lists/')) || a.localeCompare(b));
    let current = names().find((n) => !n.startsWith('lists/')) || names()[0] || '';

    const picker = h('select', { test: 'editor-file' });
    const text = h('textarea', { test: 'editor-text', class: 'code', rows: 24, spellcheck: 'false', autocomplete: 'off',
      autocapitalize: 'off', wrap: 'off' });
    const where = h('p', { class: 'hint', test: 'editor-cursor', 'aria-live': 'off' });
    const problemsBox = h('div', { test: 'editor-problems', 'data-state': 'checking' });
    const summary = h('p', { role: 'status', 'aria-live': 'polite', test: 'editor-summary' });
    const changesBox = h('div', { test: 'editor-changes' });
    const approvalBox = h('div');
    const message = h('input', { test: 'editor-message', size: 60, required: true });
    const saveBtn = h('button', { type: 'submit', class: 'primary', test: 'editor-save' }, 'Save draft');
    let seq = 0, timer = null, last = null;

    function fillPicker() {
      picker.replaceChildren(...names().map((n) => h('option', { value: n, selected: n === current },
        files[n] !== orig[n] ? `${n} (edited)` : n)));
    }
    function showFile(name) {
      current = name;
      text.value = files[name] ?? '';
      text.setAttribute('data-file', name);
      fillPicker();
    }
    function cursor() {
      const before = text.value.slice(0, text.selectionStart).split('\n');
      where.textContent = `${current}: line ${before.length}, column ${before[before.length - 1].length + 1}`;
    }
    function jump(p, pos) {
      if (p.file && p.file !== current && p.file in files) showFile(p.file);
      const at = offsetOf(text.value, pos.line, pos.column);
      const len = p.length ?? (p.start != null && p.end != null ? p.end - p.start : 0);
      text.focus();
      text.setSelectionRange(at, at + len);
      // Scroll the line into view: rows are of equal height.
      const lh = parseFloat(getComputedStyle(text).lineHeight) || 18;
      text.scrollTop = Math.max(0, (pos.line - 5) * lh);
      cursor();
    }
    function showProblems(problems, ok) {
      problemsBox.setAttribute('data-state', ok && !problems.length ? 'ok' : 'problems');
      if (!problems.length) {
        problemsBox.replaceChildren(h('p', { class: 'ok', test: 'editor-ok' }, ok ? 'No problems: the files compile.' : 'Not checked yet.'));
        return;
      }
      problemsBox.replaceChildren(h('ul', { class: 'problems' }, problems.map((p) => {
        const pos = problemPos(p);
        const loc = `${p.file ?? '?'}${pos ? `:${pos.line}:${pos.column}` : ''}`;
        const [first, ...rest] = String(p.message || '').split('\n');
        return h('li', { test: 'problem', 'data-code': p.code, 'data-file': p.file, 'data-line': pos?.line },
          h('strong', { class: 'code-tag', test: 'problem-code' }, p.code), ' ',
          pos ? h('button', { type: 'button', class: 'link', test: 'problem-location', 'aria-label': `Go to ${loc}`,
            onclick: () => jump(p, pos) }, loc) : h('span', {}, loc),
          p.rule ? [' in rule ', h('code', {}, p.rule)] : null, ': ',
          h('span', { test: 'problem-message' }, first),
          p.hint ? h('div', { class: 'hint-line', test: 'problem-hint' }, `hint: ${p.hint}`) : null,
          p.line != null ? problemExcerpt(files[p.file], p, pos) : (rest.length ? h('pre', { class: 'excerpt' }, rest.join('\n')) : null));
      })));
    }
    function showCheck(r) {
      const problems = r.problems || [];
      showProblems(problems, r.ok);
      summary.textContent = problems.length ? `${problems.length} problem${problems.length === 1 ? '' : 's'}.`
        : r.ok ? 'No problems.' : '';
      changesBox.replaceChildren((r.changes || []).length ? h('div', { class: 'table-wrap' }, ruleChangesTable('editor-changes-table', r.changes))
        : h('p', {}, 'No rule differs from what runs now.'));
      approvalBox.replaceChildren(h('h3', {}, 'Needs approval by another person because'), approvalList(r.needs_approval, 'editor-approval'));
    }
    async function check() {
      const my = ++seq;
      problemsBox.setAttribute('data-state', 'checking');
      try {
        const r = await post('/v1/policies/check', { files });
        if (my !== seq || !alive()) return;
        last = r;
        showCheck(r);
      } catch (e) {
        if (my === seq && alive()) { problemsBox.setAttribute('data-state', 'error'); fail(e); }
      }
    }
    text.addEventListener('input', () => {
      files[current] = text.value;
      if ((files[current] !== orig[current]) !== /\(edited\)$/.test(picker.selectedOptions[0]?.textContent || '')) fillPicker();
      problemsBox.setAttribute('data-state', 'checking');
      clearTimeout(timer);
      timer = setTimeout(() => { if (alive()) check(); }, 300);
      cursor();
    });
    for (const ev of ['keyup', 'click', 'focus']) text.addEventListener(ev, cursor);
    picker.addEventListener('change', () => { files[current] = text.value; showFile(picker.value); });

    const revert = h('button', { type: 'button', test: 'editor-revert', onclick: () => {
      files[current] = orig[current] ?? '';
      showFile(current);
      check();
      say(`${current}: edits undone.`);
    } }, 'Undo edits to this file');
    const newName = h('input', { test: 'editor-new-name', placeholder: 'name.toml or lists/name.toml', size: 28 });
    const addFile = h('button', { type: 'button', test: 'editor-new', onclick: () => {
      const n = newName.value.trim();
      if (!/^(lists\/)?[A-Za-z0-9_.-]+\.toml$/.test(n)) { say('A file name ends in .toml (lists/ for value lists).', 'error'); return; }
      if (!(n in files)) files[n] = '';
      newName.value = '';
      showFile(n);
      text.focus();
    } }, 'Add file');
    const form = h('form', { class: 'card', test: 'editor-save-form', onsubmit: act(async () => {
      clearTimeout(timer);
      files[current] = text.value;
      if (!message.value.trim()) { message.focus(); throw new Error('describe the change in the message'); }
      const body = { message: message.value.trim(), files };
      if (parent != null) body.parent = parent;
      try {
        const v = await post('/v1/versions', body);
        say(`Draft ${vlabel(v)} saved.`);
        location.hash = versionHref(v.id);
      } catch (e) {
        if (e.code === 'invalid_policies' && Array.isArray(e.details)) showProblems(e.details, false);
        throw e;
      }
    }) }, field('Message (what changes and why)', message), saveBtn);

    showFile(current);
    const banner = await guardBanner();
    check();
    return h('div', { class: 'editor' }, h('h1', {}, fromId ? `Edit policies from v${fromId}` : 'Edit policies'), rulesTabs('editor'), banner,
      h('p', { class: 'hint' }, fromId ? `Starting from version ${fromId}. ` : `Starting from the running policies (${base.policy_version ?? '?'}). `,
        'Problems are checked as you type. Saving makes a draft version; nothing runs until it is activated.',
        source === 'files' ? ' This server\u2019s policies come from files: a draft can be reviewed and exported, not activated here.' : ''),
      h('div', { class: 'toolbar' }, field('File', picker), revert, field('New file', newName), addFile),
      h('div', { class: 'editor-layout' },
        h('div', { class: 'editor-main' }, field(`Contents of the file`, text), where),
        h('div', { class: 'editor-side' },
          section('Problems', 'editor-problems-section', summary, problemsBox),
          section('Changes against what runs now', 'editor-changes-section', changesBox, approvalBox))),
      form);
  }

  // ---- #/versions --------------------------------------------------------------------------
  function versionRow(v) {
    return h('tr', { 'data-id': v.id, 'data-status': v.status },
      td(h('a', { href: versionHref(v.id), test: 'version-link' }, vlabel(v))), td(statusTag(v.status, 'version-status')),
      td(v.author ?? '—'), td(v.message ?? ''), td(fmtTime(v.created_at)), td(v.origin ?? '—'),
      td((v.needs_approval || []).length ? h('span', { class: 'tag warn', title: v.needs_approval.join('; ') }, `yes (${v.needs_approval.length})`) : 'no'),
      td(v.emergency ? h('span', { class: 'tag bad', title: v.emergency }, 'emergency') : '—'));
  }
  async function viewVersions(alive) {
    const [r, hist, banner] = await Promise.all([get('/v1/versions?limit=50'), get('/v1/lifecycle/history?limit=30').catch(() => ({ events: [] })), guardBanner()]);
    const rows = [...(r.versions || [])];
    const wrap = h('div', { class: 'table-wrap' });
    const more = h('button', { type: 'button', test: 'versions-more' }, 'Older versions');
    const draw = () => wrap.replaceChildren(table('versions-table',
      ['Version', 'Status', 'Author', 'Message', 'Created', 'Origin', 'Needs approval', 'Emergency'], rows.map(versionRow)));
    more.hidden = rows.length < 50;
    more.addEventListener('click', act(async () => {
      const older = await get(`/v1/versions?limit=50&before=${rows[rows.length - 1].id}`);
      if (!alive()) return;
      rows.push(...(older.versions || []));
      more.hidden = (older.versions || []).length < 50;
      draw();
    }));
    draw();
    return h('div', {}, h('h1', {}, 'Policy versions'), rulesTabs('versions'), banner,
      kv([['Running', h('code', {}, r.running ?? '—'), 'running-version'], ['Active version', r.active != null ? h('a', { href: versionHref(r.active) }, `v${r.active}`) : '—'],
        ['Policies come from', r.source === 'files' ? 'files (activate by committing the exported files)' : 'the console', 'policy-source']]),
      h('p', {}, h('a', { href: '#/editor', class: 'button primary', test: 'new-draft' }, 'New draft')),
      wrap, more,
      section('Recent activity', 'lifecycle-history', historyList(hist.events || [], true)));
  }
  function historyList(events, withVersion) {
    if (!events.length) return h('p', {}, 'Nothing yet.');
    return h('ol', { class: 'timeline' }, events.map((e) => h('li', { 'data-kind': e.what },
      h('time', {}, fmtTime(e.at)), ' ', h('strong', {}, String(e.what).replace(/_/g, ' ')), ` by ${e.who ?? '?'}`,
      withVersion && e.version != null ? [' on ', h('a', { href: versionHref(e.version) }, `v${e.version}`)] : null,
      e.details && Object.keys(e.details).length ? h('details', {}, h('summary', {}, 'Details'), pre(e.details)) : null)));
  }

  // ---- #/version/<id> ----------------------------------------------------------------------
  async function viewVersion(alive, id) {
    const [d, list, banner] = await Promise.all([get(`/v1/versions/${enc(id)}`), get('/v1/versions?limit=1').catch(() => ({})), guardBanner()]);
    const v = d.version;
    const mine = S.user && v.author === S.user;
    const canReview = ['draft', 'approved'].includes(v.status);
    const head = kv([
      ['Status', statusTag(v.status, 'version-status')], ['Author', v.author ?? '—', 'version-author'], ['Message', v.message ?? '', 'version-message'],
      ['Created', fmtTime(v.created_at)], ['Origin', v.origin ?? '—'],
      ['Parent', v.parent != null ? h('a', { href: versionHref(v.parent) }, `v${v.parent}`) : '—'], ['Digest', h('code', {}, v.digest ?? '—')],
      ['Activate at', v.activate_at ? fmtTime(v.activate_at) : '—', 'version-activate-at'],
      ['Activated', v.activated_at ? `${fmtTime(v.activated_at)} by ${v.activated_by ?? '?'}` : '—'],
      ['Emergency', v.emergency ? h('span', { class: 'tag bad' }, v.emergency) : '—'],
      ['Needs approval because', approvalList(v.needs_approval, 'version-needs-approval')],
    ], 'version-header');

    // Review: approve or reject with a comment; the server's refusal is shown here too.
    const comment = h('textarea', { rows: 2, test: 'review-comment' });
    const result = h('div', { test: 'review-result', role: 'alert' });
    const refuse = (e) => {
      result.setAttribute('data-code', e.code || '');
      result.replaceChildren(h('p', { class: 'refusal' }, `Refused (${e.code}): ${e.message}`));
    };
    const review = (verb) => act(async () => {
      result.replaceChildren();
      try {
        await post(`/v1/versions/${enc(id)}/${verb}`, { comment: comment.value });
      } catch (e) { refuse(e); throw e; }
      say(`Version ${vlabel(v)} ${verb === 'approve' ? 'approved' : 'rejected'}.`);
      route();
    });
    const reviewCard = h('form', { class: 'card', test: 'review-form', onsubmit: (ev) => ev.preventDefault() }, h('h3', {}, 'Review'),
      mine ? h('p', { class: 'hint', test: 'self-approval-note' }, 'You wrote this version: another person must approve it.') : null,
      field('Comment', comment),
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', class: 'primary', test: 'approve', disabled: !canReview, onclick: review('approve') }, 'Approve'),
        h('button', { type: 'button', test: 'reject', disabled: !canReview, onclick: review('reject') }, mine ? 'Withdraw (reject)' : 'Reject')),
      result);

    // Activation: now, or at a time; an emergency reason (admins) skips the approval.
    const now = h('input', { type: 'radio', name: 'when', value: 'now', checked: true, test: 'activate-now' });
    const later = h('input', { type: 'radio', name: 'when', value: 'at', test: 'activate-later' });
    const at = h('input', { type: 'datetime-local', test: 'activate-at' });
    const emergency = h('input', { test: 'activate-emergency', size: 40 });
    const actResult = h('div', { test: 'activate-result', role: 'alert' });
    const activateCard = h('form', { class: 'card', test: 'activate-form', onsubmit: act(async () => {
      const body = {};
      if (later.checked) {
        if (!at.value) { at.focus(); throw new Error('choose when to activate'); }
        body.at = new Date(at.value).toISOString();
      }
      if (emergency.value.trim()) body.emergency = emergency.value.trim();
      actResult.replaceChildren();
      let r;
      try { r = await post(`/v1/versions/${enc(id)}/activate`, body); } catch (e) {
        actResult.setAttribute('data-code', e.code || '');
        actResult.replaceChildren(h('p', { class: 'refusal' }, `Refused (${e.code}): ${e.message}`));
        throw e;
      }
      say(body.at ? `Version ${vlabel(v)} scheduled for ${fmtTime(body.at)}.`
        : `Version ${vlabel(v)} activated${r.installed?.policy_version ? `: ${r.installed.policy_version} runs now` : ''}.`);
      route();
    }) }, h('h3', {}, 'Activate'),
    list.source === 'files' ? h('p', { class: 'hint' }, 'This server\u2019s policies come from files: export this version and commit its files instead.') : null,
    h('div', { class: 'field check' }, now, h('label', { for: (now.id = nextId('f')) }, 'Now')),
    h('div', { class: 'field check' }, later, h('label', { for: (later.id = nextId('f')) }, 'At a time (your local time)')),
    field('Time', at),
    S.perms.includes('admin') ? field('Emergency reason (skips approval; admins only)', emergency) : null,
    h('button', { type: 'submit', class: 'primary', test: 'activate', disabled: ['active', 'rejected'].includes(v.status) }, 'Activate'), actResult);

    const rbReason = h('input', { test: 'rollback-reason', size: 40, required: true });
    const rollbackCard = v.activated_at && v.status !== 'active' ? h('form', { class: 'card', test: 'rollback-form', onsubmit: act(async () => {
      const r = await post(`/v1/versions/${enc(id)}/rollback`, { reason: rbReason.value });
      say(`Rolled back to ${vlabel(v)}: ${vlabel(r.version)} runs now.`);
      location.hash = versionHref(r.version.id);
    }) }, h('h3', {}, 'Roll back to this version'), field('Reason', rbReason),
    h('button', { type: 'submit', test: 'rollback' }, `Roll back to ${vlabel(v)}`)) : null;

    const maxEvents = h('input', { type: 'number', min: 1, test: 'backtest-max', placeholder: 'all' });
    const backtestCard = h('form', { class: 'card', test: 'backtest-form', onsubmit: act(async () => {
      const body = { version: v.id };
      if (maxEvents.value) body.max_events = Number(maxEvents.value);
      const b = await post('/v1/backtests', body);
      say(`Backtest ${b.id} started.`);
      location.hash = backtestHref(b.id);
    }) }, h('h3', {}, 'Backtest'), h('p', { class: 'hint' }, 'Replays this server\u2019s history with this version beside what runs now.'),
    field('Events at most (optional)', maxEvents), h('button', { type: 'submit', test: 'backtest-start' }, 'Start backtest'));

    const exportBox = h('div', { test: 'export-files' });
    const exportCard = h('div', { class: 'card', test: 'export' }, h('h3', {}, 'Export'),
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', test: 'export-show', onclick: act(async () => {
          const x = await get(`/v1/versions/${enc(id)}/export`);
          put(exportBox, h('p', {}, `Digest ${x.digest}`), Object.entries(x.files || {}).map(([n, t]) =>
            h('details', {}, h('summary', {}, n), h('pre', { class: 'payload' }, t))));
        }) }, 'Show files'),
        h('button', { type: 'button', test: 'export-download', onclick: act(async () => {
          download(`argus-${vlabel(v)}.json`, await get(`/v1/versions/${enc(id)}/export`));
          say(`Downloaded ${vlabel(v)} as JSON.`);
        }) }, 'Download as JSON'),
        h('a', { href: `#/editor/${enc(id)}`, class: 'button', test: 'edit-from' }, 'New draft from this version')),
      exportBox);

    // The diff, against what runs now or another version.
    // A draft against what runs now; a version that ran (or is scheduled) against its parent.
    const against = h('input', { type: 'number', min: 1, test: 'diff-against', placeholder: 'running',
      value: v.status !== 'draft' && v.status !== 'approved' && v.parent != null ? v.parent : null });
    const diffBox = h('div', { test: 'version-diff' });
    async function loadDiff() {
      const q = against.value ? `?against=${enc(against.value)}` : '';
      const r = await get(`/v1/versions/${enc(id)}/diff${q}`);
      if (!alive()) return;
      const df = r.diff || {};
      put(diffBox, h('p', {}, `Against ${typeof r.against === 'number' ? `v${r.against}` : r.against ?? 'running'}.`),
        h('h3', {}, 'Rules'), ruleChangesTable('diff-rules', df.rules),
        (df.thresholds || []).length ? [h('h3', {}, 'Thresholds'), h('ul', { test: 'diff-thresholds' }, df.thresholds.map((t) => h('li', {}, json(t))))] : null,
        h('h3', {}, 'Files'), (df.files || []).length ? (df.files || []).map((f) => h('details', { open: true, class: 'file-diff' },
          h('summary', {}, `${f.file} (${f.change})`), unifiedDiff(f.diff, 'diff-file'))) : h('p', {}, 'No file differs.'));
    }
    const diffSection = section('What it changes', 'version-diff-section',
      h('form', { class: 'toolbar', onsubmit: act(loadDiff) }, field('Against version (empty: what runs now)', against),
        h('button', { type: 'submit', test: 'diff-load' }, 'Compare')), diffBox);
    await loadDiff().catch((e) => diffBox.replaceChildren(h('p', { class: 'refusal' }, `No diff: ${e.message}`)));

    return h('div', { class: 'version' }, h('h1', {}, 'Version ', h('span', { test: 'version-id', 'data-id': v.id }, vlabel(v))),
      rulesTabs('versions'), banner, head,
      h('div', { class: 'forms' }, reviewCard, activateCard, backtestCard, rollbackCard, exportCard),
      diffSection,
      section('Reviews', 'version-reviews', (d.reviews || []).length ? h('ul', {}, d.reviews.map((r) => h('li', { 'data-verdict': r.verdict },
        h('strong', {}, r.verdict), ` by ${r.reviewer} at ${fmtTime(r.at)}`, r.comment ? ` — ${r.comment}` : ''))) : h('p', {}, 'No review yet.')),
      section('Backtests', 'version-backtests', table('version-backtests-table', ['Backtest', 'Status', 'Started', 'Events', 'Changed'],
        (d.backtests || []).map((b) => h('tr', {}, td(h('a', { href: backtestHref(b.id) }, `#${b.id}`)), td(statusTag(b.status)),
          td(fmtTime(b.created_at)), td(b.summary?.events ?? '—'), td(b.summary?.changed ?? '—'))))),
      section('History', 'version-history', historyList(d.history || [], false)));
  }

  // ---- #/backtest/<id> ---------------------------------------------------------------------
  const num = (x, digits = 2) => (x == null ? '—' : typeof x === 'number' && !Number.isInteger(x) ? x.toFixed(digits) : String(x));
  function backtestSummary(s) {
    const c = s.control || {}, k = s.candidate || {};
    const actions = [...new Set([...Object.keys(c.actions || {}), ...Object.keys(k.actions || {})])];
    const rules = [...new Set([...Object.keys(c.rules || {}), ...Object.keys(k.rules || {})])].sort();
    const fr = s.friction || {};
    const cl = c.labelled || {}, kl = k.labelled || {};
    return h('div', { test: 'backtest-summary' },
      kv([['Events', s.events, 'bt-events'], ['Decided', s.decided], ['Changed decisions', s.changed, 'bt-changed'],
        ['Changes kept', s.changes_kept], ['Control', h('code', {}, s.control_version ?? '—')], ['Candidate', h('code', {}, s.candidate_version ?? '—')],
        ['Speed', s.events_per_second != null ? `${Math.round(s.events_per_second)} events/s` : '—'],
        ['Labels', s.labels ? `${s.labels.events ?? 0} labelled event(s), ${s.labels.actors_fraud ?? 0} fraud / ${s.labels.actors_legit ?? 0} legitimate actor(s)` : '—']]),
      h('div', { class: 'forms' },
        section('Transitions', 'bt-transitions-section', table('backtest-transitions', ['From → to', 'Events'],
          Object.entries(s.transitions || {}).sort((a, b) => b[1] - a[1]).map(([t, n]) => h('tr', { 'data-transition': t }, td(t), td(n))))),
        section('Actions', 'bt-actions-section', table('backtest-actions', ['Action', 'Control', 'Candidate', 'Difference'],
          actions.map((a) => { const x = c.actions?.[a] ?? 0, y = k.actions?.[a] ?? 0; return h('tr', { 'data-action': a }, td(a), td(x), td(y), td(`${y - x >= 0 ? '+' : ''}${y - x}`)); })))),
      section('Against labels', 'bt-labelled-section', table('backtest-labelled', ['', 'Control', 'Candidate'], [
        ['Precision', pct(cl.precision), pct(kl.precision)], ['Recall', pct(cl.recall), pct(kl.recall)],
        ['Money caught', num(cl.money_caught), num(kl.money_caught)], ['Money lost', num(cl.money_lost), num(kl.money_lost)],
        ['False positives', num(cl.false_positives), num(kl.false_positives)]].map(([n, x, y]) => h('tr', {}, td(n), td(x), td(y))))),
      section('Rules', 'bt-rules-section', table('backtest-rules', ['Rule', 'Hits (control)', 'Hits (candidate)', 'Precision', 'Recall', 'Money caught', 'Shadow'],
        rules.map((r) => { const x = c.rules?.[r] || {}, y = k.rules?.[r] || {}; return h('tr', { 'data-rule': r }, td(h('code', {}, r)), td(x.hits ?? 0), td(y.hits ?? 0),
          td(pct(y.precision ?? x.precision)), td(pct(y.recall ?? x.recall)), td(num(y.money_caught ?? x.money_caught)), td((y.shadow ?? x.shadow) ? 'yes' : 'no')); }))),
      section('Friction for honest users', 'backtest-friction', kv([
        ['Honest users with added friction', fr.honest_users_added ?? 0, 'bt-honest-added'],
        ['Confirmed legitimate users with added friction', fr.confirmed_legit_users_added ?? 0],
        ['Users relieved', fr.users_relieved ?? 0],
        ['Examples', (fr.examples || []).length ? h('span', {}, fr.examples.map((u, i) => [i ? ', ' : '', h('a', { href: entityHref('user', u) }, u)])) : '—']])));
  }
  function firedList(list) {
    if (!(list || []).length) return '—';
    return h('ul', { class: 'fired' }, list.map((f) => h('li', { 'data-rule': f.rule }, h('code', {}, f.rule), ` ${f.action ?? ''}`,
      f.score != null ? ` (${f.score})` : '',
      readsOf(f.reads).length ? h('span', { class: 'reads' }, ' read ', readsOf(f.reads).map(([k, v], i) => [i ? ', ' : '', h('code', {}, k), ` = ${json(v)}`])) : null)));
  }
  function changeRow(c) {
    return h('tr', { test: 'change-row', 'data-event': c.event_id, 'data-from': c.from, 'data-to': c.to,
      'data-added': (c.added || []).map((f) => f.rule).join(' '), 'data-removed': (c.removed || []).map((f) => f.rule).join(' ') },
      td(c.event_id), td(fmtTime(c.time)), td(c.actor != null ? h('a', { href: entityHref('user', c.actor) }, json(c.actor)) : '—'), td(c.checkpoint),
      td(h('span', { class: `act act-${c.from}` }, c.from), ' → ', h('span', { class: `act act-${c.to}` }, c.to),
        h('div', { class: 'hint' }, `score ${c.score_from ?? '—'} → ${c.score_to ?? '—'}`)),
      td(firedList(c.added)), td(firedList(c.removed)),
      td(c.label ? h('span', { class: `tag ${c.label === 'fraud' ? 'bad' : 'good'}` }, c.label) : '—'),
      td((c.errors || []).length ? h('details', {}, h('summary', {}, `${c.errors.length}`), h('ul', {}, c.errors.map((e) => h('li', {}, `${e.rule}: ${e.error}`)))) : '0'));
  }
  async function viewBacktest(alive, id) {
    let b = await get(`/v1/backtests/${enc(id)}`);
    const status = h('p', { test: 'backtest-status', role: 'status', 'aria-live': 'polite' });
    const body = h('div');
    const changesWrap = h('div', { class: 'table-wrap' });
    const more = h('button', { type: 'button', test: 'changes-more', hidden: true }, 'More changes');
    const rows = [];
    let next = null;
    async function loadChanges() {
      const p = new URLSearchParams({ limit: '100' });
      if (next != null) p.set('from', next);
      const r = await get(`/v1/backtests/${enc(id)}/changes?${p}`);
      if (!alive()) return;
      rows.push(...(r.changes || []).map(changeRow));
      next = r.next ?? null;
      more.hidden = next == null || (r.changes || []).length < 100;
      changesWrap.replaceChildren(table('backtest-changes', ['Event', 'Time', 'Actor', 'Checkpoint', 'Decision', 'Rules added', 'Rules removed', 'Label', 'Errors'], rows,
        `Decisions that change (${rows.length} shown of ${b.summary?.changed ?? '?'})`));
    }
    more.addEventListener('click', act(loadChanges));
    async function show() {
      status.setAttribute('data-status', b.status);
      status.textContent = b.status === 'running' ? `Backtest ${b.id} of v${b.version} is running…`
        : b.status === 'done' ? `Backtest ${b.id} of v${b.version} is done (${fmtTime(b.finished_at)}).` : `Backtest ${b.id} failed: ${b.error || 'no reason given'}`;
      if (b.status === 'done' && b.summary) {
        body.replaceChildren(backtestSummary(b.summary), section('Decision diff', 'backtest-changes-section', changesWrap, more));
        await loadChanges();
      }
    }
    await show();
    (async () => {
      while (b.status === 'running' && alive()) {
        await new Promise((r) => setTimeout(r, 700));
        if (!alive()) return;
        b = await get(`/v1/backtests/${enc(id)}`);
        if (b.status !== 'running' && alive()) { await show(); say(status.textContent); }
      }
    })().catch(fail);
    return h('div', {}, h('h1', {}, `Backtest ${id}`), rulesTabs('versions'),
      h('p', {}, h('a', { href: versionHref(b.version), test: 'backtest-version' }, `Version v${b.version}`), b.author ? ` — started by ${b.author} at ${fmtTime(b.created_at)}` : ''),
      status, body);
  }

  // ---- #/approvals -------------------------------------------------------------------------
  async function viewApprovals(alive) {
    const wrap = h('div', { class: 'table-wrap' });
    async function load() {
      const r = await get('/v1/versions?limit=200');
      if (!alive()) return;
      const waiting = (r.versions || []).filter((v) => v.status === 'draft' && (v.needs_approval || []).length);
      wrap.replaceChildren(table('approvals-table', ['Version', 'Author', 'Message', 'Created', 'Why it needs approval', 'Review'],
        waiting.map((v) => {
          const comment = h('input', { test: `comment-${v.id}`, size: 24 });
          const mine = S.user && v.author === S.user;
          const decide = (verb) => act(async () => {
            await post(`/v1/versions/${enc(v.id)}/${verb}`, { comment: comment.value });
            say(`Version ${vlabel(v)} ${verb === 'approve' ? 'approved' : 'rejected'}.`);
            await load();
          });
          return h('tr', { 'data-id': v.id }, td(h('a', { href: versionHref(v.id), test: 'version-link' }, vlabel(v))), td(v.author),
            td(v.message), td(fmtTime(v.created_at)), td(approvalList(v.needs_approval)),
            td(field(`Comment on ${vlabel(v)}`, comment), mine ? h('p', { class: 'hint' }, 'Yours: another person must approve it.') : null,
              h('div', { class: 'toolbar' },
                h('button', { type: 'button', class: 'primary small', test: `approve-${v.id}`, 'aria-label': `Approve ${vlabel(v)}`, onclick: decide('approve') }, 'Approve'),
                h('button', { type: 'button', class: 'small', test: `reject-${v.id}`, 'aria-label': `Reject ${vlabel(v)}`, onclick: decide('reject') }, 'Reject'))));
        }), 'Drafts waiting for another person\u2019s approval'));
    }
    const banner = await guardBanner();
    await load();
    return h('div', {}, h('h1', {}, 'Approvals'), rulesTabs('approvals'), banner,
      h('div', { class: 'toolbar' }, h('button', { type: 'button', test: 'approvals-refresh', onclick: act(load) }, 'Refresh')), wrap);
  }

  // ---- #/rollout ---------------------------------------------------------------------------
  async function viewRollout(alive) {
    const cur = h('div', { test: 'rollout-current' });
    const arms = h('div', { test: 'rollout-live' });
    const stop = h('button', { type: 'button', test: 'rollout-stop', onclick: act(async () => {
      await post('/v1/rollout/stop'); say('Rollout stopped.'); await load();
    }) }, 'Stop rollout');
    const promote = h('button', { type: 'button', class: 'primary', test: 'rollout-promote', onclick: act(async () => {
      const r = await post('/v1/rollout/promote'); say(`Rollout promoted${r?.version ? `: ${vlabel(r.version)} runs for everyone` : ''}.`); await load();
    }) }, 'Promote to everyone');
    const versionSel = h('select', { test: 'rollout-version' });
    const percent = h('input', { type: 'number', min: 0, max: 100, step: 'any', value: 5, test: 'rollout-percent' });
    let timer = null;
    async function load() {
      clearTimeout(timer);
      const [r, vs] = await Promise.all([get('/v1/rollout'), get('/v1/versions?limit=100')]);
      if (!alive()) return;
      const ro = r.rollout, live = r.live || {};
      cur.replaceChildren(ro ? kv([['Version', h('a', { href: versionHref(ro.version) }, `v${ro.version}`), 'rollout-version-link'],
        ['Share of actors', `${(ro.basis_points / 100).toFixed(2)} %`, 'rollout-share'], ['Started', `${fmtTime(ro.started_at)} by ${ro.started_by}`],
        ['Salt', h('code', {}, ro.salt ?? '—')]]) : h('p', { test: 'rollout-none' }, 'No rollout is running.'));
      stop.disabled = promote.disabled = !ro;
      const ac = live.arms?.control || {}, ak = live.arms?.candidate || {};
      const acts = [...new Set([...Object.keys(ac.actions || {}), ...Object.keys(ak.actions || {})])].sort();
      arms.replaceChildren(kv([['Control', h('code', {}, live.control_version ?? '—')], ['Candidate', h('code', {}, live.candidate_version ?? '—')]]),
        table('rollout-arms', ['', 'Control', 'Candidate'], [['Decisions', ac.decisions, ak.decisions],
          ...acts.map((a) => [`Action ${a}`, ac.actions?.[a] ?? 0, ak.actions?.[a] ?? 0]),
          ['Disagreements', ac.disagreements, ak.disagreements], ['Fallbacks', ac.fallbacks, ak.fallbacks]]
          .map(([n, x, y]) => h('tr', {}, td(n), td(x ?? '—'), td(y ?? '—')))));
      const cands = (vs.versions || []).filter((v) => ['draft', 'approved'].includes(v.status));
      const keep = versionSel.value;
      versionSel.replaceChildren(...cands.map((v) => h('option', { value: v.id, selected: String(v.id) === keep },
        `${vlabel(v)} (${v.status}) — ${v.message}`)));
      if (ro && alive()) timer = setTimeout(() => { if (alive()) load().catch(fail); }, 5000);
    }
    const start = h('form', { class: 'card', test: 'rollout-form', onsubmit: act(async () => {
      if (!versionSel.value) throw new Error('choose a version');
      await post('/v1/rollout', { version: Number(versionSel.value), percent: Number(percent.value) });
      say(`Rollout of v${versionSel.value} to ${percent.value} % of actors started.`);
      await load();
    }) }, h('h2', {}, 'Start a rollout'), h('div', { class: 'toolbar' }, field('Version', versionSel), field('Percent of actors', percent),
      h('button', { type: 'submit', class: 'primary', test: 'rollout-start' }, 'Start')));
    const banner = await guardBanner();
    await load();
    return h('div', {}, h('h1', {}, 'Rollout'), rulesTabs('rollout'), banner,
      section('Current rollout', 'rollout-current-section', cur, h('div', { class: 'toolbar' }, stop, promote,
        h('button', { type: 'button', test: 'rollout-refresh', onclick: act(load) }, 'Refresh'))),
      section('Live comparison of the arms', 'rollout-live-section', arms), start);
  }

  // ---- #/guard -----------------------------------------------------------------------------
  async function viewGuard(alive) {
    const pausesBox = h('div', { class: 'table-wrap' }), learnedBox = h('div', { class: 'table-wrap' }), configBox = h('div');
    const snoozeBox = h('div', { class: 'table-wrap' });
    async function load() {
      const [g, sn] = await Promise.all([get('/v1/guard'), get('/v1/snoozes')]);
      if (!alive()) return;
      pausesBox.replaceChildren(table('guard-pauses', ['Pause', 'Rule', 'Checkpoint', 'Cause', 'Figures', 'Paused', 'Case', 'Resumed', ''],
        (g.pauses || []).map((p) => {
          const reason = h('input', { test: `resume-reason-${p.id}`, size: 14 });
          return h('tr', { 'data-id': p.id, 'data-resumed': p.resumed_at ? 'true' : 'false' }, td(p.id), td(h('code', {}, p.rule)), td(p.checkpoint ?? '—'), td(p.cause ?? '—'),
            td(p.details && typeof p.details === 'object'
              ? kv(Object.entries(p.details).filter(([k]) => !['rule', 'checkpoint', 'cause'].includes(k)).map(([k, v]) => [k.replace(/_/g, ' '), json(v)]))
              : json(p.details ?? '—')),
            td(fmtTime(p.paused_at)), td(p.case_id ? h('a', { href: caseHref(p.case_id) }, p.case_id) : '—'),
            td(p.resumed_at ? `${fmtTime(p.resumed_at)} by ${p.resumed_by ?? '?'}` : 'paused'),
            td(p.resumed_at ? null : h('form', { onsubmit: act(async () => {
              if (!reason.value.trim()) { reason.focus(); throw new Error('a reason is required to resume a rule'); }
              await post(`/v1/guard/pauses/${enc(p.id)}/resume`, { reason: reason.value.trim() });
              say(`Rule ${p.rule} resumed.`);
              await load();
            }) }, field(`Reason to resume ${p.rule}`, reason), h('button', { type: 'submit', class: 'small', test: `resume-${p.id}` }, 'Resume'))));
        })));
      const st = g.state || {};
      configBox.replaceChildren(kv(Object.entries(st.config || {}).map(([k, v]) => [k.replace(/_/g, ' '), json(v)]), 'guard-config'));
      learnedBox.replaceChildren(table('guard-learned', ['Checkpoint', 'Rule', 'Hits', 'Events', 'Baseline rate', 'Paused'],
        (st.learned || []).map((l) => h('tr', {}, td(l.checkpoint), td(h('code', {}, l.rule)), td(l.hits), td(l.events), td(pct(l.baseline)),
          td((st.paused || []).some((p) => (p.rule ?? p) === l.rule) ? 'yes' : 'no')))));
      snoozeBox.replaceChildren(table('snoozes-table', ['Snooze', 'Rule', 'Entity', 'Until', 'Reason', 'By', 'Case', ''],
        (sn.snoozes || []).map((s) => h('tr', { 'data-id': s.id }, td(s.id), td(h('code', {}, s.rule)), td(`${s.kind} `, h('a', { href: entityHref(s.kind, s.value) }, s.value)),
          td(fmtTime(s.until)), td(s.reason ?? ''), td(s.author ?? '—'), td(s.case_id ? h('a', { href: caseHref(s.case_id) }, s.case_id) : '—'),
          td(h('button', { type: 'button', class: 'small', test: `snooze-remove-${s.id}`, 'aria-label': `End the snooze of ${s.rule} for ${s.kind} ${s.value}`,
            onclick: act(async () => { await api('DELETE', `/v1/snoozes/${enc(s.id)}`); say(`Snooze ${s.id} ended.`); await load(); }) }, 'End now'))))));
    }
    const rule = h('input', { test: 'snooze-rule', required: true });
    const kind = h('input', { test: 'snooze-kind', required: true, value: 'user' });
    const value = h('input', { test: 'snooze-value', required: true });
    const ttl = h('input', { test: 'snooze-ttl', placeholder: 'e.g. 24h, 7d' });
    const until = h('input', { type: 'datetime-local', test: 'snooze-until' });
    const reason = h('input', { test: 'snooze-reason', required: true, size: 40 });
    const caseId = h('input', { test: 'snooze-case' });
    const add = h('form', { class: 'card', test: 'snooze-form', onsubmit: act(async () => {
      const body = { rule: rule.value.trim(), kind: kind.value.trim(), value: value.value.trim(), reason: reason.value.trim() };
      if (until.value) body.until = new Date(until.value).toISOString(); else body.ttl = ttl.value.trim() || '24h';
      if (caseId.value.trim()) body.case_id = caseId.value.trim();
      const s = await post('/v1/snoozes', body);
      say(`Rule ${s.rule} snoozed for ${s.kind} ${s.value} until ${fmtTime(s.until)}.`);
      for (const el of [rule, value, ttl, until, reason, caseId]) el.value = '';
      await load();
    }) }, h('h3', {}, 'Snooze a rule for one entity'),
    h('div', { class: 'toolbar' }, field('Rule', rule), field('Entity kind', kind), field('Entity', value)),
    h('div', { class: 'toolbar' }, field('For (duration)', ttl), field('Or until', until), field('Case (optional)', caseId)),
    field('Reason', reason), h('button', { type: 'submit', test: 'snooze-add' }, 'Snooze'));
    const banner = await guardBanner();
    await load();
    return h('div', {}, h('h1', {}, 'Guard & snoozes'), rulesTabs('guard'), banner,
      section('Rules the guard paused', 'guard-pauses-section', pausesBox),
      section('What the guard learned', 'guard-learned-section', learnedBox),
      section('Guard settings', 'guard-config-section', configBox),
      section('Snoozes', 'snoozes-section', snoozeBox, add));
  }

  // ---- start -------------------------------------------------------------------------------
  async function init() {
    try { setSession(await get('/v1/session')); } catch (e) { if (e.status !== 401) fail(e); }
    window.addEventListener('hashchange', route);
    route();
  }
  init();
})();
