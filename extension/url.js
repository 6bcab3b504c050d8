/*
 * Yorisoi sidebar: URL safety. Only absolute http(s) URLs (images: https only) ever become a
 * link or an image, and the connector's base URL from the options page is checked here.
 * Plain script, no build step: loaded by a <script>/manifest entry it defines a global
 * namespace; under node (tests/js/) it is a CommonJS module. No chrome.* calls here.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.YorisoiUrl = factory();
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';
  // Loopback hosts run the test pages (and a developer's fake helpdesk); real agents work on
  // <subdomain>.zendesk.com and <subdomain>.freshdesk.com.
  const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

  /** `url` if it is an absolute http(s) URL (https only when httpsOnly), else null. */
  function safeUrl(url, httpsOnly) {
    if (typeof url !== 'string' || url.length > 2000) return null;
    let parsed;
    try { parsed = new URL(url.trim()); } catch (e) { return null; }
    const ok = httpsOnly ? parsed.protocol === 'https:' : (parsed.protocol === 'https:' || parsed.protocol === 'http:');
    return ok && parsed.host ? parsed.href : null;
  }

  /**
   * The connector's base URL from the options page (scheme, host, port and an optional path
   * prefix for a reverse proxy; no query, no trailing slash) and the host permission pattern
   * to request for it, or null.
   */
  function connectorBase(value) {
    const url = safeUrl(value, false);
    if (!url) return null;
    const parsed = new URL(url);
    if (parsed.username || parsed.password) return null;
    const path = parsed.pathname.replace(/\/+$/, '');
    return { base: parsed.origin + path, pattern: parsed.origin + '/*', origin: parsed.origin };
  }

  return {
    LOOPBACK, safeUrl, connectorBase,
  };
});
