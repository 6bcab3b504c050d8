// Unit tests for extension/shared.js (pure functions) under node's built-in test runner:
//   node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { FakeDocument, elements } from './fake_dom.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const S = createRequire(import.meta.url)(join(EXT, 'shared.js'));
const messages = (lang) => JSON.parse(readFileSync(join(EXT, '_locales', lang, 'messages.json'), 'utf8'));
const tJa = S.translator(messages('ja'));
const tEn = S.translator(messages('en'));

const HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>';

function context(overrides = {}) {
  return {
    ticket: { helpdesk: 'zendesk', id: '101' },
    post: { key: 'x:1', platform: 'x', platform_name: 'X', url: 'https://x.com/tanaka_k/status/1', text: 'ソラモバイル最悪',
      created_at: '2026-11-20T09:00:00Z', reply: { mode: 'prepared', url: 'https://x.com/intent/tweet?in_reply_to=1' } },
    analysis: { labels: {
      sentiment: { value: 'negative', value_ja: 'ネガティブ', value_en: 'negative', name_ja: '感情', name_en: 'Sentiment', score: -0.9, evidence: ['最悪 (-0.9)'] },
      risk: { value: 'high', value_ja: '高', value_en: 'high', name_ja: '拡散リスク', name_en: 'Public risk', score: 0.5, evidence: [] },
      priority: { value: 'urgent', value_ja: '緊急', value_en: 'urgent', name_ja: '優先度', name_en: 'Priority', score: 1, evidence: [] },
    } },
    author: { name: '田中', handle: 'tanaka_k', bio: '東京在住', location: '東京', followers: 1520, account_age_days: 3800,
      avatar_url: 'https://pbs.example/a.jpg', profile_url: 'https://x.com/tanaka_k' },
    history: [{ key: 'x:0', url: 'https://x.com/tanaka_k/status/0', text: '前の投稿', created_at: '2026-10-01T00:00:00Z',
      sentiment: 'positive', intent: 'praise', ticket: null }],
    exchanges: [{ agent: '鈴木', text: '確認します', status: 'sent', url: null, created_at: '2026-10-02T00:00:00Z', ticket_id: '100' }],
    other_tickets: [{ helpdesk: 'zendesk', id: '100', url: 'https://sora.zendesk.com/agent/tickets/100', subject: '前のチケット', sentiment: 'neutral' }],
    sentiment_history: [{ at: '2026-10-01T00:00:00Z', score: 0.8, sentiment: 'positive' },
      { at: '2026-11-20T09:00:00Z', score: -0.9, sentiment: 'negative', current: true }],
    label_sets: { sentiment: [{ value: 'negative', ja: 'ネガティブ', en: 'negative' }, { value: 'neutral', ja: '中立', en: 'neutral' },
      { value: 'positive', ja: 'ポジティブ', en: 'positive' }] },
    ...overrides,
  };
}

test('parseTicketUrl reads Zendesk and Freshdesk ticket ids', () => {
  assert.deepEqual(S.parseTicketUrl('https://sora.zendesk.com/agent/tickets/123'), { helpdesk: 'zendesk', ticket: '123', host: 'sora.zendesk.com' });
  assert.deepEqual(S.parseTicketUrl('https://sora.zendesk.com/agent/tickets/123/events?x=1#c'), { helpdesk: 'zendesk', ticket: '123', host: 'sora.zendesk.com' });
  assert.deepEqual(S.parseTicketUrl('https://sora.freshdesk.com/a/tickets/7'), { helpdesk: 'freshdesk', ticket: '7', host: 'sora.freshdesk.com' });
  assert.equal(S.parseTicketUrl('http://127.0.0.1:8123/agent/tickets/101').helpdesk, 'zendesk');
  assert.equal(S.parseTicketUrl('http://127.0.0.1:8123/a/tickets/7').helpdesk, 'freshdesk');
});

test('parseTicketUrl refuses other pages and hosts', () => {
  for (const href of ['https://sora.zendesk.com/agent/dashboard', 'https://sora.zendesk.com/agent/tickets/abc',
    'https://evil.example/agent/tickets/1', 'https://sora.zendesk.com.evil.example/agent/tickets/1',
    'http://sora.zendesk.com/agent/tickets/1', 'https://sora.freshdesk.com/agent/tickets/1',
    'https://sora.zendesk.com/a/tickets/1', 'javascript:alert(1)', 'not a url', '']) {
    assert.equal(S.parseTicketUrl(href), null, href);
  }
});

