// Unit tests for extension/url.js (URL safety) under node's built-in test runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const S = load('url.js');

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
