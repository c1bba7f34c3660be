// hearth's chat UI: vanilla JavaScript, no framework and no build step, because the files are compiled into the
// `hearth serve` binary as they are and the page must work offline (no external URL is ever fetched).
//
// The markdown renderer below is hand-written for the same reason: a packaged renderer (marked, markdown-it)
// could only be compiled in after a download or a bundling step, which hearth's build does not have. It is
// small and safe by construction: every piece of model text is HTML-escaped before any markup is added, the
// only tags produced are the renderer's own, and links are made only for http(s) URLs, so a model (or a
// pasted message) cannot inject script, event handlers or javascript: links.
'use strict';

// ---- Markdown

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

// Inline markup of one block's text. Code spans and links are swapped for NUL-delimited slots first so that
// emphasis never applies inside them; NUL cannot come from the text, which has its NULs removed.
function renderInline(text) {
  const slots = [];
  const keep = (html) => `\u0000${slots.push(html) - 1}\u0000`;
  let s = escapeHtml(text.replace(/\u0000/g, ''));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${code}</code>`));
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/gi,
    (_, label, url) => keep(`<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`));
  s = s.replace(/\*\*(?=\S)([^\n]*?\S)\*\*/g, '<strong>$1</strong>');
  // Underscores inside words (snake_case, __dunder names in prose) are not emphasis, as in CommonMark.
  s = s.replace(/(^|[^\w])__(?=\S)([^\n]*?\S)__(?!\w)/g, '$1<strong>$2</strong>');
  s = s.replace(/\*(?=[^\s*])([^*\n]*?[^\s*])\*/g, '<em>$1</em>');
  s = s.replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, '$1<em>$2</em>');
  const restore = (str) => str.replace(/\u0000(\d+)\u0000/g, (_, i) => restore(slots[Number(i)]));
  return restore(s);
}

// Block structure: fenced code, ATX headings, bullet and numbered lists, paragraphs (single newlines kept as
// line breaks, as chat answers are written). A fence left open (mid-stream) runs to the end of the text.
function renderMarkdown(src) {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let para = [];
  let list = null;
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(renderInline).join('<br>')}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${renderInline(i)}</li>`).join('')}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/);
    if (fence) {
      flushPara();
      flushList();
      const code = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) code.push(lines[i]);
      const lang = fence[2] ? ` class="language-${escapeHtml(fence[2])}"` : '';
      out.push(`<pre><code${lang}>${escapeHtml(code.join('\n'))}</code></pre>`);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      flushPara();
      flushList();
      const n = heading[1].length;
      out.push(`<h${n}>${renderInline(heading[2])}</h${n}>`);
      continue;
    }
    const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
    const numbered = bullet ? null : line.match(/^\s*\d+[.)]\s+(.*)$/);
    if (bullet || numbered) {
      flushPara();
      const tag = bullet ? 'ul' : 'ol';
      if (!list || list.tag !== tag) {
        flushList();
        list = { tag, items: [] };
      }
      list.items.push((bullet || numbered)[1]);
      continue;
    }
    if (!line.trim()) {
      flushPara();
      flushList();
      continue;
    }
    if (list && /^\s{2,}\S/.test(line)) {  // an indented line continues the list item
      list.items[list.items.length - 1] += ` ${line.trim()}`;
      continue;
    }
    flushList();
    para.push(line);
  }
  flushPara();
  flushList();
  return out.join('\n');
}

// ---- Storage

const KEYS = { settings: 'hearth.settings', conversations: 'hearth.conversations', current: 'hearth.current' };

function load(key, fallback) {
  try {
    const v = localStorage.getItem(key);
    return v === null ? fallback : JSON.parse(v);
  } catch {
    return fallback;  // unreadable (corrupt JSON, storage disabled): start afresh rather than break the page
  }
}
function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    showError(`Could not save in this browser's storage: ${e.message}`);
  }
}

// ---- State