test('safeUrl keeps http(s) only, https only for images', () => {
  assert.equal(S.safeUrl('https://x.com/a'), 'https://x.com/a');
  assert.equal(S.safeUrl('http://example.com/'), 'http://example.com/');
  for (const bad of ['javascript:alert(1)', ' JavaScript:alert(1)', 'data:text/html,<b>', 'vbscript:x', '//x.com', '/relative', null, 42]) {
    assert.equal(S.safeUrl(bad), null, String(bad));
  }
  assert.equal(S.safeUrl('http://example.com/a.png', true), null);
  assert.equal(S.safeUrl('https://example.com/a.png', true), 'https://example.com/a.png');
});

test('connectorBase gives the base URL and the permission pattern', () => {
  assert.deepEqual(S.connectorBase('https://yorisoi.example.co.jp/'), { base: 'https://yorisoi.example.co.jp', pattern: 'https://yorisoi.example.co.jp/*', origin: 'https://yorisoi.example.co.jp' });
  assert.equal(S.connectorBase('https://proxy.example/yorisoi/').base, 'https://proxy.example/yorisoi');
  assert.equal(S.connectorBase('http://127.0.0.1:8750').pattern, 'http://127.0.0.1:8750/*');
  assert.equal(S.connectorBase('ftp://x'), null);
  assert.equal(S.connectorBase('https://user:pw@host/'), null);
});

