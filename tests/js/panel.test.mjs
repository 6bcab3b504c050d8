// Unit tests of the sidebar's panel chrome (render.js's collapse control) and of the messages
// the sign-in and the remembered collapse add to protocol.js (issue 18).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { FakeDocument } from './fake_dom.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const messages = (lang) => JSON.parse(readFileSync(join(EXT, '_locales', lang, 'messages.json'), 'utf8'));
const R = load('render.js');
const P = load('protocol.js');
const tJa = load('format.js').translator(messages('ja'));

test('the collapse control is a button with aria-expanded that reports the agent\'s choice', () => {
  const doc = new FakeDocument();
  const choices = [];
  const sidebar = R.createSidebar(doc, { lang: 'ja', t: tJa, send: async () => ({ ok: false, state: 'error' }),
    onToggle: (collapsed) => choices.push(collapsed) });
  const toggle = sidebar.panel.querySelector('button.toggle');
  assert.equal(toggle.getAttribute('type'), 'button');
  assert.equal(toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(toggle.getAttribute('aria-controls'), 'yorisoi-panel-body');
  assert.equal(toggle.getAttribute('aria-label'), '閉じる');
  toggle.dispatch('click');
  assert.equal(toggle.getAttribute('aria-expanded'), 'false');
  assert.equal(toggle.getAttribute('aria-label'), '開く');
  assert.ok(sidebar.collapsed());
  toggle.dispatch('click');
  assert.equal(toggle.getAttribute('aria-expanded'), 'true');
  assert.deepEqual(choices, [true, false]);
  // Set by the page (remembered choice, problem states): not reported as the agent's choice.
  sidebar.setCollapsed(true);
  sidebar.setCollapsed(true);
  assert.ok(sidebar.collapsed() && toggle.getAttribute('aria-expanded') === 'false');
  assert.deepEqual(choices, [true, false]);
});

test('the CSS keeps the toggle visible when collapsed and gives it a focus ring', () => {
  assert.match(R.CSS, /\.panel\.collapsed \.body, \.panel\.collapsed \.title/);
  assert.doesNotMatch(R.CSS, /\.panel\.collapsed [^{]*\.toggle[^{]*\{[^}]*display:\s*none/);
  assert.match(R.CSS, /button:focus-visible[^{]*\{[^}]*outline: 3px solid/);
});

test('sign-in messages: name and password together, or neither (SSO)', () => {
  assert.deepEqual(P.validateRequest({ type: 'signIn', name: ' 佐藤 ', password: 'pw' }), { type: 'signIn', name: '佐藤', password: 'pw' });
  assert.deepEqual(P.validateRequest({ type: 'signIn' }), { type: 'signIn', name: '', password: '' });
  assert.equal(P.validateRequest({ type: 'signIn', name: '佐藤' }), null);
  assert.equal(P.validateRequest({ type: 'signIn', password: 'pw' }), null);
  assert.equal(P.validateRequest({ type: 'signIn', name: 'x'.repeat(101), password: 'pw' }), null);
  assert.equal(P.validateRequest({ type: 'signIn', name: 'a', password: 'p'.repeat(1001) }), null);
  assert.deepEqual(P.validateRequest({ type: 'signOut', token: 'x' }), { type: 'signOut' });
  // Only the extension's own pages may sign in or out or read the settings.
  for (const type of ['signIn', 'signOut', 'config']) assert.ok(P.PAGE_ONLY.has(type));
  for (const type of ['context', 'draftCheck', 'panelState', 'setPanelCollapsed']) assert.ok(!P.PAGE_ONLY.has(type));
});

test('the remembered collapse takes a boolean only', () => {
  assert.deepEqual(P.validateRequest({ type: 'setPanelCollapsed', collapsed: true }), { type: 'setPanelCollapsed', collapsed: true });
  assert.equal(P.validateRequest({ type: 'setPanelCollapsed', collapsed: 'yes' }), null);
  assert.deepEqual(P.validateRequest({ type: 'panelState' }), { type: 'panelState' });
});
