// Unit tests for extension/dom.js (the DOM builder `el`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { FakeDocument, elements } from './fake_dom.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const S = load('dom.js');

const HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>';

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