test('el builds text nodes only, drops on* attributes and unsafe links', () => {
  const doc = new FakeDocument();
  const link = S.el(doc, 'a', { href: 'javascript:alert(1)', onclick: 'alert(1)', onmouseover: 'x', class: 'c' }, HOSTILE);
  assert.equal(link.getAttribute('href'), null);
  assert.equal(link.getAttribute('onclick'), null);
  assert.equal(link.getAttribute('onmouseover'), null);
  assert.equal(link.textContent, HOSTILE);
  assert.equal(elements(link).length, 0);
  const ok = S.el(doc, 'a', { href: 'https://x.com/' }, 'x');
  assert.equal(ok.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(ok.getAttribute('target'), '_blank');
  assert.equal(S.el(doc, 'img', { src: 'http://insecure.example/a.png' }).getAttribute('src'), null);
});

test('renderContext shows profile, history and exchanges as text', () => {
  const doc = new FakeDocument();
  const root = S.renderContext(doc, context(), { lang: 'ja', t: tJa, onCorrect: () => {} });
  const text = root.textContent;
  for (const expected of ['田中', '@tanaka_k', 'フォロワー 1,520', '開設 10年', '東京在住', 'ソラモバイル最悪', '前の投稿', '鈴木', '確認します',
    '前のチケット', '緊急', 'ネガティブ', '最悪 (-0.9)']) {
    assert.ok(text.includes(expected), expected);
  }
  const links = elements(root).filter((e) => e.tagName === 'A').map((a) => a.getAttribute('href'));
  assert.ok(links.includes('https://x.com/intent/tweet?in_reply_to=1'));
  assert.ok(links.includes('https://x.com/tanaka_k'));
  assert.equal(elements(root).filter((e) => e.tagName === 'svg'.toUpperCase()).length, 1);
});

test('renderContext keeps hostile text inert and drops javascript: links', () => {
  const doc = new FakeDocument();
  const ctx = context({
    post: { key: 'x:2', platform: 'x', text: HOSTILE, url: 'javascript:alert(3)', reply: { mode: 'none', url: 'javascript:alert(4)' } },
    author: { name: HOSTILE, handle: 'evil', bio: '<script>alert(5)</script>', avatar_url: 'javascript:alert(6)', profile_url: 'javascript:alert(7)' },
    history: [{ key: 'x:3', url: 'javascript:alert(8)', text: HOSTILE, created_at: null }],
  });
  const root = S.renderContext(doc, ctx, { lang: 'en', t: tEn });
  const all = elements(root);
  assert.equal(all.filter((e) => ['SCRIPT', 'IMG', 'IFRAME'].includes(e.tagName)).length, 0);
  for (const node of all) {
    for (const [name, value] of node.attributes) {
      assert.ok(!name.startsWith('on'), name);
      assert.ok(!/javascript:/i.test(value), `${name}=${value}`);
    }
  }
  assert.ok(root.textContent.includes(HOSTILE));
});

test('correction buttons offer the other values and call back', () => {
  const doc = new FakeDocument();
  const calls = [];
  const root = S.renderContext(doc, context(), { lang: 'ja', t: tJa, onCorrect: (label, value) => calls.push([label, value]) });
  const buttons = root.querySelectorAll('button.correct-btn');
  assert.deepEqual(buttons.map((b) => b.getAttribute('data-value')), ['neutral', 'positive']);
  buttons[1].dispatch('click');
  assert.deepEqual(calls, [['sentiment', 'positive']]);
});

test('renderFindings shows severity, message and hint in the UI language', () => {
  const doc = new FakeDocument();
  const result = { findings: [{ rule: 'personal_data', severity: 'error', message_ja: '電話番号が含まれています', message_en: 'contains a phone number',
    hint_ja: 'DMへ', hint_en: 'move to a DM', span: [0, 3] }], length: { count: 300, limit: 280 } };
  const ja = S.renderFindings(doc, result, { lang: 'ja', t: tJa });
  assert.ok(ja.textContent.includes('要修正') && ja.textContent.includes('電話番号') && ja.textContent.includes('300 / 280'));
  assert.equal(ja.querySelector('li.finding').getAttribute('data-rule'), 'personal_data');
  const en = S.renderFindings(doc, { findings: [], length: null }, { lang: 'en', t: tEn });
  assert.ok(en.textContent.includes('No problems found'));
});

test('states map connector answers', () => {
  assert.equal(S.stateForResponse(0, null), 'unreachable');
  assert.equal(S.stateForResponse(401, { code: 'invalid_token' }), 'unauthorized');
  assert.equal(S.stateForResponse(404, { code: 'unknown_ticket' }), 'not_found');
  assert.equal(S.stateForResponse(404, null), 'error');
  assert.equal(S.stateForResponse(429, {}), 'rate_limited');
  assert.equal(S.stateForResponse(200, {}), 'ok');
  const doc = new FakeDocument();
  let opened = 0;
  const box = S.renderState(doc, 'not_configured', { lang: 'ja', t: tJa, onOpenOptions: () => { opened += 1; } });
  assert.ok(box.textContent.includes('未設定'));
  box.querySelector('button').dispatch('click');
  assert.equal(opened, 1);
  const nf = S.renderState(doc, 'not_found', { lang: 'en', t: tEn, message: { message_ja: 'x', message_en: 'zendesk ticket 9 was not created by Yorisoi' } });
  assert.ok(nf.textContent.includes('not created by Yorisoi'));
});

test('validateRequest lets only well-formed messages through', () => {
  assert.deepEqual(S.validateRequest({ type: 'context', helpdesk: 'zendesk', ticket: '101', extra: 'x' }), { type: 'context', helpdesk: 'zendesk', ticket: '101' });
  assert.equal(S.validateRequest({ type: 'context', helpdesk: 'jira', ticket: '1' }), null);
  assert.equal(S.validateRequest({ type: 'context', helpdesk: 'zendesk', ticket: '../1' }), null);
  assert.equal(S.validateRequest({ type: 'draftCheck', helpdesk: 'zendesk', ticket: '1', text: '' }), null);
  assert.equal(S.validateRequest({ type: 'draftCheck', helpdesk: 'zendesk', ticket: '1', text: 'x'.repeat(10001) }), null);
  assert.equal(S.validateRequest({ type: 'correction', helpdesk: 'zendesk', ticket: '1', label: 'sentiment', value: 'x y' }), null);
  assert.equal(S.validateRequest({ type: 'fetch', url: 'https://evil' }), null);
  assert.equal(S.validateRequest(null), null);
  assert.deepEqual(S.validateRequest({ type: 'activeTicket', tabId: 'x' }), { type: 'activeTicket', tabId: null });
});

test('createSidebar drops a slow answer for a ticket the agent already left', async () => {
  const doc = new FakeDocument();
  const pending = {};
  const send = (msg) => new Promise((resolve) => { pending[msg.ticket] = resolve; });
  const sidebar = S.createSidebar(doc, { lang: 'en', t: tEn, send });
  const first = sidebar.show({ helpdesk: 'zendesk', ticket: '101' });
  const second = sidebar.show({ helpdesk: 'zendesk', ticket: '102' });
  pending['102']({ ok: true, data: context({ ticket: { helpdesk: 'zendesk', id: '102' }, post: { ...context().post, text: 'second' } }) });
  await second;
  pending['101']({ ok: true, data: context({ post: { ...context().post, text: 'first (stale)' } }) });
  await first;
  assert.equal(sidebar.panel.getAttribute('data-rendered'), '102');
  assert.ok(sidebar.panel.textContent.includes('second'));
  assert.ok(!sidebar.panel.textContent.includes('first (stale)'));
});

test('createSidebar shows each failure state', async () => {
  const doc = new FakeDocument();
  for (const state of ['not_configured', 'unreachable', 'unauthorized', 'not_found']) {
    const sidebar = S.createSidebar(doc, { lang: 'ja', t: tJa, send: async () => ({ ok: false, state }) });
    await sidebar.show({ helpdesk: 'zendesk', ticket: '1' });
    assert.equal(sidebar.panel.getAttribute('data-state'), state);
    assert.ok(sidebar.panel.textContent.includes(tJa('state_' + state)));
  }
});

test('translator substitutes placeholders like chrome.i18n', () => {
  assert.equal(tJa('followers', '1,520'), 'フォロワー 1,520');
  assert.equal(tEn('lengthCount', 300, 280), 'Length 300 of 280 (with the signature added on sending)');
});

test('both locales have the same keys, and every key the code uses exists', () => {
  const ja = messages('ja'), en = messages('en');
  assert.deepEqual(Object.keys(ja).sort(), Object.keys(en).sort());
  const sources = readdirSync(EXT).filter((f) => f.endsWith('.js') || f.endsWith('.html') || f === 'manifest.json')
    .map((f) => readFileSync(join(EXT, f), 'utf8')).join('\n');
  const used = new Set([...sources.matchAll(/\bt\('([A-Za-z_]+)'/g)].map((m) => m[1])
    .concat([...sources.matchAll(/data-i18n="([A-Za-z_]+)"/g)].map((m) => m[1]))
    .concat([...sources.matchAll(/__MSG_([A-Za-z_]+)__/g)].map((m) => m[1])));
  for (const state of ['loading', 'not_configured', 'unreachable', 'unauthorized', 'not_found', 'rate_limited', 'error', 'no_ticket', 'reload']) used.add('state_' + state);
  for (const key of used) if (!key.endsWith('_')) assert.ok(key in ja, `missing message ${key}`);
});

test('no HTML parsing or eval anywhere in the extension', () => {
  for (const file of readdirSync(EXT).filter((f) => f.endsWith('.js'))) {
    const source = readFileSync(join(EXT, file), 'utf8');
    for (const bad of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function']) {
      assert.ok(!source.includes(bad), `${file} uses ${bad}`);
    }
  }
});

test('manifest: one folder for Chrome MV3 and Firefox', () => {
  const manifest = JSON.parse(readFileSync(join(EXT, 'manifest.json'), 'utf8'));
  assert.equal(manifest.manifest_version, 3);
  assert.equal(manifest.background.service_worker, 'background.js');
  assert.deepEqual(manifest.background.scripts, ['shared.js', 'background.js']);
  assert.ok(manifest.browser_specific_settings.gecko.id);
  assert.equal(manifest.side_panel.default_path, manifest.sidebar_action.default_panel);
  const [cs] = manifest.content_scripts;
  assert.deepEqual(cs.js, ['shared.js', 'content.js']);
  assert.ok(cs.matches.includes('https://*.zendesk.com/agent/*') && cs.matches.includes('https://*.freshdesk.com/a/*'));
  assert.ok(!manifest.permissions.includes('tabs'), 'no broad tabs permission');
});

test('renderContext shows the storm a post belongs to, inert, or nothing without one', () => {
  const storm = {
    id: 7, size: 42, topic: '圏外・駅', reason: 'near-duplicate of x:1 (0.82)', role: 'echo', similarity: 0.82,
    first_post: { key: 'x:1', text: HOSTILE, url: 'javascript:alert(9)' },
    problem_ticket: { helpdesk: 'zendesk', id: '900', url: 'https://acme.zendesk.com/agent/tickets/900' },
    answers: [{ agent: '佐藤', text: '障害を確認中です', status: 'sent', created_at: '2026-11-20T10:00:00Z', ticket_id: '901' }],
  };
  const doc = new FakeDocument();
  const root = S.renderContext(doc, context({ storm }), { lang: 'ja', t: tJa });
  const text = root.textContent;
  for (const expected of ['42 件の類似投稿', '圏外・駅', 'near-duplicate of x:1', 'まとめチケット #900', '佐藤', '障害を確認中です', HOSTILE]) {
    assert.ok(text.includes(expected), expected);
  }
  const all = elements(root);
  assert.equal(all.filter((e) => e.tagName === 'SCRIPT').length, 0);
  assert.ok(all.every((e) => !/javascript:/i.test(e.getAttribute('href') || '')));
  const plain = S.renderContext(new FakeDocument(), context({ storm: null }), { lang: 'ja', t: tJa });
  assert.ok(!plain.textContent.includes('類似投稿'));
});

test('one table entry per helpdesk page: host, ticket path, editor selectors', () => {
  assert.deepEqual(S.HELPDESK_PAGES.map((p) => p.helpdesk), ['zendesk', 'freshdesk']);
  assert.deepEqual(S.HELPDESKS, ['zendesk', 'freshdesk', 'local']);
  for (const page of S.HELPDESK_PAGES) {
    assert.ok(page.hostSuffix.startsWith('.') && page.ticketPath instanceof RegExp && page.editorSelectors.length > 0);
  }
  assert.equal(S.DRAFT_SELECTORS.length, 8);
  assert.equal(S.DRAFT_SELECTORS[0], '[data-test-id="omnicomposer-rich-text-ckeditor"]');
  assert.equal(S.DRAFT_SELECTORS[7], '.redactor-editor[contenteditable="true"]');
  assert.equal(S.parseTicketUrl('https://acme.freshdesk.com/agent/tickets/5'), null);
  assert.equal(S.parseTicketUrl('https://acme.zendesk.com/a/tickets/5'), null);
});
