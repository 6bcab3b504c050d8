/*
 * Yorisoi content script on Zendesk (/agent/tickets/<id>) and Freshdesk (/a/tickets/<id>)
 * pages: shows the sidebar for the ticket in the URL and follows the helpdesk's in-app
 * navigation between tickets. Page glue only: rendering lives in render.js, connector calls in
 * background.js.
 *
 * The sidebar sits in a shadow root so the helpdesk's CSS cannot restyle it (and ours cannot
 * leak into the helpdesk). It is an *open* root: a closed one only hides it from scripts the
 * page already trusts (the helpdesk itself, which holds this ticket anyway), while open lets
 * accessibility tools and our browser tests reach it.
 */
/* global YorisoiPages, YorisoiFormat, YorisoiRender */
(() => {
  if (window.__yorisoiSidebar) return;  // injected twice (extension reload): keep the first
  window.__yorisoiSidebar = true;

  // Where the helpdesks keep the reply being written: each helpdesk's editorSelectors in
  // helpdesk_pages.js's HELPDESK_PAGES table.
  const DRAFT_SELECTORS = YorisoiPages.DRAFT_SELECTORS;

  /** The helpdesk's reply editor on this page (the first match in HELPDESK_PAGES order). */
  function editor() {
    for (const selector of DRAFT_SELECTORS) {
      const node = document.querySelector(selector);
      if (node) return node;
    }
    return null;
  }

  /** Put the suggested draft into the helpdesk's editor — only ever on the agent's click; the
   *  agent edits and sends it with the helpdesk's own button. Rich editors (CKEditor 5 in
   *  Zendesk, Froala in Freshdesk) keep their own model of the text and ignore direct DOM
   *  changes, but both handle the browser's insertText editing command like typing
   *  (https://developer.mozilla.org/docs/Web/API/Document/execCommand). */
  function insertDraft(text) {
    const node = editor();
    if (!node) return false;
    node.focus();
    if (node.tagName === 'TEXTAREA') {
      const start = node.selectionStart ?? node.value.length, end = node.selectionEnd ?? node.value.length;
      node.setRangeText(text, start, end, 'end');
      node.dispatchEvent(new Event('input', { bubbles: true }));
      return true;
    }
    return document.execCommand('insertText', false, text);
  }

  function readDraft() {
    for (const selector of DRAFT_SELECTORS) {
      const node = document.querySelector(selector);
      if (!node) continue;
      const text = node.tagName === 'TEXTAREA' ? node.value : node.innerText;
      if (text && text.trim()) return text.trim();
    }
    return '';
  }

  async function send(msg) {
    try {
      return (await chrome.runtime.sendMessage(msg)) || { ok: false, state: 'error' };
    } catch (e) {
      // After the extension is reloaded or updated, this old script is cut off from it.
      return { ok: false, state: /invalidated/i.test(String(e && e.message)) ? 'reload' : 'error' };
    }
  }

  async function start() {
    // The UI language the agent chose in the options (default: the browser's).
    const ui = await send({ type: 'messages' });
    const lang = ui.ok ? ui.lang : 'en';
    const t = ui.ok ? YorisoiFormat.translator(ui.messages) : (key, ...subs) => chrome.i18n.getMessage(key, subs.map(String)) || key;

    const host = document.createElement('div');
    host.id = 'yorisoi-sidebar-host';
    const shadow = host.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = YorisoiRender.CSS;
    shadow.appendChild(style);
    const sidebar = YorisoiRender.createSidebar(document, {
      lang, t, send,
      readDraft: async () => readDraft(),
      insertDraft: async (text) => insertDraft(text),
      onOpenOptions: () => send({ type: 'openOptions' }),
      // The agent's choice is remembered for every ticket (storage.local, via the background).
      onToggle: (collapsed) => { send({ type: 'setPanelCollapsed', collapsed }); layout(); },
    });
    shadow.appendChild(sidebar.panel);

    // The draft check follows the agent's typing in the helpdesk editor: the in-page sidebar
    // directly, an open side panel through a broadcast (it debounces and drops stale answers).
    document.addEventListener('input', (ev) => {
      const target = ev.target;
      if (!target || !target.closest || !DRAFT_SELECTORS.some((selector) => target.closest(selector))) return;
      const ticket = YorisoiPages.parseTicketUrl(location.href);
      const text = readDraft();
      sidebar.draftChanged(text, ticket);
      chrome.runtime.sendMessage({ type: 'draftChanged', text, ticket }).catch(() => {});
    }, true);

    // Never over the helpdesk's own right-hand panel: while our panel shows, the page is made
    // narrower by its width instead. The helpdesks' app shells are position:fixed, which a
    // margin alone does not move, so <body> also gets a transform — that makes it the
    // containing block of their fixed elements (CSS Transforms 1 §3), so "right: 0" ends where
    // our panel begins. Set through the CSSOM (no <style> element for the page's CSP to refuse),
    // and taken off again when the panel goes.
    function setHostHidden(hidden) {
      host.hidden = hidden;
      // The page's own CSS (div { display: block }) could beat the UA's [hidden] rule.
      if (hidden) host.style.setProperty('display', 'none', 'important'); else host.style.removeProperty('display');
    }
    const reserved = [];
    function reserve(width) {
      const html = document.documentElement, body = document.body;
      if (!body) return;
      if (!reserved.length) {
        for (const [node, prop] of [[html, 'margin-right'], [body, 'transform'], [body, 'min-height']]) {
          reserved.push([node, prop, node.style.getPropertyValue(prop), node.style.getPropertyPriority(prop)]);
        }
      }
      html.style.setProperty('margin-right', width + 'px', 'important');
      body.style.setProperty('transform', 'translateZ(0)', 'important');
      body.style.setProperty('min-height', '100vh', 'important');
    }
    function release() {
      for (const [node, prop, value, priority] of reserved.splice(0)) {
        if (value) node.style.setProperty(prop, value, priority); else node.style.removeProperty(prop);
      }
    }
    function layout() {
      const visible = host.isConnected && !host.hidden;
      if (visible) reserve(sidebar.panel.getBoundingClientRect().width || (sidebar.collapsed() ? 36 : 360));
      else release();
    }

    // Opens itself only on Yorisoi tickets: a ticket Yorisoi did not make shows nothing; a
    // problem (not configured, token refused, connector down) shows as the collapsed strip
    // with a marker, one click away, so it never covers the ticket unasked.
    let rememberedCollapsed = (await send({ type: 'panelState' })).collapsed === true;
    const PROBLEMS = new Set(['not_configured', 'unauthorized', 'unreachable', 'rate_limited', 'error', 'reload']);
    let openedFor = null;
    function onState() {
      const state = sidebar.panel.getAttribute('data-state');
      const ticketKey = sidebar.panel.getAttribute('data-ticket');
      if (state === 'loading' || state === 'idle') return;
      setHostHidden(state === 'not_found' || state === 'no_ticket');
      sidebar.panel.classList.toggle('attention', PROBLEMS.has(state));
      if (openedFor !== ticketKey + ':' + state) {
        openedFor = ticketKey + ':' + state;
        sidebar.setCollapsed(state === 'ok' ? rememberedCollapsed : true);
      }
      layout();
    }

    // Mirror the panel's state on the host element: tests and page-level tooling can wait for it
    // without reaching into the shadow root.
    new MutationObserver(() => {
      onState();
      for (const name of ['data-state', 'data-rendered', 'data-ticket']) {
        const value = sidebar.panel.getAttribute(name);
        if (value === null) host.removeAttribute(name); else host.setAttribute(name, value);
      }
    }).observe(sidebar.panel, { attributes: true, attributeFilter: ['data-state', 'data-rendered', 'data-ticket'] });
    chrome.storage.onChanged.addListener((changes, area) => {
      if (area === 'local' && changes.panelCollapsed) rememberedCollapsed = changes.panelCollapsed.newValue === true;
    });

    let shownKey;
    function onLocationChange() {
      const ticket = YorisoiPages.parseTicketUrl(location.href);
      const key = ticket ? `${ticket.helpdesk}:${ticket.ticket}` : null;
      if (key === shownKey) return;
      shownKey = key;
      if (!ticket) {
        host.remove();  // views, dashboards, settings: no sidebar
        layout();
        sidebar.show(null);
        return;
      }
      if (!host.isConnected) {
        setHostHidden(true);  // until the connector says whether this is a Yorisoi ticket
        document.documentElement.appendChild(host);
      }
      send({ type: 'ticketShown', helpdesk: ticket.helpdesk, ticket: ticket.ticket });
      sidebar.show(ticket);
    }

    // The four signals, first one wins (shownKey makes the others no-ops): the Navigation API
    // (fires first in Chromium and Firefox), popstate (back/forward), the background's
    // tabs.onUpdated relay, and a slow poll for anything else.
    if (window.navigation && window.navigation.addEventListener) {
      window.navigation.addEventListener('navigatesuccess', onLocationChange);
      window.navigation.addEventListener('currententrychange', () => setTimeout(onLocationChange, 0));
    }
    window.addEventListener('popstate', onLocationChange);
    window.addEventListener('hashchange', onLocationChange);
    setInterval(onLocationChange, 1000);
    chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
      if (sender.id !== chrome.runtime.id || !msg) return false;
      if (msg.type === 'locationChanged') onLocationChange();
      if (msg.type === 'readDraft') sendResponse({ text: readDraft() });
      if (msg.type === 'insertDraft' && typeof msg.text === 'string') sendResponse({ ok: insertDraft(msg.text.slice(0, 10000)) });
      return false;
    });
    onLocationChange();
  }

  start();
})();