const $ = (id) => document.getElementById(id);
const ui = {
  sidebar: $('sidebar'), conversations: $('conversations'), newChat: $('new-chat'), toggleSidebar: $('toggle-sidebar'),
  model: $('model'), toggleSettings: $('toggle-settings'), settings: $('settings'), error: $('error'),
  messages: $('messages'), empty: $('empty'), composer: $('composer'), prompt: $('prompt'), send: $('send'),
  stop: $('stop'), apiKey: $('api-key'),
};

let settings = load(KEYS.settings, {});
if (typeof settings !== 'object' || settings === null) settings = {};
// Stored conversations, dropping whatever is not shaped as this page writes them (an older version's data,
// hand edits) so that rendering never meets a message without text.
function readConversations() {
  const list = load(KEYS.conversations, []);
  if (!Array.isArray(list)) return [];
  return list.filter((c) => c && typeof c.id === 'string' && Array.isArray(c.messages)).map((c) => ({
    ...c,
    messages: c.messages.filter((m) => m && typeof m.role === 'string' && typeof m.content === 'string'),
  }));
}
let conversations = readConversations();
let currentId = load(KEYS.current, null);
let controller = null;  // the running generation's AbortController
let storageChanged = false;  // another tab saved conversations during the running generation

const current = () => conversations.find((c) => c.id === currentId) || null;
const busy = () => controller !== null;

function persist() {
  save(KEYS.conversations, conversations);
  save(KEYS.current, currentId);
}

// ---- Errors

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}
function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

// An Error from a non-2xx answer: the server's OpenAI-shaped {"error": {"message"}} when it sent one.
async function responseError(res) {
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const j = await res.json();
    if (j && j.error && typeof j.error.message === 'string') message = j.error.message;
  } catch {
    // not JSON: keep the status line
  }
  const e = new Error(message);
  e.status = res.status;
  if (res.status === 401) {
    e.message = `${message}. Enter the server's API key under Parameters.`;
    openSettings(true);
    ui.apiKey.focus();
  }
  return e;
}

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (settings.api_key) h.Authorization = `Bearer ${settings.api_key}`;
  return h;
}

// ---- Rendering

function renderList() {
  ui.conversations.replaceChildren();
  const sorted = [...conversations].sort((a, b) => (b.updated || 0) - (a.updated || 0));
  for (const c of sorted) {
    const li = document.createElement('li');
    li.dataset.testid = 'conversation';
    li.dataset.id = c.id;
    if (c.id === currentId) li.classList.add('active');
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'open';
    open.dataset.testid = 'open-conversation';
    open.textContent = c.title || 'Untitled';
    open.title = c.title || '';
    open.disabled = busy();
    open.addEventListener('click', () => switchTo(c.id));
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'delete';
    del.dataset.testid = 'delete-conversation';
    del.setAttribute('aria-label', `Delete "${c.title || 'Untitled'}"`);
    del.textContent = '\u00d7';
    del.disabled = busy();
    del.addEventListener('click', () => remove(c.id));
    li.append(open, del);
    ui.conversations.append(li);
  }
}

function messageElement(msg) {
  const el = document.createElement('div');
  el.className = `msg msg-${msg.role}`;
  el.dataset.testid = 'message';
  el.dataset.role = msg.role;
  const content = document.createElement('div');
  content.className = 'content';
  content.dataset.testid = 'message-content';
  el.append(content);
  const stats = document.createElement('div');
  stats.className = 'hint';
  stats.dataset.testid = 'message-stats';
  el.append(stats);
  updateMessage(el, msg);
  return el;
}

function updateMessage(el, msg) {
  const content = el.firstChild;
  if (msg.role === 'assistant') content.innerHTML = renderMarkdown(msg.content);  // safe: see renderMarkdown
  else content.textContent = msg.content;
  el.dataset.state = msg.state || 'done';
  const stats = el.lastChild;
  const parts = [];
  if (msg.usage) parts.push(`${msg.usage.completion_tokens} tokens`);
  if (msg.usage && msg.seconds > 0) parts.push(`${(msg.usage.completion_tokens / msg.seconds).toFixed(1)} tokens/s`);
  if (msg.finish === 'length') parts.push('stopped at max tokens');
  stats.textContent = parts.join(' · ');
  stats.hidden = parts.length === 0;
}

