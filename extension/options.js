/*
 * Options: the connector URL, signing in (「Yorisoi にログイン」) or pasting a token, and the UI
 * language. Access to the connector's origin is asked for at runtime (permissions.request,
 * inside the click) unless the packaged build already holds it, so the extension holds host
 * permission for exactly the one connector the agent uses. The token — minted by the connector
 * at sign-in, or pasted — is kept in storage.local (never sync: it would travel to the agent's
 * other browsers) and only the background worker reads it or talks to the connector.
 */
/* global YorisoiUrl, YorisoiFormat */
(async () => {
  const ui = await chrome.runtime.sendMessage({ type: 'messages' }).catch(() => null);
  const t = ui && ui.ok ? YorisoiFormat.translator(ui.messages) : (key, ...subs) => chrome.i18n.getMessage(key, subs.map(String)) || key;
  const lang = ui && ui.ok ? ui.lang : 'en';
  document.title = t('optionsTitle');
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);

  const $ = (id) => document.getElementById(id);
  const form = $('form'), url = $('url'), token = $('token'), status = $('status'), uiLang = $('lang');
  const account = $('account'), password = $('password'), signedIn = $('signed-in');
  const signinForm = $('signin-form'), signout = $('signout');
  const say = (text, error) => { status.textContent = text; status.className = error ? 'error' : 'ok'; };
  const sayAnswer = (answer, fallback) => {
    const m = answer && answer.message;
    say(m ? (lang === 'ja' ? m.message_ja : m.message_en) || t(fallback) : t(fallback), true);
  };

  async function refresh() {
    const config = await chrome.runtime.sendMessage({ type: 'config' }).catch(() => null);
    if (!config || !config.ok) return;
    if (config.connectorUrl && !url.value) url.value = config.connectorUrl;
    // A URL IT set by policy cannot be changed here.
    url.readOnly = config.managed;
    $('url-managed').hidden = !config.managed;
    signedIn.hidden = !config.signedIn;
    signout.hidden = !config.signedIn;
    signinForm.hidden = config.signedIn;
    signedIn.textContent = config.signedIn && config.signedInAs ? t('signedInAs', config.signedInAs) : '';
  }

  const { uiLang: chosen, apiToken } = await chrome.storage.local.get(['uiLang', 'apiToken']);
  uiLang.value = chosen === 'ja' || chosen === 'en' ? chosen : 'auto';
  if (apiToken) token.placeholder = '••••••••（保存済み / saved）';
  await refresh();
  // Ready: tests (and impatient agents) wait for this before clicking.
  document.documentElement.lang = lang;

  // Asks for the connector's origin inside the click (no await before permissions.request).
  function withConnector(then) {
    const target = YorisoiUrl.connectorBase(url.value.trim());
    if (!target) { say(t('invalidUrl'), true); return; }
    chrome.permissions.request({ origins: [target.pattern] }).then(async (granted) => {
      if (!granted) { say(t('permissionDenied'), true); return; }
      if (!url.readOnly) await chrome.storage.local.set({ connectorUrl: target.base });
      await then(target);
    }, () => say(t('permissionDenied'), true));
  }

  signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = account.value.trim();
    if (Boolean(name) !== Boolean(password.value)) { say(t('signInBothOrNone'), true); return; }
    withConnector(async () => {
      say(t('signingIn'));
      const answer = await chrome.runtime.sendMessage({ type: 'signIn', name, password: password.value }).catch(() => null);
      password.value = '';
      if (answer && answer.ok) {
        say(t('connectionOk', answer.agent));
        await refresh();
      } else if (answer && answer.state === 'unreachable') {
        say(t('state_unreachable'), true);
      } else {
        sayAnswer(answer, 'signInFailed');
      }
    });
  });

  signout.addEventListener('click', async () => {
    await chrome.runtime.sendMessage({ type: 'signOut' }).catch(() => null);
    say(t('signedOut'));
    await refresh();
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const typed = token.value.trim();
    if (typed && !/^ysi_[A-Za-z0-9_-]{20,}$/.test(typed)) { say(t('invalidToken'), true); return; }
    withConnector(async () => {
      const values = { uiLang: uiLang.value };
      // A pasted token replaces a signed-in one (it is no longer "signed in as").
      if (typed) Object.assign(values, { apiToken: typed, signedInAs: '' });
      await chrome.storage.local.set(values);
      token.value = '';
      say(t('saved'));
      const me = await chrome.runtime.sendMessage({ type: 'whoami' });
      if (me && me.ok) say(t('connectionOk', me.data.agent));
      else say(t('state_' + ((me && me.state) || 'error')), true);
      await refresh();
    });
  });
})();
