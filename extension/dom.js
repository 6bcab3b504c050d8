/*
 * Yorisoi sidebar: the DOM builder.
 *
 * Everything that comes from the connector — post text, names, bios, evidence — is hostile
 * (anyone can post "<img onerror>" about a brand). It only ever becomes DOM through text
 * nodes: `el()` below never parses HTML, refuses on* attributes, and keeps links only when they
 * are absolute http(s) URLs (images: https only). Nothing in this extension parses HTML.
 * Plain script, no build step: loaded by a <script>/manifest entry it defines a global
 * namespace; under node (tests/js/) it is a CommonJS module. No chrome.* calls here.
 * Needs url.js.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory(require('./url.js'));
  else root.YorisoiDom = factory(root.YorisoiUrl);
})(typeof globalThis !== 'undefined' ? globalThis : this, function (Url) {
  'use strict';
  if (!Url) throw new Error('dom.js: load url.js before it');
  const { safeUrl } = Url;

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ALLOWED_ATTRS = /^(class|title|role|type|lang|dir|id|name|for|value|placeholder|rows|disabled|hidden|tabindex|alt|width|height|viewBox|points|cx|cy|r|x|y|x1|x2|y1|y2|d|fill|stroke|stroke-width|preserveAspectRatio|data-[a-z-]+|aria-[a-z-]+)$/;

  /**
   * Build an element. attrs: plain attributes (allow-listed), `href` (http(s) only, else the
   * attribute is dropped), `src` (https only), `on` ({event: handler}). Children: strings
   * (become text nodes), nodes, arrays, null/undefined/false (skipped).
   */
  function el(doc, tag, attrs, ...children) {
    const svg = tag.startsWith('svg:');
    const node = svg ? doc.createElementNS(SVG_NS, tag.slice(4)) : doc.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'on') {
        for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      } else if (name === 'href') {
        const href = safeUrl(value, false);
        if (href) {
          node.setAttribute('href', href);
          node.setAttribute('target', '_blank');
          node.setAttribute('rel', 'noopener noreferrer');
        }
      } else if (name === 'src') {
        const src = safeUrl(value, true);
        if (src) {
          node.setAttribute('src', src);
          node.setAttribute('referrerpolicy', 'no-referrer');
        }
      } else if (ALLOWED_ATTRS.test(name)) {
        node.setAttribute(name, value === true ? '' : String(value));
      }
    }
    append(doc, node, children);
    return node;
  }

  function append(doc, node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(doc, node, child);
      else if (typeof child === 'string' || typeof child === 'number') node.appendChild(doc.createTextNode(String(child)));
      else node.appendChild(child);
    }
  }

  return {
    el,
  };
});
