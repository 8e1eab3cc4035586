// Argus analyst console: a single-page app over the /v1 API, no framework and no build step.
// Every string from the API reaches the DOM as a text node or an attribute value (never as HTML).
'use strict';
(() => {
  const S = { user: null, role: null, csrf: null, after: null, gen: 0, inboxes: null,
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
    constructor(code, message, status) { super(message); this.code = code; this.status = status; }
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
      throw new ApiError(err.code || `http_${res.status}`, err.message || `HTTP ${res.status}`, res.status);
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
    S.user = s.user; S.role = s.role; S.csrf = s.csrf;
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
    [/^\/bulk$/, viewBulk],
  ];
  async function route() {
    const path = location.hash.replace(/^#/, '') || '/queue';
    if (path === 'main') return;
    const gen = ++S.gen;
    const alive = () => gen === S.gen;
    if (!S.user && path !== '/login') { S.after = `#${path}`; location.hash = '#/login'; return; }
    for (const a of document.querySelectorAll('nav a')) {
      if (path.startsWith(a.getAttribute('href').slice(1))) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const found = routes.find(([re]) => re.test(path));
    main.setAttribute('aria-busy', 'true');
    main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
    try {
      const node = found
        ? await found[1](alive, ...path.match(found[0]).slice(1).map(decodeURIComponent))
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
    return h('div', {}, h('h1', {}, 'Sign in'), form);
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
    disp.addEventListener('change', () => { ban.disabled = disp.value !== 'confirmed_fraud'; if (ban.disabled) ban.checked = false; });
    if (ban.id === '') ban.id = nextId('f');
    const verdict = h('form', { class: 'card', test: 'verdict-form', onsubmit: act(async () => {
      const body = { disposition: disp.value, reason: reason.value };
      if (ring) body.ban = ban.checked;
      const r = await post(`/v1/cases/${enc(id)}/verdict`, body);
      say(`Verdict recorded: ${disp.value}${body.ban ? ', ring banned' : ''}; ${(r.actions || []).length} action(s) queued.`);
      polls = 8;
      if (alive()) fill({ ...d, case: r.case || d.case, actions: r.actions || d.actions });
      await reload();
    }) }, h('h3', {}, 'Verdict'), field('Disposition', disp),
    ring ? h('div', { class: 'field check' }, ban, h('label', { for: ban.id }, 'Ban every account of the ring')) : null,
    field('Reason', reason), h('button', { type: 'submit', class: 'primary', test: 'verdict-submit' }, 'Record verdict'));

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
    const r = await get('/v1/rules/stats');
    const rules = [...(r.rules || [])].sort((a, b) => b.hits - a.hits);
    const hours = rules.flatMap((x) => (x.hourly || []).map(([t]) => Math.floor(t / HOUR)));
    const to = hours.length ? Math.max(...hours) : 0, from = hours.length ? Math.max(Math.min(...hours), to - 167) : 0;
    return h('div', {}, h('h1', {}, 'Rules'), table('rules-table',
      ['Rule', 'Checkpoint', 'Hits', 'Precision', 'Confirmed / legitimate', 'Hourly hits'],
      rules.map((x) => h('tr', { 'data-rule': x.rule }, td(h('code', {}, x.rule)), td(x.checkpoint), td(x.hits),
        td(pct(x.precision)), td(`${x.confirmed ?? 0} / ${x.legitimate ?? 0}`), td(sparkline(x.hourly, [from, to]))))),
      hours.length ? h('p', { class: 'hint' }, `Hourly hits from ${fmtTime(from * HOUR)} to ${fmtTime(to * HOUR)} (event time).`) : null,
      h('h2', {}, 'Policy changes'),
      (r.policy_changes || []).length
        ? h('ul', { 'data-test': 'policy-changes' }, [...r.policy_changes].reverse().map((c) => h('li', {}, h('code', {}, c.version), ` installed ${fmtTime(c.at)}`)))
        : h('p', {}, 'No policy installed.'));
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

  // ---- start -------------------------------------------------------------------------------
  async function init() {
    try { setSession(await get('/v1/session')); } catch (e) { if (e.status !== 401) fail(e); }
    window.addEventListener('hashchange', route);
    route();
  }
  init();
})();
