// End-to-end test of the Argus console in headless Chromium (the system's /usr/bin/chromium; no
// browser is downloaded). Run by the server's Rust test against a seeded server:
//   ARGUS_URL=http://127.0.0.1:PORT ARGUS_USER=... ARGUS_PASSWORD=... [ARGUS_INBOX=rings]
//   [ARGUS_SCREENSHOTS=dir] node e2e.mjs
// Phase "case" (default): log in, claim the next case of ARGUS_INBOX (a ring), look at its graph,
// resolve it as confirmed fraud banning the ring, and print {"case", "members"} as one JSON line.
// Phase "entity" (ARGUS_PHASE=entity ARGUS_ENTITY=<user id>): check that user's lists and labels.
// Exit 0 on success; on failure print the error, save failure.png and exit 1.
// ARGUS_CONSOLE_DIR=crates/argus_server/console serves the console's files from disk instead of the
// server's built-in copies (to try console edits without rebuilding the server).
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const BASE = (process.env.ARGUS_URL || 'http://127.0.0.1:7878').replace(/\/+$/, '');
const USER = process.env.ARGUS_USER || '';
const PASSWORD = process.env.ARGUS_PASSWORD || '';
const INBOX = process.env.ARGUS_INBOX || 'rings';
const SHOTS = process.env.ARGUS_SCREENSHOTS || '.';
const PHASE = process.env.ARGUS_PHASE || 'case';
const ENTITY = process.env.ARGUS_ENTITY || '';
const CONSOLE_DIR = process.env.ARGUS_CONSOLE_DIR || '';
const T = 15_000;

const sel = (test) => `[data-test="${test}"]`;
const shot = (page, name) => page.screenshot({ path: join(SHOTS, name), fullPage: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function login(page) {
  await page.goto(`${BASE}/console/`, { waitUntil: 'load' });
  await page.waitForSelector(sel('login-user'));
  await page.fill(sel('login-user'), USER);
  await page.fill(sel('login-password'), PASSWORD);
  await page.click(sel('login-submit'));
  await page.waitForFunction((u) => document.querySelector('[data-test="whoami"]')?.textContent.startsWith(u), USER);
}

async function casePhase(page) {
  // 1-2. The queue: pick the inbox, claim the next case.
  await page.click(sel('nav-queue'));
  await page.waitForSelector(`${sel('inbox-select')} option[value="${INBOX}"]`, { state: 'attached' });
  await page.selectOption(sel('inbox-select'), INBOX);
  await page.waitForSelector(`${sel('case-table')}[data-inbox="${INBOX}"]`);
  await shot(page, '01-queue.png');
  await page.click(sel('next-case'));
  await page.waitForFunction(() => location.hash.startsWith('#/case/')
    || document.querySelector('[data-test="messages"]').textContent.startsWith('No case'));
  check(/#\/case\/[^/]+$/.test(page.url()), `a case was claimed from ${INBOX} (${await page.textContent(sel('messages'))})`);
  await page.waitForSelector(sel('case-subject'));
  const kind = await page.getAttribute(sel('case-subject'), 'data-kind');
  check(kind === 'ring', `the claimed case's subject is a ring (it is ${kind})`);
  const caseId = (await page.textContent(sel('case-id'))).trim();
  const members = await page.$$eval(`${sel('case-members')} ${sel('member')}`, (els) => els.map((e) => e.dataset.id));
  check(members.length >= 2, `the ring case lists its members (${members.length})`);
  await shot(page, '02-case.png');

  // 3. The linked-accounts graph: at least 3 accounts, expand one.
  await page.click(sel('open-graph'));
  await page.waitForURL(/#\/graph\//);
  const accounts = `${sel('graph-svg')} ${sel('graph-node')}[data-type="account"]`;
  await page.waitForFunction((s) => document.querySelectorAll(s).length >= 3, accounts, { timeout: T });
  const before = await page.$$eval(`${sel('graph-svg')} ${sel('graph-node')}`, (els) => els.length);
  let target = await page.$(`${accounts}[data-expanded="false"]`);
  if (!target) target = await page.$(accounts);
  const nodeId = await target.getAttribute('data-id');
  await target.focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${accounts}[data-id="${nodeId}"][data-expanded="true"]`);
  const after = await page.$$eval(`${sel('graph-svg')} ${sel('graph-node')}`, (els) => els.length);
  check(after >= before, 'expanding a node keeps the graph');
  await shot(page, '03-graph.png');

  // 4. Back to the case: confirmed fraud, ban the ring, wait for the case and its actions.
  await page.goBack();
  await page.waitForURL(/#\/case\/[^/]+$/);
  await page.waitForSelector(sel('verdict-disposition'));
  await page.selectOption(sel('verdict-disposition'), 'confirmed_fraud');
  await page.check(sel('verdict-ban'));
  await page.fill(sel('verdict-reason'), 'e2e: coupon ring sharing devices and payout accounts');
  await page.click(sel('verdict-submit'));
  await page.waitForFunction(() => document.querySelector('[data-test="case-status"]')?.textContent.trim() === 'resolved',
    null, { timeout: T });
  const actions = await page.waitForFunction(() => {
    const st = [...document.querySelectorAll('[data-test="case-actions"] [data-test="action-status"]')].map((e) => e.textContent.trim());
    if (st.includes('failed')) return 'failed';
    return st.length > 0 && st.every((s) => s === 'done') ? 'done' : false;
  }, null, { timeout: T, polling: 250 });
  check((await actions.jsonValue()) === 'done', 'every action of the verdict is done (one failed)');
  await shot(page, '04-verdict.png');
  return { case: /^\d+$/.test(caseId) ? Number(caseId) : caseId, members };
}

async function entityPhase(page) {
  check(ENTITY, 'ARGUS_ENTITY is set');
  await page.evaluate((h) => { location.hash = h; }, `#/entity/user/${encodeURIComponent(ENTITY)}`);
  await page.waitForSelector(sel('entity-lists'));
  await page.waitForFunction(() => document.querySelector('[data-test="entity-lists"]').textContent.includes('banned_users'),
    null, { timeout: T });
  await page.waitForFunction(() => document.querySelector('[data-test="entity-labels"]').textContent.includes('fraud.confirmed'),
    null, { timeout: T });
  await shot(page, '05-entity.png');
}

mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(T);
if (CONSOLE_DIR) {
  const types = { html: 'text/html', js: 'text/javascript', css: 'text/css' };
  await page.route(/\/console\/(index\.html|app\.js|app\.css)?(\?.*)?$/, (route) => {
    const file = new URL(route.request().url()).pathname.replace(/^\/console\/?/, '') || 'index.html';
    route.fulfill({ status: 200, contentType: types[file.split('.').pop()], body: readFileSync(join(CONSOLE_DIR, file)) });
  });
}
page.setDefaultNavigationTimeout(T);
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
let code = 0;
try {
  await login(page);
  if (PHASE === 'entity') {
    await entityPhase(page);
  } else {
    process.stdout.write(`${JSON.stringify(await casePhase(page))}\n`);
  }
} catch (e) {
  code = 1;
  console.error(`console e2e (${PHASE}) failed: ${e && e.stack ? e.stack : e}`);
  try { console.error(`at ${page.url()}; message: ${await page.textContent(sel('messages'), { timeout: 1000 })}`); } catch {}
  for (const line of pageErrors) console.error(line);
  try { await shot(page, 'failure.png'); } catch (err) { console.error(`no failure screenshot: ${err.message}`); }
}
await browser.close().catch(() => {});
process.exit(code);