function renderConversation() {
  const conv = current();
  ui.messages.replaceChildren();
  if (!conv || conv.messages.length === 0) {
    ui.messages.append(ui.empty);
    return;
  }
  for (const msg of conv.messages) ui.messages.append(messageElement(msg));
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function setBusy(on, ctl = null) {
  controller = on ? ctl : null;
  ui.send.hidden = on;
  ui.stop.hidden = !on;
  ui.newChat.disabled = on;
  document.body.dataset.busy = on ? 'true' : 'false';
  renderList();
}

// The conversation list is an overlay only on narrow screens (style.css); elsewhere the class has no effect.
function showSidebar(open) {
  ui.sidebar.classList.toggle('open', open);
  ui.toggleSidebar.setAttribute('aria-expanded', String(open));
}

function openSettings(open) {
  ui.settings.hidden = !open;
  ui.toggleSettings.setAttribute('aria-expanded', String(open));
}

// ---- Conversations

function switchTo(id) {
  if (busy()) return;
  currentId = id;
  save(KEYS.current, currentId);
  clearError();
  renderList();
  renderConversation();
  showSidebar(false);
}

function remove(id) {
  if (busy()) return;
  conversations = conversations.filter((c) => c.id !== id);
  if (currentId === id) currentId = null;
  persist();
  renderList();
  renderConversation();
}

function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// ---- Generation

function numberSetting(name, parse) {
  const raw = settings[name];
  if (raw === undefined || raw === null || String(raw).trim() === '') return undefined;
  const v = parse(String(raw));
  return Number.isFinite(v) ? v : undefined;
}

function requestBody(conv) {
  const messages = [];
  if (settings.system && settings.system.trim()) messages.push({ role: 'system', content: settings.system });
  for (const m of conv.messages) {
    // A failed answer was never shown as an answer; an interrupted one was, so the model sees it as said.
    if (m.state === 'error' || m.state === 'streaming') continue;
    if (m.role === 'assistant' && !m.content) continue;
    messages.push({ role: m.role, content: m.content });
  }
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  if (ui.model.value) body.model = ui.model.value;
  const fields = [['temperature', parseFloat], ['top_p', parseFloat], ['max_tokens', (s) => parseInt(s, 10)],
    ['seed', (s) => parseInt(s, 10)]];
  for (const [name, parse] of fields) {
    const v = numberSetting(name, parse);
    if (v !== undefined) body[name] = v;
  }
  return body;
}

// Reads an SSE response of chat chunks, calling onDelta(text) per content delta and onRender() once per network
// read (one DOM update per read, not per token). Resolves at "data: [DONE]".
async function readStream(res, reply, onRender) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the server closed the stream before it finished');
    buf += decoder.decode(value, { stream: true });
    let m;
    while ((m = /\r?\n\r?\n/.exec(buf))) {
      const event = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (!data) continue;
      if (data === '[DONE]') {
        onRender();
        return;
      }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || 'the server reported an error');
      if (chunk.usage) reply.usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      if (choice.delta && typeof choice.delta.content === 'string') reply.content += choice.delta.content;
      if (choice.finish_reason) reply.finish = choice.finish_reason;
    }
    onRender();
  }
}

