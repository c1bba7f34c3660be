// End-to-end test of hearth's web chat UI in headless Chromium (Debian's, driven by playwright-core):
//   node webui.mjs http://127.0.0.1:PORT      (a `hearth serve` without an API key)
// It types a prompt and watches the answer stream in, stops a long generation, checks that an API error is
// shown, that conversations and parameters survive a reload, and that markdown renders safely. Exit status 0
// when every check passes; otherwise the first failure is printed and the status is 1. WEBUI_SCREENSHOT=PATH
// saves a screenshot of the page at the end (or at the failure).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const base = process.argv[2];
if (!base || !/^https?:\/\//.test(base)) {
  console.error('usage: node webui.mjs http://HOST:PORT');
  process.exit(2);
}
const origin = new URL(base).origin;

class Failure extends Error {}
function check(cond, message) {
  if (!cond) throw new Failure(message);
}
let passed = 0;
function ok(name, detail = '') {
  passed++;
  console.log(`ok   ${name}${detail ? `: ${detail}` : ''}`);
}

const ASSISTANT = '#messages [data-role="assistant"]';
const lastAssistantText = (page) =>
  page.locator(`${ASSISTANT} [data-testid="message-content"]`).last().textContent();

// Records every distinct (text, state) of the last assistant message as the DOM changes, so that the test sees
// each streamed update however quickly the tokens come (polling from node could miss them).
function recordAssistant(page) {
  return page.evaluate(() => {
    window.__snaps = [];
    const observer = new MutationObserver(() => {
      const all = document.querySelectorAll('#messages [data-role="assistant"]');
      const last = all[all.length - 1];
      if (!last) return;
      const text = last.querySelector('[data-testid="message-content"]').textContent;
      const prev = window.__snaps[window.__snaps.length - 1];
      if (!prev || prev.text !== text || prev.state !== last.dataset.state)
        window.__snaps.push({ text, state: last.dataset.state, t: performance.now() });
    });
    observer.observe(document.getElementById('messages'),
      { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

async function setParameter(page, testid, value) {
  if (await page.locator('#settings').isHidden()) await page.click('[data-testid="toggle-settings"]');
  await page.fill(`[data-testid="${testid}"]`, value);
}

// A value of the server's Prometheus /metrics (hearth's own endpoint: this test is for hearth serve).
async function metric(page, name) {
  const res = await page.request.get(`${base}/metrics`);
  check(res.ok(), `GET /metrics answered ${res.status()}`);
  const m = (await res.text()).match(new RegExp(`^${name} (\\S+)$`, 'm'));
  check(m, `/metrics has no ${name}`);
  return Number(m[1]);
}

async function waitLoaded(page) {
  await page.waitForSelector('body[data-models="loaded"]');
}

async function send(page, text) {
  await page.locator('[data-testid="prompt"]').pressSequentially(text);
  await page.click('[data-testid="send"]');
}

async function run(page) {
  const pageErrors = [];
  const external = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    if (new URL(r.url()).origin !== origin) external.push(r.url());
  });

  // 1. The page loads from the binary and lists the served model.
  const t0 = Date.now();
  await page.goto(base);
  await waitLoaded(page);
  const model = await page.inputValue('[data-testid="model"]');
  check(model.length > 0, 'the model list is empty');
  check((await page.title()) === 'hearth', `unexpected page title "${await page.title()}"`);
  ok('page loads', `model "${model}" in ${Date.now() - t0} ms`);

  // 2. Streaming: the answer grows in place before it is complete.
  await setParameter(page, 'max-tokens', '96');
  await setParameter(page, 'temperature', '0');
  await setParameter(page, 'seed', '7');
  await recordAssistant(page);
  // The tiny test model writes its whole answer in tens of milliseconds, so on a fast run the browser can read
  // the entire stream in one network read and never render a partial answer. Chromium's own network throttling
  // (DevTools protocol) delivers the same bytes at a human pace, so that the page must show tokens as they come.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: 8000, uploadThroughput: -1 });
  const prompt = 'Tell me a story about Lily and her dog.';
  await send(page, prompt);
  await page.waitForSelector(`${ASSISTANT}[data-state="done"]`, { timeout: 60_000 });
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const finalText = await lastAssistantText(page);
  check(finalText.trim().length > 0, 'the final answer is empty');
  const snaps = await page.evaluate(() => window.__snaps);
  const squash = (s) => s.replace(/\s+/g, '');
  const partials = [...new Set(snaps.filter((s) => s.state === 'streaming' && s.text.trim()).map((s) => s.text))]
    .filter((t) => t !== finalText);
  check(partials.length >= 2,
    `expected at least 2 distinct partial texts while streaming, saw ${partials.length} (${JSON.stringify(partials)})`);
  for (const p of partials)
    check(squash(finalText).startsWith(squash(p)), `partial text "${p}" is not a prefix of the answer "${finalText}"`);
  const users = await page.locator('#messages [data-role="user"]').allTextContents();
  check(users.length === 1 && users[0] === prompt, `the user message shows ${JSON.stringify(users)}`);
  check(await page.isVisible('[data-testid="send"]') && await page.isHidden('[data-testid="stop"]'),
    'Send is not back (or Stop still shown) after the answer finished');
  ok('streaming', `${partials.length} partial texts before the final ${finalText.length} characters`);

  // 3. An OpenAI-shaped error is shown to the user (max_tokens beyond the context: a 400 naming max_tokens), and
  // the failed empty answer is not kept.
  await page.click('[data-testid="new-chat"]');
  await setParameter(page, 'max-tokens', '1000000');
  await send(page, 'Hello');
  await page.waitForSelector('[data-testid="error"]:visible');
  const error = await page.textContent('[data-testid="error"]');
  check(/max_tokens/.test(error), `the error banner says "${error}", expected the server's message naming max_tokens`);
  check(await page.locator(ASSISTANT).count() === 0, 'an empty assistant message was kept after the error');
  check(await page.locator('[data-testid="conversation"]').count() === 2, 'the chat of the failed request (it keeps the prompt) is not in the list');
  // Deleting the current conversation leaves the other one.
  await page.locator('[data-testid="conversation"].active [data-testid="delete-conversation"]').click();
  check(await page.locator('[data-testid="conversation"]').count() === 1, 'delete did not remove the conversation');
  ok('error display and delete', `"${error.trim()}"`);

  // 4. Stop: a long generation ends at the click, keeping what was streamed.
  await page.click('[data-testid="new-chat"]');
  await setParameter(page, 'max-tokens', '900');
  await setParameter(page, 'temperature', '1');
  await setParameter(page, 'seed', '');
  const generatedBefore = await metric(page, 'hearth_generated_tokens_total');
  await send(page, 'Once upon a time');
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('#messages [data-role="assistant"]');
    const last = all[all.length - 1];
    return last && last.dataset.state === 'streaming' && last.textContent.trim().length > 0;
  }, null, { timeout: 60_000 });
  await page.click('[data-testid="stop"]');
  await page.waitForSelector(`${ASSISTANT}[data-state="stopped"]`, { timeout: 10_000 }).catch(async () => {
    const state = await page.locator(ASSISTANT).last().getAttribute('data-state');
    throw new Failure(`after Stop the answer's state is "${state}", expected "stopped"` +
      (state === 'done' ? ' (it finished before the click: the generation was too short to stop)' : ''));
  });
  const stopped = await lastAssistantText(page);
  check(stopped.trim().length > 0, 'the partial answer was not kept after Stop');
  await page.waitForTimeout(500);
  check(await lastAssistantText(page) === stopped, 'the answer kept changing after Stop');
  check(await page.isVisible('[data-testid="send"]') && await page.isHidden('[data-testid="stop"]'),
    'the composer did not return to Send after Stop');
  // The server must have cancelled the request rather than generate up to 900 tokens (or the story's end) for
  // nobody: once it is idle, it has generated about what the page showed (a token is at least one character of
  // this model's stories), plus the tokens made while the abort travelled.
  const deadline = Date.now() + 20_000;
  while (await metric(page, 'hearth_requests_running') !== 0 && Date.now() < deadline) await page.waitForTimeout(100);
  const generated = await metric(page, 'hearth_generated_tokens_total') - generatedBefore;
  check(generated <= stopped.length + 64,
    `the server generated ${generated} tokens for a stopped answer of ${stopped.length} characters: Stop did not cancel it`);
  ok('stop', `kept ${stopped.length} characters; the server stopped after ${generated} tokens`);

  // 5. Reload: both conversations and the parameters come back from localStorage.
  await page.reload();
  await waitLoaded(page);
  check(await page.locator('[data-testid="conversation"]').count() === 2,
    `after reload the list has ${await page.locator('[data-testid="conversation"]').count()} conversations, expected 2`);
  check(await lastAssistantText(page) === stopped, 'after reload the current conversation lost its stopped answer');
  check(await page.locator(ASSISTANT).last().getAttribute('data-state') === 'stopped', 'after reload the answer is not marked stopped');
  check(await page.inputValue('[data-testid="max-tokens"]') === '900', 'max_tokens was not kept across the reload');
  await page.locator('[data-testid="conversation"]', { hasText: 'Tell me a story' })
    .locator('[data-testid="open-conversation"]').click();
  check(await lastAssistantText(page) === finalText, 'after reload the first conversation shows a different answer');
  check((await page.locator('#messages [data-role="user"]').allTextContents())[0] === prompt,
    'after reload the first conversation lost its prompt');
  ok('reload keeps conversations and parameters');

  // 6. Markdown, with hostile content that must stay text. The tiny test model does not write markdown, so a
  // conversation is seeded into localStorage as the page itself stores them.
  const markdown = [
    '## Recipe', 'Use **bold**, *italic* and `inline <code>`.', '',
    '- first', '- second', '', '1. one', '2. two', '',
    '```js', 'const x = "<b>not bold</b>";', '```', '',
    '[docs](https://example.org/docs) [evil](javascript:window.__xss=1)',
    '<img src=x onerror="window.__xss=1"> <script>window.__xss=1</script>',
  ].join('\n');
  await page.evaluate((md) => {
    const convs = JSON.parse(localStorage.getItem('hearth.conversations'));
    convs.push({ id: 'seeded-markdown', title: 'Markdown', created: Date.now(), updated: Date.now(),
      messages: [{ role: 'user', content: 'Show **markdown**' }, { role: 'assistant', content: md, state: 'done' }] });
    localStorage.setItem('hearth.conversations', JSON.stringify(convs));
    localStorage.setItem('hearth.current', JSON.stringify('seeded-markdown'));
  }, markdown);
  await page.reload();
  await waitLoaded(page);
  const a = page.locator(ASSISTANT).last();
  const counts = {};
  for (const sel of ['h2', 'strong', 'em', ':not(pre) > code', 'pre > code', 'ul > li', 'ol > li', 'a', 'img', 'script', 'b'])
    counts[sel] = await a.locator(sel).count();
  const want = { h2: 1, strong: 1, em: 1, ':not(pre) > code': 1, 'pre > code': 1, 'ul > li': 2, 'ol > li': 2, a: 1, img: 0, script: 0, b: 0 };
  for (const [sel, n] of Object.entries(want))
    check(counts[sel] === n, `markdown: ${counts[sel]} "${sel}" elements, expected ${n}`);
  check(await a.locator('a').getAttribute('href') === 'https://example.org/docs', 'markdown: the link has the wrong href');
  check(await a.locator('pre > code').textContent() === 'const x = "<b>not bold</b>";', 'markdown: the code block text changed');
  check(await page.evaluate(() => window.__xss) === undefined, 'markdown: injected script ran');
  check(await page.locator('#messages [data-role="user"]').textContent() === 'Show **markdown**',
    'user messages must be shown as typed, not rendered');
  ok('markdown renders (and escapes HTML)', Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(' '));

  check(pageErrors.length === 0, `JavaScript errors on the page: ${pageErrors.join('; ')}`);
  check(external.length === 0, `the page fetched external URLs: ${external.join(' ')}`);
  ok('no page errors, no external requests');
}

const started = Date.now();
const userDataDir = mkdtempSync(join(tmpdir(), 'hearth-webui-'));
let context;
let status = 0;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 760 },
  });
  context.setDefaultTimeout(30_000);
  const page = context.pages()[0] ?? await context.newPage();
  try {
    await run(page);
  } finally {
    if (process.env.WEBUI_SCREENSHOT) await page.screenshot({ path: process.env.WEBUI_SCREENSHOT }).catch(() => {});
  }
  console.log(`webui: ${passed} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.log(`FAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
  console.log(`webui: failed after ${passed} checks passed`);
  status = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(status);
