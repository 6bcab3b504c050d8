/*
 * Yorisoi sidebar: the helpdesk pages it appears on, one table entry per helpdesk (host,
 * ticket path, editor selectors), and the ticket a page's URL shows. A new helpdesk is one
 * entry in HELPDESK_PAGES (and its host in the manifest's match patterns).
 * Plain script, no build step: loaded by a <script>/manifest entry it defines a global
 * namespace; under node (tests/js/) it is a CommonJS module. No chrome.* calls here.
 * Needs url.js.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory(require('./url.js'));
  else root.YorisoiPages = factory(root.YorisoiUrl);
})(typeof globalThis !== 'undefined' ? globalThis : this, function (Url) {
  'use strict';
  if (!Url) throw new Error('helpdesk_pages.js: load url.js before it');
  const { LOOPBACK } = Url;

  // One entry per helpdesk page the sidebar appears on: a new helpdesk is one entry here.
  // host: real agents work on <subdomain><hostSuffix> (loopback hosts run the test pages);
  // ticketPath: the ticket page's path, group 1 the ticket id; editorSelectors: where the
  // helpdesk keeps the reply being written (best effort: their markup changes).
  const HELPDESK_PAGES = [
    { helpdesk: 'zendesk', hostSuffix: '.zendesk.com', ticketPath: /^\/agent\/tickets\/(\d{1,20})(?:\/|$)/,
      // Agent Workspace: CKEditor 5 in the omnicomposer; classic: the comment textarea.
      editorSelectors: [
        '[data-test-id="omnicomposer-rich-text-ckeditor"]',
        '[data-test-id="ticket-reply-editor"] [contenteditable="true"]',
        '.ck-editor__editable[contenteditable="true"]',
        '.zendesk-editor--rich-text-container [contenteditable="true"]',
        'textarea[name="comment[body]"]',
      ] },
    { helpdesk: 'freshdesk', hostSuffix: '.freshdesk.com', ticketPath: /^\/a\/tickets\/(\d{1,20})(?:\/|$)/,
      // The Froala editor of the reply box.
      editorSelectors: [
        '.fr-element.fr-view[contenteditable="true"]',
        '[data-test-id="reply-editor"] [contenteditable="true"]',
        '.redactor-editor[contenteditable="true"]',
      ] },
  ];
  const HELPDESKS = [...HELPDESK_PAGES.map((page) => page.helpdesk), 'local'];
  // Every helpdesk's editors, in table order: the content script reads the first with text.
  const DRAFT_SELECTORS = HELPDESK_PAGES.flatMap((page) => page.editorSelectors);

  /** The helpdesk ticket a URL shows: {helpdesk, ticket, host} or null. */
  function parseTicketUrl(href) {
    let url;
    try { url = new URL(href); } catch (e) { return null; }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) return null;
    const host = url.hostname.toLowerCase();
    const loopback = LOOPBACK.has(host);
    for (const page of HELPDESK_PAGES) {
      const match = page.ticketPath.exec(url.pathname);
      if (match && (host.endsWith(page.hostSuffix) || loopback)) return { helpdesk: page.helpdesk, ticket: match[1], host };
    }
    return null;
  }

  return {
    HELPDESK_PAGES, HELPDESKS, DRAFT_SELECTORS, parseTicketUrl,
  };
});
