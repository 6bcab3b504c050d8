// Unit tests for extension/format.js (dates, ages, counts, the message translator).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const messages = (lang) => JSON.parse(readFileSync(join(EXT, '_locales', lang, 'messages.json'), 'utf8'));
const S = load('format.js');
const tJa = S.translator(messages('ja'));
const tEn = S.translator(messages('en'));

test('translator substitutes placeholders like chrome.i18n', () => {
  assert.equal(tJa('followers', '1,520'), 'フォロワー 1,520');
  assert.equal(tEn('lengthCount', 300, 280), 'Length 300 of 280 (with the signature added on sending)');
});

test('formatDate, accountAge and formatCount', () => {
  assert.equal(S.formatDate(null), '');
  assert.equal(S.formatDate('not a date'), '');
  assert.match(S.formatDate('2026-11-20T09:00:00Z'), /^2026-11-2\d \d\d:\d\d$/);
  assert.equal(S.accountAge(3800, 'ja'), '10年5か月');
  assert.equal(S.accountAge(3800, 'en'), '10 yrs 5 mo');
  assert.equal(S.accountAge(20, 'ja'), '20日');
  assert.equal(S.accountAge(-1, 'en'), null);
  assert.equal(S.formatCount(1520), '1,520');
  assert.equal(S.formatCount(undefined), '–');
});
