/*
 * Yorisoi sidebar: the messages between the pages and the background worker, checked before
 * the worker acts on them, and the sidebar state each connector answer means.
 * Plain script, no build step: loaded by a <script>/manifest entry it defines a global
 * namespace; under node (tests/js/) it is a CommonJS module. No chrome.* calls here.
 * Needs url.js, helpdesk_pages.js.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory(require('./helpdesk_pages.js'));
  else root.YorisoiProtocol = factory(root.YorisoiPages);
})(typeof globalThis !== 'undefined' ? globalThis : this, function (Pages) {
  'use strict';
  if (!Pages) throw new Error('protocol.js: load helpdesk_pages.js before it');
  const { HELPDESKS } = Pages;

  const TICKET_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
  const MAX_DRAFT = 10000;

  /** Messages only the extension's own pages (options) may send, never a content script. */
  const PAGE_ONLY = new Set(['signIn', 'signOut', 'config']);

  /** What the sidebar should show for a connector answer (used by the background worker). */
  function stateForResponse(status, body) {
    if (status === 0) return 'unreachable';
    if (status === 401) return 'unauthorized';
    if (status === 404 && body && body.code === 'unknown_ticket') return 'not_found';
    if (status === 429) return 'rate_limited';
    if (status >= 200 && status < 300) return 'ok';
    return 'error';
  }

  /** A message from a content script or page, checked before the background acts on it. */
  function validateRequest(msg) {
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return null;
    const ticketOk = HELPDESKS.includes(msg.helpdesk) && typeof msg.ticket === 'string' && TICKET_ID.test(msg.ticket);
    switch (msg.type) {
      case 'context':
      case 'ticketShown':
        return ticketOk ? { type: msg.type, helpdesk: msg.helpdesk, ticket: msg.ticket } : null;
      case 'draftCheck':
        if (!ticketOk || typeof msg.text !== 'string' || !msg.text.trim() || msg.text.length > MAX_DRAFT) return null;
        return { type: msg.type, helpdesk: msg.helpdesk, ticket: msg.ticket, text: msg.text };
      case 'correction':
        if (!ticketOk || typeof msg.label !== 'string' || typeof msg.value !== 'string') return null;
        if (!/^[a-z_]{1,32}$/.test(msg.label) || !/^[a-z_]{1,32}$/.test(msg.value)) return null;
        return { type: msg.type, helpdesk: msg.helpdesk, ticket: msg.ticket, label: msg.label, value: msg.value };
      case 'status':
      case 'messages':
      case 'whoami':
      case 'openOptions':
      case 'config':
      case 'signOut':
      case 'panelState':
        return { type: msg.type };
      case 'tabInsertDraft':
        if (typeof msg.text !== 'string' || !msg.text.trim() || msg.text.length > MAX_DRAFT) return null;
        return { type: msg.type, tabId: Number.isInteger(msg.tabId) && msg.tabId >= 0 ? msg.tabId : null, text: msg.text };
      case 'setPanelCollapsed':
        return typeof msg.collapsed === 'boolean' ? { type: msg.type, collapsed: msg.collapsed } : null;
      case 'signIn': {
        // Name and password of a dashboard account, or neither (single sign-on via the proxy).
        const name = typeof msg.name === 'string' ? msg.name.trim() : '';
        const password = typeof msg.password === 'string' ? msg.password : '';
        if (name.length > 100 || password.length > 1000 || Boolean(name) !== Boolean(password)) return null;
        return { type: msg.type, name, password };
      }
      case 'activeTicket':
      case 'tabDraft':
        return { type: msg.type, tabId: Number.isInteger(msg.tabId) && msg.tabId >= 0 ? msg.tabId : null };
      default:
        return null;
    }
  }

  /**
   * One call to the connector's /api/v1 with a bearer credential: JSON in and out, a timeout,
   * an optional outer AbortSignal (a superseded draft check), never cookies, cache or redirects.
   * Answers { ok: true, data } or { ok: false, state, status?, message? } (state from
   * stateForResponse; 'unreachable' or 'cancelled' when no answer came). Shared by the
   * extension's background and the Zendesk app's sidebar page.
   */
  async function callApi({ url, token, method, body, outer, timeoutMs }) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs || 15000);
    if (outer) outer.addEventListener('abort', () => controller.abort());
    let response;
    try {
      const headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
      if (body) headers['Content-Type'] = 'application/json';
      response = await fetch(url, {
        method, headers, body: body ? JSON.stringify(body) : undefined, signal: controller.signal,
        credentials: 'omit', cache: 'no-store', redirect: 'error',
      });
    } catch (e) {
      return { ok: false, state: outer && outer.aborted ? 'cancelled' : 'unreachable' };
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    const state = stateForResponse(response.status, data);
    if (state === 'ok') return { ok: true, data };
    const message = data && typeof data.message_ja === 'string'
      ? { message_ja: data.message_ja, message_en: String(data.message_en || data.error || '') } : null;
    return { ok: false, state, status: response.status, message };
  }

  return {
    MAX_DRAFT, PAGE_ONLY, callApi, stateForResponse, validateRequest,
  };
});
