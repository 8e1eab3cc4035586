// Headless Chromium scenario of the console's safe rule change pages (the system's /usr/bin/chromium;
// no browser is downloaded). Run against a server whose policies come from the console
// ([lifecycle] source = "console") and that has order.create history with amounts above 2000:
//   ARGUS_URL=http://127.0.0.1:PORT ARGUS_AUTHOR=<analyst> ARGUS_AUTHOR_PASSWORD=...
//   ARGUS_APPROVER=<investigator> ARGUS_APPROVER_PASSWORD=... [ARGUS_SCREENSHOTS=dir] node rules.mjs
// 1. The author opens the editor on marketplace_integrity.toml and appends a blocking rule with a
//    typo; the live diagnostics show `unknown_name` with a hint for `event.amount` (nothing clicked);
//    the typo is fixed, the problems clear, and the draft is saved.
// 2. A backtest of the draft: its decision diff has an event going to block by big_order_block.
// 3. The author cannot approve their own change; the approver approves it from the Approvals inbox
//    and activates it; its status becomes active.
// Prints {"version": ID} as the last line. Exit 0 on success; on failure print the error, save
// failure.png and exit 1. ARGUS_CONSOLE_DIR=crates/argus_server/console serves the console's files
// from disk instead of the server's built-in copies.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const BASE = (process.env.ARGUS_URL || 'http://127.0.0.1:7878').replace(/\/+$/, '');
const AUTHOR = process.env.ARGUS_AUTHOR || '';
const AUTHOR_PASSWORD = process.env.ARGUS_AUTHOR_PASSWORD || '';
const APPROVER = process.env.ARGUS_APPROVER || '';
const APPROVER_PASSWORD = process.env.ARGUS_APPROVER_PASSWORD || '';
const SHOTS = process.env.ARGUS_SCREENSHOTS || '.';
const CONSOLE_DIR = process.env.ARGUS_CONSOLE_DIR || '';
const FILE = 'marketplace_integrity.toml';
const T = 15_000;
const BACKTEST_T = 120_000;

const sel = (test) => `[data-test="${test}"]`;
const shot = (page, name) => page.screenshot({ path: join(SHOTS, name), fullPage: true });
const goto = (page, hash) => page.evaluate((x) => { location.hash = x; }, hash);

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function login(page, user, password) {
  if (!page.url().startsWith(`${BASE}/console/`)) await page.goto(`${BASE}/console/`, { waitUntil: 'load' });
  await page.waitForSelector(sel('login-user'));
  await page.fill(sel('login-user'), user);
  await page.fill(sel('login-password'), password);
  await page.click(sel('login-submit'));
  await page.waitForFunction((u) => document.querySelector('[data-test="whoami"]')?.textContent.startsWith(`${u} (`), user);
}

async function logout(page) {
  await page.click(sel('nav-logout'));
  await page.waitForSelector(sel('login-user'));
  await page.waitForFunction(() => document.querySelector('[data-test="whoami"]').textContent === '');
}

