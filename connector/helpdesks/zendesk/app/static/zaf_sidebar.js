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

  function api(method, path, body) {
    // Same origin as this page; the credential is the page's `zaf_…` one.
    return YorisoiProtocol.callApi({ url: '/api/v1' + path, token: credential(), method, body, timeoutMs: TIMEOUT_MS });
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
      // The suggested draft goes into Zendesk's editor only when the agent clicks 「返信欄に挿入」:
      // the ticket_sidebar action comment.appendText (ZAF ticket_sidebar API:
      // https://developer.zendesk.com/api-reference/apps/apps-support-api/ticket_sidebar/#commentappendtext).
      insertDraft: async (text) => {
        if (!client) return false;
        try { await client.invoke('comment.appendText', String(text)); return true; } catch (e) { return false; }
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
    if (client && ticketId) {
      // Check the reply while the agent types in Zendesk's own editor: the comment.text.changed
      // event (same doc, "Events") gives the editor's HTML; render.js debounces and drops stale answers.
      try {
        client.on('comment.text.changed', (html) => {
          sidebar.draftChanged(stripHtml(html), { helpdesk: 'zendesk', ticket: ticketId });
        });
      } catch (e) { /* an older ZAF client without events: the check button still works */ }
    }
    if (client) {
      try { client.invoke('resize', { width: '100%', height: Math.min(1200, document.body.scrollHeight + 20) + 'px' }); } catch (e) { /* not in a resizable location */ }
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
