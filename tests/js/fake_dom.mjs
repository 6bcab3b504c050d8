// A tiny DOM for node's test runner: just what extension/dom.js and render.js use. Setting innerHTML
// (or outerHTML) throws, so a test fails if rendering ever goes through HTML parsing.
export class FakeNode {
  constructor(doc) { this.ownerDocument = doc; this.parentNode = null; this.childNodes = []; }
  appendChild(child) {
    if (child.parentNode) child.parentNode.removeChild(child);
    child.parentNode = this; this.childNodes.push(child); return child;
  }
  append(...children) { for (const c of children) this.appendChild(typeof c === 'string' ? this.ownerDocument.createTextNode(c) : c); }
  removeChild(child) { this.childNodes = this.childNodes.filter((c) => c !== child); child.parentNode = null; return child; }
  replaceChildren(...children) { for (const c of [...this.childNodes]) this.removeChild(c); this.append(...children); }
  replaceWith(other) {
    const parent = this.parentNode; if (!parent) return;
    const i = parent.childNodes.indexOf(this);
    if (other.parentNode) other.parentNode.removeChild(other);
    parent.childNodes[i] = other; other.parentNode = parent; this.parentNode = null;
  }
  get textContent() { return this.childNodes.map((c) => c.textContent).join(''); }
  set textContent(value) { this.replaceChildren(this.ownerDocument.createTextNode(String(value))); }
}

export class FakeText extends FakeNode {
  constructor(doc, text) { super(doc); this.nodeType = 3; this.data = text; }
  get textContent() { return this.data; }
  set textContent(value) { this.data = String(value); }
}

export class FakeElement extends FakeNode {
  constructor(doc, tag, ns) {
    super(doc); this.nodeType = 1; this.tagName = tag.toUpperCase(); this.namespaceURI = ns || null;
    this.attributes = new Map(); this.listeners = {};
    const el = this;
    this.classList = {
      add: (c) => el.setAttribute('class', [...new Set([...el._classes(), c])].join(' ')),
      remove: (c) => el.setAttribute('class', el._classes().filter((x) => x !== c).join(' ')),
      contains: (c) => el._classes().includes(c),
      toggle: (c) => { if (el.classList.contains(c)) { el.classList.remove(c); return false; } el.classList.add(c); return true; },
    };
  }
  _classes() { return (this.getAttribute('class') || '').split(/\s+/).filter(Boolean); }
  setAttribute(name, value) { this.attributes.set(name, String(value)); }
  getAttribute(name) { return this.attributes.has(name) ? this.attributes.get(name) : null; }
  hasAttribute(name) { return this.attributes.has(name); }
  removeAttribute(name) { this.attributes.delete(name); }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatch(type) { const ev = { type, currentTarget: this, target: this }; for (const fn of this.listeners[type] || []) fn(ev); }
  set innerHTML(_) { throw new Error('innerHTML used'); }
  get innerHTML() { throw new Error('innerHTML used'); }
  set outerHTML(_) { throw new Error('outerHTML used'); }
  insertAdjacentHTML() { throw new Error('insertAdjacentHTML used'); }
  _matches(selector) {
    const m = /^(\w+)?(?:\.([\w-]+))?(?:\[([\w-]+)(?:="([^"]*)")?\])?$/.exec(selector);
    if (!m) throw new Error('unsupported selector ' + selector);
    const [, tag, cls, attr, val] = m;
    if (tag && this.tagName !== tag.toUpperCase()) return false;
    if (cls && !this._classes().includes(cls)) return false;
    if (attr && (!this.hasAttribute(attr) || (val !== undefined && this.getAttribute(attr) !== val))) return false;
    return true;
  }
  querySelectorAll(selector) {
    const out = [];
    const walk = (node) => { for (const c of node.childNodes) { if (c.nodeType === 1) { if (c._matches(selector)) out.push(c); walk(c); } } };
    walk(this); return out;
  }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
  closest(selector) { let n = this; while (n && n.nodeType === 1) { if (n._matches(selector)) return n; n = n.parentNode; } return null; }
  get value() { return this._value || ''; }
  set value(v) { this._value = String(v); }
}

export class FakeDocument {
  createElement(tag) { return new FakeElement(this, tag); }
  createElementNS(ns, tag) { return new FakeElement(this, tag, ns); }
  createTextNode(text) { return new FakeText(this, text); }
}

/** Every element below `root`, depth first. */
export function elements(root) {
  const out = [];
  const walk = (node) => { for (const c of node.childNodes) if (c.nodeType === 1) { out.push(c); walk(c); } };
  walk(root); return out;
}
