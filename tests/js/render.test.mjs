// Unit tests for extension/render.js (the sidebar: context, findings, states, controller).
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
const { translator } = load('format.js');
const tJa = translator(messages('ja'));
const tEn = translator(messages('en'));

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

test('evidence is shown in the panel language: evidence_ja in Japanese, the stored lines in English', () => {
  const labels = context().analysis.labels;
  const withJa = { ...labels, sentiment: { ...labels.sentiment, evidence: ['followers 1520 → reach 0.6'], evidence_ja: ['フォロワー 1520 人 → 到達範囲 0.6'] } };
  const ja = S.renderContext(new FakeDocument(), context({ analysis: { labels: withJa } }), { lang: 'ja', t: tJa }).textContent;
  assert.ok(ja.includes('フォロワー 1520 人 → 到達範囲 0.6') && !ja.includes('followers 1520'));
  const en = S.renderContext(new FakeDocument(), context({ analysis: { labels: withJa } }), { lang: 'en', t: tEn }).textContent;
  assert.ok(en.includes('followers 1520 → reach 0.6') && !en.includes('到達範囲'));
  // An older connector without evidence_ja: the stored lines, in either language.
  assert.ok(S.renderContext(new FakeDocument(), context(), { lang: 'ja', t: tJa }).textContent.includes('最悪 (-0.9)'));
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

test('renderState shows each state, with its button', () => {
  const doc = new FakeDocument();
  let opened = 0;
  const box = S.renderState(doc, 'not_configured', { lang: 'ja', t: tJa, onOpenOptions: () => { opened += 1; } });
  assert.ok(box.textContent.includes('未設定'));
  box.querySelector('button').dispatch('click');
  assert.equal(opened, 1);
  const nf = S.renderState(doc, 'not_found', { lang: 'en', t: tEn, message: { message_ja: 'x', message_en: 'zendesk ticket 9 was not created by Yorisoi' } });
  assert.ok(nf.textContent.includes('not created by Yorisoi'));
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
