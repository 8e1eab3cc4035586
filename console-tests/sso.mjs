// Headless Chromium scenario of single sign-on (the system's /usr/bin/chromium; no browser is
// downloaded), against a running Argus with [server.oidc] pointing at idp.mjs:
//   ARGUS_URL=http://127.0.0.1:PORT [ARGUS_SCREENSHOTS=dir] node sso.mjs
// 1. mei (groups fraud-apac, staff) clicks "Sign in with single sign-on" on the console's login page,
//    signs in at the provider, consents, and lands in the console as `mei (apac-reviewer)`; her
//    session carries the role's permissions and inbox scope, and she sees only the apac inbox.
// 2. olga (no groups) signs in at the provider and is refused by Argus with `no_role`.
// Prints {"mei": {...session}} as the last line. Exit 0 on success; on failure print the error, save
// failure.png and exit 1.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = (process.env.ARGUS_URL || 'http://127.0.0.1:7878').replace(/\/+$/, '');
const SHOTS = process.env.ARGUS_SCREENSHOTS || '.';
const T = 20_000;
const sel = (test) => `[data-test="${test}"]`;
const shot = (page, name) => page.screenshot({ path: join(SHOTS, name), fullPage: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// From the console's login page through the provider's pages and back.
async function signIn(page, login) {
  await page.goto(`${BASE}/console/`, { waitUntil: 'load' });
  await page.waitForSelector(sel('login-sso'));
  await Promise.all([page.waitForURL((u) => !u.toString().startsWith(BASE)), page.click(sel('login-sso'))]);
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any password');
  await page.click('button[type="submit"]');
  // The provider asks for consent the first time.
  await page.waitForURL((u) => u.toString().startsWith(BASE) || u.pathname.includes('/interaction/'));
  if (!page.url().startsWith(BASE)) {
    await page.waitForSelector('button[type="submit"]');
    await Promise.all([page.waitForURL((u) => u.toString().startsWith(BASE)), page.click('button[type="submit"]')]);
  }
}

mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
let code = 0;
let page;
try {
  // 1. mei: signed in with her role and scope.
  let ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(T);
  await signIn(page, 'mei');
  await page.waitForFunction(() => document.querySelector('[data-test="whoami"]')?.textContent === 'mei (apac-reviewer)');
  const session = await page.evaluate(async () => (await fetch('/v1/session')).json());
  check(session.role === 'apac-reviewer', `role ${JSON.stringify(session)}`);
  check(JSON.stringify(session.inboxes) === '["apac-*"]', `inboxes ${JSON.stringify(session)}`);
  check(session.via === 'session', `via ${session.via}`);
  const boxes = await page.evaluate(async () => (await fetch('/v1/inboxes')).json());
  const names = boxes.inboxes.map((b) => b.name);
  check(JSON.stringify(names) === '["apac-sg"]', `inboxes seen: ${names}`);
  await shot(page, 'sso-01-signed-in.png');
  await ctx.close();

  // 2. olga: signed in at the provider, refused by Argus.
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(T);
  await signIn(page, 'olga');
  await page.waitForFunction(() => document.body.innerText.includes('no_role'));
  const text = await page.evaluate(() => document.body.innerText);
  check(page.url().includes('/v1/session/oidc/callback'), `refused at ${page.url()}`);
  check(text.includes('olga'), `the refusal names the user: ${text}`);
  await shot(page, 'sso-02-refused.png');
  const who = await page.evaluate(async () => (await fetch('/v1/session')).status);
  check(who === 401, `olga has no session (${who})`);
  await ctx.close();
  process.stdout.write(`${JSON.stringify({ mei: session })}\n`);
} catch (e) {
  code = 1;
  console.error(`sso e2e failed: ${e && e.stack ? e.stack : e}`);
  if (page) {
    try { console.error(`at ${page.url()}: ${(await page.evaluate(() => document.body.innerText)).slice(0, 2000)}`); } catch {}
    try { await shot(page, 'failure.png'); } catch (err) { console.error(`no failure screenshot: ${err.message}`); }
  }
}
await browser.close().catch(() => {});
process.exit(code);
