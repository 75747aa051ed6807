// The web page in a real browser (Debian's /usr/bin/chromium driven by playwright-core) against a
// real `redpacket serve --dev` on a free port: sign in -> deposit -> a bad input shows its message
// -> send (with a greeting that is HTML) -> three other users open the link and each sees their
// amount -> a watching tab sees the grabs appear live without reloading -> the grab list shows all
// three and their sum -> the dashboard renders with data. No alert may fire and the page must
// run under its Content-Security-Policy. Screenshots of every step go to $RP_ARTIFACTS.
// Environment: REDPACKET_BINARY, RP_BROWSER_DEPS (where npm ci put playwright-core), RP_ARTIFACTS.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const binary = process.env.REDPACKET_BINARY;
const deps = process.env.RP_BROWSER_DEPS;
const artifacts = process.env.RP_ARTIFACTS || path.join(process.cwd(), 'artifacts');
assert.ok(binary && deps, 'set REDPACKET_BINARY and RP_BROWSER_DEPS');
const { chromium } = await import(path.join(deps, 'node_modules/playwright-core/index.mjs'));
mkdirSync(artifacts, { recursive: true });

const XSS = '<img src=x onerror=alert(1)>';
const dataDir = mkdtempSync(path.join(tmpdir(), 'rp-browser-'));
let serverLog = '';

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', '--dev', '--host', '127.0.0.1', '--port', '0', '--data-dir', path.join(dataDir, 'data'),
      '--log-level', 'info', '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => reject(new Error('the server did not start:\n' + serverLog)), 20000);
    const onData = (chunk) => {
      serverLog += chunk.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(serverLog);
      if (m && /\bready\b/.test(serverLog)) { clearTimeout(timer); resolve({ child, base: 'http://127.0.0.1:' + m[1] }); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error('the server exited with ' + code + ':\n' + serverLog)));
  });
}

const { child: server, base } = await startServer();
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
const problems = [];  // alerts, CSP violations, page errors: each fails the test
let step = 0;

async function newUser(userId, pathname) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });  // a phone
  const page = await context.newPage();
  page.on('dialog', async (dialog) => { problems.push('a dialog fired: ' + dialog.type() + ' ' + dialog.message()); await dialog.dismiss(); });
  page.on('pageerror', (error) => problems.push('page error (user ' + userId + '): ' + error.message));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/.test(message.text())) problems.push('CSP (user ' + userId + '): ' + message.text());
  });
  await page.goto(base + pathname + (pathname.includes('?') ? '&' : '?') + 'as=' + userId);
  return page;
}

async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: path.join(artifacts, String(step).padStart(2, '0') + '-' + name + '.png'), fullPage: true });
}

const cents = (text) => { const m = /¥(\d+)\.(\d\d)/.exec(text); assert.ok(m, 'no amount in ' + JSON.stringify(text)); return Number(m[1]) * 100 + Number(m[2]); };

