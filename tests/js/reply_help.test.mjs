// Unit tests for the sidebar's help writing the reply (extension/render.js): the outage banner,
// the suggested draft (inserted only on click), guidelines, similar cases, the debounced live
// draft check that drops stale answers, and both character counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { FakeDocument, elements } from './fake_dom.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const messages = (lang) => JSON.parse(readFileSync(join(EXT, '_locales', lang, 'messages.json'), 'utf8'));
const S = load('render.js');
const P = load('protocol.js');
const { translator } = load('format.js');
const tJa = translator(messages('ja'));
const tEn = translator(messages('en'));
const HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>';

function ctx(overrides = {}) {
  return {
    ticket: { helpdesk: 'zendesk', id: '101' },
    post: { key: 'x:1', platform: 'x', platform_name: 'X', text: '駅で全然繋がらない', created_at: '2026-11-20T09:00:00Z', reply: { mode: 'api' } },
    analysis: { labels: {} }, author: { name: '田中' }, history: [], exchanges: [], other_tickets: [], sentiment_history: [],
    label_sets: {}, corrections: {}, storm: null,
    reply_guidelines: { signature: '{brand}の{agent}です', signature_en: '— {agent}, Sora Mobile Support', tone: 'です・ます調',
      tone_en: 'Plain and warm', avoid_words: ['仕様です', 'ご理解ください'], dm_handoff: 'DMでお知らせください。', dm_handoff_en: '',
      faq: [{ topic: '通信障害', url: 'https://support.example/outage', title: '障害情報', title_en: 'Outages' },
        { topic: '料金', url: 'javascript:alert(1)', title: '料金' }], faq_matched: ['通信障害'] },
    similar_cases: [
      { post: { key: 'x:9', text: '渋谷駅で圏外', url: 'https://x.com/a/status/9', created_at: '2026-11-01T00:00:00Z', author: '佐々木' },
        reply: { agent: '鈴木', text: '佐々木様、点検しています。', at: '2026-11-01T01:00:00Z' },
        reaction: { verdict: 'good', reason_ja: 'お礼の投稿', reason_en: 'thanked', text: 'ありがとう、繋がりました' }, score: 0.6 },
      { post: { key: 'x:8', text: HOSTILE, url: 'javascript:alert(3)', created_at: '2026-10-01T00:00:00Z', author: HOSTILE },
        reply: { agent: HOSTILE, text: HOSTILE, at: null }, reaction: { verdict: 'none' }, score: 0.3 }],
    suggested_draft: { text: '田中様、「駅で全然繋がらない」とのこと、ご不便をおかけして申し訳ございません。\nソラモバイルの佐藤です。', lang: 'ja',
      parts: [], agent: '佐藤' },
    ...overrides,
  };
}

const texts = (root) => root.textContent;
const hrefs = (root) => elements(root).filter((e) => e.tagName === 'A').map((a) => a.getAttribute('href'));

test('outage banner only for an active storm, with the team statement as text', () => {
  const doc = new FakeDocument();
  const storm = { id: 3, size: 42, topic: '大阪 通信障害', active: true,
    statement: { text: HOSTILE + ' 復旧作業中です', url: 'https://status.example/1', author: 'supervisor', at: '2026-11-20T05:00:00Z' } };
  const banner = S.renderOutageBanner(doc, storm, { t: tJa, lang: 'ja' });
  assert.ok(texts(banner).includes('障害対応中: 大阪 通信障害（類似投稿 42 件）'));
  assert.ok(texts(banner).includes(HOSTILE + ' 復旧作業中です'));
  assert.ok(!elements(banner).some((e) => e.tagName === 'SCRIPT' || e.tagName === 'IMG'));
  assert.deepEqual(hrefs(banner), ['https://status.example/1']);
  assert.equal(S.renderOutageBanner(doc, { ...storm, active: false }, { t: tJa, lang: 'ja' }), null);
  assert.equal(S.renderOutageBanner(doc, null, { t: tJa, lang: 'ja' }), null);
  const bare = S.renderOutageBanner(doc, { ...storm, statement: null, statement_url: 'javascript:x' }, { t: tEn, lang: 'en' });
  assert.ok(texts(bare).includes('No public statement yet'));
  assert.equal(hrefs(bare).length, 0);
  const whole = S.renderContext(doc, ctx({ storm: { ...storm, first_post: {}, answers: [] } }), { t: tJa, lang: 'ja' });
  assert.equal(elements(whole)[0].getAttribute('data-field'), 'outage');  // first thing the agent sees
});

test('suggested draft is inserted only when the agent clicks', async () => {
  const doc = new FakeDocument();
  const inserted = [];
  const box = S.renderReplyHelp(doc, ctx(), { t: tJa, lang: 'ja', onInsert: (text) => inserted.push(text), onUseInCheck: () => {} });
  assert.ok(texts(box).includes('「駅で全然繋がらない」とのこと'));
  assert.ok(texts(box).includes('自動では送信されません'));
  assert.equal(inserted.length, 0);
  box.querySelector('button.insert-btn').dispatch('click');
  assert.deepEqual(inserted, [ctx().suggested_draft.text]);
});

