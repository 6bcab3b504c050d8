// Unit tests for extension/helpdesk_pages.js (the helpdesk page table, ticket URLs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const S = load('helpdesk_pages.js');

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