let failed = false;
try {
  // A browser asking for / is sent to the page.
  const root = await newUser(1, '/');
  assert.equal(new URL(root.url()).pathname, '/app/');
  await root.context().close();

  // Sign in as the sender (user 1), deposit.
  const sender = await newUser(1, '/app/');
  await sender.locator('#who').filter({ hasText: 'user 1' }).waitFor();
  await sender.locator('#balance').filter({ hasText: '¥0.00' }).waitFor();
  await shot(sender, 'signed-in');
  await sender.fill('#deposit-form input', '100');
  await sender.click('#deposit-form button');
  await sender.locator('#balance').filter({ hasText: '¥100.00' }).waitFor();
  await shot(sender, 'deposited');

  // Bad inputs: one the page catches, one the API refuses; each message next to its field.
  await sender.fill('#send-form input[name=total]', '1.234');
  await sender.fill('#send-form input[name=count]', '3');
  await sender.click('#send-form button[type=submit]');
  const totalError = sender.locator('#send-form label:has(input[name=total]) .field-error');
  await totalError.filter({ hasText: 'Enter an amount' }).waitFor();
  await sender.fill('#send-form input[name=total]', '0.02');
  await sender.fill('#send-form input[name=count]', '5');
  await sender.click('#send-form button[type=submit]');
  const countError = sender.locator('#send-form label:has(input[name=count]) .field-error');
  await countError.filter({ hasText: 'more shares than cents' }).waitFor();
  assert.equal(await totalError.textContent(), '', 'the fixed field keeps no stale message');
  await sender.fill('#send-form input[name=total]', '150');  // more than the balance, within max_total_cents
  await sender.fill('#send-form input[name=count]', '3');
  await sender.click('#send-form button[type=submit]');
  await totalError.filter({ hasText: 'insufficient' }).waitFor();
  await shot(sender, 'bad-inputs');

  // Send 10.00 in 3 lucky shares with an HTML greeting.
  await sender.fill('#send-form input[name=total]', '10.00');
  await sender.fill('#send-form input[name=count]', '3');
  await sender.fill('#send-form input[name=greeting]', XSS);
  await sender.click('#send-form button[type=submit]');
  const link = sender.locator('#share-link');
  await link.waitFor();
  const packetPath = new URL(await link.getAttribute('href'), base).pathname;
  assert.match(packetPath, /^\/app\/p\/\d+$/);
  await sender.locator('#balance').filter({ hasText: '¥90.00' }).waitFor();
  await shot(sender, 'sent');

  // A watcher opens the packet and stays: the grabs must reach it live.
  const watcher = await newUser(50, packetPath);
  await watcher.locator('#live').filter({ hasText: 'live' }).waitFor();
  assert.equal(await watcher.locator('#greeting').textContent(), XSS, 'the greeting is shown as text');
  assert.equal(await watcher.locator('#greeting img').count(), 0, 'the greeting made an element');
  await watcher.evaluate(() => { window.stillTheSamePage = true; });
  await shot(watcher, 'watcher-before');

  // Three users open the link; each sees their amount.
  const amounts = new Map();
  for (const userId of [2, 3, 4]) {
    const page = await newUser(userId, packetPath);
    await page.locator('#greeting').filter({ hasText: XSS }).waitFor();
    await page.click('#open');
    const won = page.locator('#won');
    await won.waitFor();
    amounts.set(userId, cents(await won.textContent()));
    assert.ok(amounts.get(userId) >= 1);
    // What is left, right after the grab: the total less every grab so far.
    const left = 1000 - [...amounts.values()].reduce((a, b) => a + b, 0);
    if (left > 0) await page.locator('#status').filter({ hasText: '(' + '¥' + Math.floor(left / 100) + '.' + String(left % 100).padStart(2, '0') + ')' }).waitFor({ timeout: 5000 });
    // The watcher, without reloading, has this grab.
    await watcher.locator('#grabs li[data-user="' + userId + '"]').waitFor({ timeout: 5000 });
    await shot(page, 'user-' + userId + '-opened');
    await page.context().close();
  }
  assert.equal([...amounts.values()].reduce((a, b) => a + b, 0), 1000, 'the three shares add up to the total');
  assert.equal(await watcher.evaluate(() => window.stillTheSamePage), true, 'the watcher reloaded');
  await watcher.locator('.badge').first().waitFor();  // best luck once exhausted
  await shot(watcher, 'watcher-after');

  // The grab list shows all three and their sum.
  for (const page of [watcher, sender]) {
    if (page === sender) await page.goto(base + packetPath);
    const items = page.locator('#grabs li');
    await page.locator('#sum').filter({ hasText: '3 grabbed' }).waitFor();
    assert.equal(await items.count(), 3);
    for (const [userId, amount] of amounts) {
      assert.equal(cents(await page.locator('#grabs li[data-user="' + userId + '"] .amount').textContent()), amount);
    }
    assert.equal(cents(await page.locator('#sum').textContent()), 1000);
    assert.equal(await page.locator('#grabs li.best').count(), 1);
    assert.match(await page.locator('#status').textContent(), /exhausted/);
  }
  await shot(sender, 'sender-list');

  // History: the sent packet, with the greeting as text.
  await sender.goto(base + '/app/');
  await sender.locator('#history li a').filter({ hasText: XSS }).waitFor();
  await shot(sender, 'history');

  // The dashboard renders with data (admin endpoints are open with --dev).
  const ops = await newUser(1, '/app/ops');
  await ops.locator('#health li.ok').first().waitFor();
  const tile = (name) => ops.locator('[data-metric="' + name + '"] .value');
  await ops.waitForFunction(() => {
    const value = document.querySelector('[data-metric="Grab p99"] .value');
    return value && value.textContent !== '–';
  }, null, { timeout: 15000 }).catch(() => {});
  assert.match(await tile('Open connections').textContent(), /^\d+$/);
  assert.match(await tile('Packets in memory').textContent(), /^\d+$/);
  await ops.waitForFunction(() => document.querySelector('[data-metric="Grabs /s"] .value').textContent !== '–', null, { timeout: 10000 });
  assert.ok((await ops.locator('svg.chart polyline[points*=","]').count()) >= 3, 'charts have points');
  await shot(ops, 'dashboard');

  // The page's transferred size: the shell and every asset, as served.
  let bytes = 0;
  const sizes = [];
  for (const asset of ['/app/', '/app/static/app.js', '/app/static/api.js', '/app/static/dom.js', '/app/static/ops.js', '/app/static/style.css']) {
    const response = await fetch(base + asset);
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200, asset);
    assert.match(response.headers.get('content-security-policy') || '', /script-src 'self'/, asset);
    sizes.push(asset + ' ' + body.length);
    bytes += body.length;
  }
  console.log('page size (uncompressed, as served): ' + bytes + ' bytes: ' + sizes.join(', '));
  writeFileSync(path.join(artifacts, 'page-size.txt'), bytes + '\n' + sizes.join('\n') + '\n');

  assert.deepEqual(problems, [], 'no alert, CSP violation or page error');
  console.log('browser test passed; screenshots in ' + artifacts);
} catch (error) {
  failed = true;
  console.error(error);
  console.error('problems: ' + JSON.stringify(problems, null, 2));
  console.error('server log tail:\n' + serverLog.split('\n').slice(-30).join('\n'));
} finally {
  await browser.close().catch(() => {});
  server.kill('SIGTERM');
  await new Promise((resolve) => server.on('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