test('guidelines and similar cases render as text; only http(s) links', () => {
  const doc = new FakeDocument();
  const box = S.renderReplyHelp(doc, ctx(), { t: tJa, lang: 'ja' });
  const text = texts(box);
  for (const expected of ['ブランドの返信ガイド', '{brand}の{agent}です', 'です・ます調', '仕様です、ご理解ください', 'DMでお知らせください。',
    '障害情報', 'この投稿の話題', '似た過去の対応', '渋谷駅で圏外', '送った返信（鈴木', '佐々木様、点検しています。', '反応: 良い',
    'ありがとう、繋がりました', '反応なし']) {
    assert.ok(text.includes(expected), expected);
  }
  assert.ok(text.includes(HOSTILE));
  assert.ok(!elements(box).some((e) => ['SCRIPT', 'IMG'].includes(e.tagName)));
  assert.deepEqual(hrefs(box).sort(), ['https://support.example/outage', 'https://x.com/a/status/9']);
  const en = S.renderReplyHelp(doc, ctx({ similar_cases: [] }), { t: tEn, lang: 'en' });
  assert.ok(texts(en).includes('Plain and warm') && texts(en).includes('No similar answered posts yet.'));
  assert.ok(texts(en).includes('Outages'));
});

test('findings show the count as the network counts and as a person counts', () => {
  const doc = new FakeDocument();
  const box = S.renderFindings(doc, { findings: [], length: { platform: 'x', count: 31, limit: 280, unit: 'x-weighted' }, graphemes: 15 },
    { t: tJa, lang: 'ja' });
  assert.ok(texts(box).includes('31 / 280') && texts(box).includes('X の数え方'));
  assert.ok(texts(box).includes('見た目の文字数 15'));
});

function fakeTimers() {
  const pending = new Map();
  let next = 1;
  return {
    pending,
    setTimeout: (fn, ms) => { pending.set(next, { fn, ms }); return next++; },
    clearTimeout: (id) => { pending.delete(id); },
    flush: () => { const due = [...pending.values()]; pending.clear(); due.forEach((x) => x.fn()); },
  };
}

test('typing checks the draft once, 400 ms after the last keystroke, and drops stale answers', async () => {
  const doc = new FakeDocument();
  const timers = fakeTimers();
  const sent = [];
  const waiting = [];
  const send = (msg) => {
    if (msg.type === 'context') return Promise.resolve({ ok: true, data: ctx() });
    sent.push(msg.text);
    return new Promise((resolve) => waiting.push({ text: msg.text, resolve }));
  };
  const sidebar = S.createSidebar(doc, { lang: 'ja', t: tJa, send, timers });
  await sidebar.show({ helpdesk: 'zendesk', ticket: '101' });
  const area = sidebar.panel.querySelector('textarea');
  for (const text of ['田', '田中様', '田中様、確認します']) {
    sidebar.draftChanged(text, { helpdesk: 'zendesk', ticket: '101' });
  }
  assert.equal(timers.pending.size, 1);  // debounced: one timer left
  assert.equal([...timers.pending.values()][0].ms, S.DRAFT_DEBOUNCE_MS);
  assert.equal(S.DRAFT_DEBOUNCE_MS, 400);
  assert.equal(area.value, '田中様、確認します');
  timers.flush();
  assert.deepEqual(sent, ['田中様、確認します']);
  // The agent types on before the answer comes: that answer is stale and must not be shown.
  area.value = '田中様、確認します。ソラモバイルの佐藤です。';
  area.dispatch('input');
  waiting[0].resolve({ ok: true, data: { findings: [{ rule: 'signature', severity: 'info', message_ja: '古い結果', message_en: 'old', hint_ja: '', hint_en: '' }], counts: {} } });
  await new Promise((r) => setImmediate(r));
  assert.ok(!sidebar.panel.textContent.includes('古い結果'));
  timers.flush();
  assert.equal(sent.length, 2);
  waiting[1].resolve({ ok: true, data: { findings: [], counts: {}, graphemes: 22, length: null } });
  await new Promise((r) => setImmediate(r));
  assert.ok(sidebar.panel.textContent.includes('見た目の文字数 22'));
  // Another ticket's editor does not feed this sidebar.
  sidebar.draftChanged('別のチケット', { helpdesk: 'zendesk', ticket: '999' });
  assert.equal(timers.pending.size, 0);
});

test('insert falls back to the check box when the helpdesk has no editor', async () => {
  const doc = new FakeDocument();
  const timers = fakeTimers();
  const sidebar = S.createSidebar(doc, { lang: 'en', t: tEn, timers, insertDraft: async () => false,
    send: async (msg) => (msg.type === 'context' ? { ok: true, data: ctx() } : { ok: true, data: { findings: [], counts: {} } }) });
  await sidebar.show({ helpdesk: 'zendesk', ticket: '101' });
  const button = sidebar.panel.querySelector('button.insert-btn');
  button.dispatch('click');
  await new Promise((r) => setImmediate(r));
  assert.equal(sidebar.panel.querySelector('textarea').value, ctx().suggested_draft.text);
  assert.ok(button.getAttribute('title').includes('No reply editor found'));
  assert.equal(timers.pending.size, 1);  // and it is checked
});

test('protocol accepts an insert request only with a draft', () => {
  assert.deepEqual(P.validateRequest({ type: 'tabInsertDraft', tabId: 4, text: 'こんにちは' }), { type: 'tabInsertDraft', tabId: 4, text: 'こんにちは' });
  assert.equal(P.validateRequest({ type: 'tabInsertDraft', text: '   ' }), null);
  assert.equal(P.validateRequest({ type: 'tabInsertDraft', text: 'x'.repeat(10001) }), null);
  assert.equal(P.validateRequest({ type: 'tabInsertDraft', text: 42 }), null);
});
