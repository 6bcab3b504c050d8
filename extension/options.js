/*
 * Options: the connector URL and the agent's own token. Access to the connector's origin is
 * asked for at runtime (permissions.request, inside the click) so the extension holds host
 * permission for exactly the one connector the agent uses. The token is kept in
 * storage.local (never sync: it would travel to the agent's other browsers) and only the
 * background worker reads it.
 */
/* global YorisoiUrl, YorisoiFormat */
(async () => {
  const ui = await chrome.runtime.sendMessage({ type: 'messages' }).catch(() => null);
  const t = ui && ui.ok ? YorisoiFormat.translator(ui.messages) : (key, ...subs) => chrome.i18n.getMessage(key, subs.map(String)) || key;
  document.documentElement.lang = ui && ui.ok ? ui.lang : 'en';
  document.title = t('optionsTitle');
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);

  const form = document.getElementById('form');
  const url = document.getElementById('url');
  const token = document.getElementById('token');
  const status = document.getElementById('status');
  const uiLang = document.getElementById('lang');
  const say = (text, error) => { status.textContent = text; status.className = error ? 'error' : 'ok'; };

  chrome.storage.local.get(['connectorUrl', 'apiToken', 'uiLang']).then(({ connectorUrl, apiToken, uiLang: chosen }) => {
    if (connectorUrl) url.value = connectorUrl;
    uiLang.value = chosen === 'ja' || chosen === 'en' ? chosen : 'auto';
    if (apiToken) token.placeholder = '••••••••（保存済み / saved）';
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const target = YorisoiUrl.connectorBase(url.value.trim());
    if (!target) { say(t('invalidUrl'), true); return; }
    const typed = token.value.trim();
    if (typed && !/^ysi_[A-Za-z0-9_-]{20,}$/.test(typed)) { say(t('invalidToken'), true); return; }
    // permissions.request must run inside the user's click: no await before it.
    chrome.permissions.request({ origins: [target.pattern] }).then(async (granted) => {
      if (!granted) { say(t('permissionDenied'), true); return; }
      const values = { connectorUrl: target.base, uiLang: uiLang.value };
      if (typed) values.apiToken = typed;
      await chrome.storage.local.set(values);
      token.value = '';
      say(t('saved'));
      const me = await chrome.runtime.sendMessage({ type: 'whoami' });
      if (me && me.ok) say(t('connectionOk', me.data.agent));
      else say(t('state_' + ((me && me.state) || 'error')), true);
    }, () => say(t('permissionDenied'), true));
  });
})();