async function send(text) {
  if (busy() || !text.trim()) return;
  clearError();
  let conv = current();
  if (!conv) {
    conv = { id: newId(), title: '', created: Date.now(), updated: Date.now(), messages: [] };
    conversations.push(conv);
    currentId = conv.id;
  }
  if (!conv.title) conv.title = text.trim().replace(/\s+/g, ' ').slice(0, 60);
  conv.messages.push({ role: 'user', content: text });
  const body = requestBody(conv);
  const reply = { role: 'assistant', content: '', state: 'streaming' };
  conv.messages.push(reply);
  conv.updated = Date.now();
  persist();
  renderConversation();
  const el = ui.messages.lastElementChild;
  const ctl = new AbortController();
  setBusy(true, ctl);
  const t0 = performance.now();
  const render = () => {
    updateMessage(el, reply);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  };
  try {
    const res = await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: ctl.signal });
    if (!res.ok) throw await responseError(res);
    await readStream(res, reply, render);
    reply.state = 'done';
  } catch (e) {
    if (e.name === 'AbortError') {
      reply.state = 'stopped';  // the Stop button: keep what was generated
    } else {
      reply.state = 'error';
      showError(e.message);
    }
  }
  reply.seconds = (performance.now() - t0) / 1000;
  if (reply.state === 'error' && !reply.content) conv.messages.pop();
  conv.updated = Date.now();
  if (storageChanged) {
    const fresh = readConversations();
    const i = fresh.findIndex((c) => c.id === conv.id);
    if (i >= 0) fresh[i] = conv;
    else fresh.push(conv);
    conversations = fresh;
    storageChanged = false;
  }
  setBusy(false);
  persist();
  renderConversation();
}

// ---- Models and settings

async function loadModels() {
  try {
    const res = await fetch('/v1/models', { headers: headers() });
    if (!res.ok) throw await responseError(res);
    const list = await res.json();
    const ids = (list.data || []).map((m) => m.id);
    ui.model.replaceChildren(...ids.map((id) => new Option(id, id)));
    if (settings.model && ids.includes(settings.model)) ui.model.value = settings.model;
    document.body.dataset.models = 'loaded';
  } catch (e) {
    showError(`Could not list the models: ${e.message}`);
    document.body.dataset.models = 'error';
  }
}

function bindSettings() {
  for (const el of document.querySelectorAll('[data-setting]')) {
    const key = el.dataset.setting;
    if (settings[key] !== undefined) el.value = settings[key];
    el.addEventListener('input', () => {
      settings[key] = el.value;
      save(KEYS.settings, settings);
    });
  }
  ui.apiKey.addEventListener('change', () => {
    clearError();
    loadModels();
  });
  ui.model.addEventListener('change', () => {
    settings.model = ui.model.value;
    save(KEYS.settings, settings);
  });
}

// ---- Events

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.prompt.value;
  if (!text.trim() || busy()) return;
  ui.prompt.value = '';
  send(text);
});
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.composer.requestSubmit();
  } else if (e.key === 'Escape' && busy()) {
    controller.abort();
  }
});
ui.stop.addEventListener('click', () => {
  if (controller) controller.abort();
});
ui.newChat.addEventListener('click', () => {
  if (busy()) return;
  currentId = null;
  save(KEYS.current, currentId);
  clearError();
  renderList();
  renderConversation();
  showSidebar(false);
  ui.prompt.focus();
});
ui.toggleSettings.addEventListener('click', () => openSettings(ui.settings.hidden));
$('close-settings').addEventListener('click', () => openSettings(false));
ui.toggleSidebar.addEventListener('click', () => showSidebar(!ui.sidebar.classList.contains('open')));
$('close-sidebar').addEventListener('click', () => showSidebar(false));

// A reply that was streaming when the page went away was cut off there: show it as stopped.
for (const c of conversations)
  for (const m of c.messages) if (m.state === 'streaming') m.state = 'stopped';
if (!current()) currentId = null;
// Another tab of this page saved its conversations: show them. While a reply streams here, the list is left
// alone and merged when the reply ends (send()), so that neither tab's changes are lost.
window.addEventListener('storage', (e) => {
  if (e.key !== KEYS.conversations) return;
  if (busy()) {
    storageChanged = true;
    return;
  }
  conversations = readConversations();
  if (!current()) currentId = null;
  renderList();
  renderConversation();
});
// Every change is saved as it is made, except the text of a reply being streamed: leaving the page mid-answer
// saves it. Saving at other times would overwrite what another tab stored since this one last wrote.
window.addEventListener('pagehide', () => {
  if (busy()) persist();
});
bindSettings();
setBusy(false);
renderConversation();
loadModels();
ui.prompt.focus();
