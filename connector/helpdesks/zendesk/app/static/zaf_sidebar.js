/*
 * Yorisoi in Zendesk's apps panel (the Zendesk app's ticket_sidebar location).
 * The ZAF client says which ticket is open and the agent's language; the extension's renderer
 * (render.js, loaded before this) draws the same sidebar as the browser extension; the calls go
 * to /api/v1 on this connector (same origin) with the page's short-lived `zaf_…` credential,
 * which the server minted after checking Zendesk's signed JWT. No innerHTML anywhere.
 * ZAF SDK: https://developer.zendesk.com/api-reference/apps/apps-core-api/client_api/ (init, get, invoke, on).
 */
/* global ZAFClient, YorisoiFormat, YorisoiRender, YorisoiProtocol */
(function () {
  'use strict';
  const TIMEOUT_MS = 15000;

  function credential() {
    const meta = document.querySelector('meta[name="yorisoi-session"]');
    return meta ? meta.getAttribute('content') : '';
  }

  async function api(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    let response;
    try {
      const headers = { Authorization: 'Bearer ' + credential(), Accept: 'application/json' };
      if (body) headers['Content-Type'] = 'application/json';
      response = await fetch('/api/v1' + path, { method, headers, body: body ? JSON.stringify(body) : undefined,
        signal: controller.signal, credentials: 'omit', cache: 'no-store' });
    } catch (e) {
      return { ok: false, state: 'unreachable' };
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    const state = YorisoiProtocol.stateForResponse(response.status, data);
    if (state === 'ok') return { ok: true, data };
    const message = data && typeof data.message_ja === 'string'
      ? { message_ja: data.message_ja, message_en: String(data.message_en || data.error || '') } : null;
    return { ok: false, state, status: response.status, message };
  }

  function stripHtml(html) {
    // The draft as text: parsed into an inert document (never attached), then its text taken.
    const doc = new DOMParser().parseFromString(String(html || ''), 'text/html');
    return (doc.body && doc.body.textContent) || '';
  }

  async function start() {
    const loading = document.getElementById('yorisoi-loading');
    const allMessages = JSON.parse(document.getElementById('yorisoi-messages').textContent);
    const client = typeof ZAFClient !== 'undefined' ? ZAFClient.init() : null;
    let info = {};
    if (client) {
      try { info = await client.get(['ticket.id', 'ticket.externalId', 'currentUser.locale']); } catch (e) { info = {}; }
    }
    const locale = String(info['currentUser.locale'] || navigator.language || 'ja');
    const lang = locale.toLowerCase().startsWith('ja') ? 'ja' : 'en';
    const t = YorisoiFormat.translator(allMessages[lang]);
    document.documentElement.lang = lang;
    const ticketId = info['ticket.id'] != null ? String(info['ticket.id']) : null;
    const externalId = info['ticket.externalId'] ? String(info['ticket.externalId']) : null;

    async function send(msg) {
      switch (msg.type) {
        case 'context': {
          const q = (o) => new URLSearchParams(o).toString();
          const answer = await api('GET', '/context?' + q({ helpdesk: 'zendesk', ticket: msg.ticket }));
          // Channel framework tickets are Zendesk's own: only their external id names the post.
          if (!answer.ok && answer.state === 'not_found' && externalId) {
            return api('GET', '/context?' + q({ helpdesk: 'zendesk', external_id: externalId }));
          }
          return answer;
        }
        case 'draftCheck':
          return api('POST', '/draft-check', { helpdesk: 'zendesk', ticket: msg.ticket, text: msg.text });
        case 'correction':
          return api('POST', '/corrections', { helpdesk: 'zendesk', ticket: msg.ticket, label: msg.label, value: msg.value });
        default:
          return { ok: false, state: 'error' };
      }
    }

    const style = document.createElement('style');
    style.textContent = YorisoiRender.CSS + '\nbody { margin: 0; }';
    document.head.appendChild(style);
    const sidebar = YorisoiRender.createSidebar(document, {
      lang, t, send, embedded: true,
      readDraft: async () => {
        if (!client) return '';
        try { return stripHtml((await client.get('comment.text'))['comment.text']); } catch (e) { return ''; }
      },
    });
    if (loading) loading.remove();
    document.body.appendChild(sidebar.panel);
    if (!client) {
      const note = document.createElement('p');
      note.className = 'note';
      note.textContent = lang === 'ja' ? 'Zendesk の中で開いてください（ZAF クライアントがありません）。'
        : 'Open this inside Zendesk (no ZAF client).';
      document.body.appendChild(note);
    }
    await sidebar.show(ticketId ? { helpdesk: 'zendesk', ticket: ticketId } : null);
    if (client) {
      try { client.invoke('resize', { width: '100%', height: Math.min(1200, document.body.scrollHeight + 20) + 'px' }); } catch (e) { /* not in a resizable location */ }
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
