/*
 * Yorisoi sidebar: formatting (dates, account ages, counts) and the chrome.i18n-style
 * message translator.
 * Plain script, no build step: loaded by a <script>/manifest entry it defines a global
 * namespace; under node (tests/js/) it is a CommonJS module. No chrome.* calls here.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.YorisoiFormat = factory();
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';
  function formatDate(iso, lang) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    const pad = (n) => String(n).padStart(2, '0');
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function accountAge(days, lang) {
    if (typeof days !== 'number' || days < 0) return null;
    const years = Math.floor(days / 365);
    const months = Math.floor((days % 365) / 30);
    if (lang === 'ja') return years ? `${years}年${months ? months + 'か月' : ''}` : (months ? `${months}か月` : `${days}日`);
    if (years) return `${years} yr${years > 1 ? 's' : ''}${months ? ' ' + months + ' mo' : ''}`;
    return months ? `${months} mo` : `${days} d`;
  }

  function formatCount(n) {
    if (typeof n !== 'number') return '–';
    return n.toLocaleString('en-US');
  }

  /** A translator over chrome.i18n-style messages ({key: {message}}), for tests and pages. */
  function translator(messages) {
    // The same substitution chrome.i18n.getMessage does: $NAME$ → its placeholder's content,
    // then $1…$9 → the arguments (as text: the result is only ever used as a text node).
    return (key, ...subs) => {
      const entry = messages && messages[key];
      if (!entry) return key;
      let text = entry.message.replace(/\$([A-Za-z0-9_]+)\$/g, (m, name) => {
        const ph = entry.placeholders && entry.placeholders[name.toLowerCase()];
        return ph ? ph.content : m;
      });
      return text.replace(/\$(\d)/g, (m, n) => (subs[n - 1] !== undefined ? String(subs[n - 1]) : ''));
    };
  }

  return {
    formatDate, accountAge, formatCount, translator,
  };
});
