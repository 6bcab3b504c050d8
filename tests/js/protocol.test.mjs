// Unit tests for extension/protocol.js (pages ↔ background messages, connector answers → states).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const S = load('protocol.js');

test('states map connector answers', () => {
  assert.equal(S.stateForResponse(0, null), 'unreachable');
  assert.equal(S.stateForResponse(401, { code: 'invalid_token' }), 'unauthorized');
  assert.equal(S.stateForResponse(404, { code: 'unknown_ticket' }), 'not_found');
  assert.equal(S.stateForResponse(404, null), 'error');
  assert.equal(S.stateForResponse(429, {}), 'rate_limited');
  assert.equal(S.stateForResponse(200, {}), 'ok');
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