// 1. The editor: a typo shows up as a live diagnostic, the fix clears it, the draft is saved.
async function editDraft(page) {
  await page.click(sel('nav-rules'));
  await page.waitForSelector(sel('rules-table'));
  await page.click(sel('tab-editor'));
  await page.waitForSelector(sel('editor-text'));
  await page.selectOption(sel('editor-file'), FILE);
  await page.waitForSelector(`${sel('editor-text')}[data-file="${FILE}"]`);
  // The running files compile: the panel says so before any edit.
  await page.waitForSelector(sel('editor-ok'));
  await page.focus(sel('editor-text'));
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\n[[rules]]\nname = "big_order_block"\nwhen = "event.amont > 2000.0"\naction = "block"\nscore = 100\nreason = "very large order"\n');
  // Nothing clicked: the diagnostics come from typing alone.
  const problem = `${sel('problem')}[data-code="unknown_name"][data-file="${FILE}"]`;
  await page.waitForSelector(problem);
  const hint = await page.textContent(`${problem} ${sel('problem-hint')}`);
  check(hint.includes('event.amount'), `the hint suggests event.amount (${hint})`);
  const loc = await page.textContent(`${problem} ${sel('problem-location')}`);
  check(new RegExp(`^${FILE.replace(/\./g, '\\.')}:\\d+:\\d+$`).test(loc.trim()), `the problem shows file:line:column (${loc})`);
  const excerpt = await page.textContent(`${problem} ${sel('problem-excerpt')} mark`);
  check(excerpt === 'event.amont', `the excerpt marks the unknown name (${excerpt})`);
  check(!(await page.$(sel('editor-ok'))), 'no "no problems" state beside a problem');
  await shot(page, 'editor-diagnostics.png');

  const text = await page.inputValue(sel('editor-text'));
  check(text.includes('event.amont > 2000.0'), 'the typed rule is in the editor');
  await page.fill(sel('editor-text'), text.replace('event.amont > 2000.0', 'event.amount > 2000.0'));
  await page.waitForSelector(sel('editor-ok'));
  await page.waitForFunction(() => document.querySelector('[data-test="editor-problems"]').dataset.state === 'ok');
  await page.waitForSelector(`${sel('editor-changes-table')} tr[data-rule="big_order_block"][data-change="added"]`);
  const reasons = await page.textContent(sel('editor-approval'));
  check(reasons.includes('big_order_block'), `the approval reasons name the new rule (${reasons})`);
  await page.fill(sel('editor-message'), 'Block orders above 2000 (rules scenario)');
  await page.click(sel('editor-save'));
  await page.waitForURL(/#\/version\/\d+$/);
  await page.waitForSelector(sel('version-id'));
  const id = Number(await page.getAttribute(sel('version-id'), 'data-id'));
  check(Number.isInteger(id) && id > 0, `the version page shows the new version (${id})`);
  const status = await page.getAttribute(`${sel('version-header')} ${sel('version-status')}`, 'data-status');
  check(status === 'draft', `the new version is a draft (${status})`);
  await page.waitForSelector(`${sel('diff-rules')} tr[data-rule="big_order_block"]`);
  await page.waitForSelector(`${sel('diff-file')} .diff-add`);
  return id;
}

// 2. A backtest of the draft: some event goes to block because of big_order_block.
async function backtest(page, id) {
  await page.click(sel('backtest-start'));
  await page.waitForURL(/#\/backtest\/[^/]+$/);
  await page.waitForFunction(() => ['done', 'failed'].includes(document.querySelector('[data-test="backtest-status"]')?.dataset.status),
    null, { timeout: BACKTEST_T, polling: 250 });
  const st = await page.getAttribute(sel('backtest-status'), 'data-status');
  check(st === 'done', `the backtest is done (${st}: ${await page.textContent(sel('backtest-status'))})`);
  await page.waitForSelector(`${sel('backtest-changes')} ${sel('change-row')}`);
  const rows = await page.$$eval(`${sel('backtest-changes')} ${sel('change-row')}`,
    (els) => els.map((e) => ({ to: e.dataset.to, added: e.dataset.added.split(' ') })));
  check(rows.some((r) => r.to === 'block' && r.added.includes('big_order_block')),
    `a changed decision goes to block by big_order_block (${JSON.stringify(rows.slice(0, 5))})`);
  const version = await page.getAttribute(sel('backtest-version'), 'href');
  check(version === `#/version/${id}`, `the report links its version (${version})`);
  await shot(page, 'backtest.png');
}

// 3. Four eyes: the author is refused, the approver approves from the inbox and activates.
async function approveAndActivate(page, id) {
  await page.click(sel('backtest-version'));
  await page.waitForURL(new RegExp(`#/version/${id}$`));
  await page.waitForSelector(sel('self-approval-note'));
  await page.click(sel('approve'));
  await page.waitForSelector(`${sel('review-result')}[data-code]`);
  const code = await page.getAttribute(sel('review-result'), 'data-code');
  check(['not_allowed', 'forbidden'].includes(code), `the author's approval is refused (${code})`);
  const msg = await page.textContent(sel('messages'));
  check(msg.startsWith('Error:'), `the refusal is announced (${msg})`);
  check((await page.getAttribute(`${sel('version-header')} ${sel('version-status')}`, 'data-status')) === 'draft', 'the version is still a draft');
  await logout(page);

  await login(page, APPROVER, APPROVER_PASSWORD);
  await page.click(sel('nav-approvals'));
  await page.waitForSelector(sel(`approve-${id}`));
  await page.fill(sel(`comment-${id}`), 'Backtest looks right: only orders above 2000 change.');
  await shot(page, 'approvals.png');
  await page.click(sel(`approve-${id}`));
  await page.waitForSelector(sel(`approve-${id}`), { state: 'detached' });
  await page.waitForFunction((v) => document.querySelector('[data-test="messages"]').textContent.includes(`v${v} approved`), id);

  await goto(page, `#/version/${id}`);
  await page.waitForSelector(`${sel('version-header')} ${sel('version-status')}[data-status="approved"]`);
  const reviews = await page.textContent(sel('version-reviews'));
  check(reviews.includes(APPROVER), `the review by ${APPROVER} is listed (${reviews})`);
  await page.check(sel('activate-now'));
  await page.click(sel('activate'));
  await page.waitForSelector(`${sel('version-header')} ${sel('version-status')}[data-status="active"]`);
}

mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(T);
page.setDefaultNavigationTimeout(T);
if (CONSOLE_DIR) {
  const types = { html: 'text/html', js: 'text/javascript', css: 'text/css' };
  await page.route(/\/console\/(index\.html|app\.js|app\.css)?(\?.*)?$/, (route) => {
    const file = new URL(route.request().url()).pathname.replace(/^\/console\/?/, '') || 'index.html';
    route.fulfill({ status: 200, contentType: types[file.split('.').pop()], body: readFileSync(join(CONSOLE_DIR, file)) });
  });
}
const pageErrors = [];
const consoleErrors = [];
page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
// Refused requests (the author's approval) are logged by the browser as errors: kept for a failure's report only.
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`console: ${m.text()}`); });
let code = 0;
try {
  check(AUTHOR && APPROVER && AUTHOR !== APPROVER, 'ARGUS_AUTHOR and ARGUS_APPROVER are set and differ');
  await login(page, AUTHOR, AUTHOR_PASSWORD);
  const id = await editDraft(page);
  await backtest(page, id);
  await approveAndActivate(page, id);
  check(pageErrors.length === 0, `no script error on the pages (${pageErrors.join('; ')})`);
  process.stdout.write(`${JSON.stringify({ version: id })}\n`);
} catch (e) {
  code = 1;
  console.error(`console rules scenario failed: ${e && e.stack ? e.stack : e}`);
  try { console.error(`at ${page.url()}; message: ${await page.textContent(sel('messages'), { timeout: 1000 })}`); } catch {}
  for (const line of [...pageErrors, ...consoleErrors]) console.error(line);
  try { await shot(page, 'failure.png'); } catch (err) { console.error(`no failure screenshot: ${err.message}`); }
}
await browser.close().catch(() => {});
process.exit(code);
