/*
 * Yorisoi background (Chrome: service worker; Firefox: event page). The ONLY place that talks
 * to the connector: content scripts' own fetches would go out with the helpdesk page's origin
 * and be blocked by CORS, and they must never see the agent's token. The token is read from
 * storage.local here, sent as `Authorization: Bearer`, and never passed to a page.
 */
/* global importScripts, YorisoiUrl, YorisoiPages, YorisoiProtocol */
// Chrome's service worker loads them here; Firefox's event page from manifest.json's background.scripts.
if (typeof YorisoiProtocol === 'undefined' && typeof importScripts === 'function') {
  importScripts('url.js', 'helpdesk_pages.js', 'protocol.js');
}
const TIMEOUT_MS = 10000;
const TICKETS_KEY = 'tabTickets';  // storage.session: survives the service worker's restarts
const draftChecks = new Map();  // sender → AbortController of its draft check in flight

// The connector URL, first found wins: an enterprise policy (storage.managed: Chrome/Edge
// 3rdparty → extensions → <id>, Firefox policies.json 3rdparty → Extensions → <id>), the
// agent's own choice in the options (storage.local), the URL a packaged build was made for
// (config.json, written by `yorisoi extension build`; absent in the source folder).
async function managedUrl() {
  try {
    const { connectorUrl } = await chrome.storage.managed.get('connectorUrl');
    return typeof connectorUrl === 'string' ? connectorUrl : '';
  } catch (e) {
    return '';  // no policy (Firefox throws when none is set)
  }
}

let presetCache;
async function presetUrl() {
  if (presetCache === undefined) {
    try {
      const config = await (await fetch(chrome.runtime.getURL('config.json'))).json();
      presetCache = config && typeof config.connectorUrl === 'string' ? config.connectorUrl : '';
    } catch (e) {
      presetCache = '';
    }
  }
  return presetCache;
}

async function connectorSettings() {
  const { connectorUrl, apiToken, signedInAs } = await chrome.storage.local.get(['connectorUrl', 'apiToken', 'signedInAs']);
  const managed = await managedUrl();
  const url = managed || connectorUrl || (await presetUrl());
  return { url, managed: Boolean(managed), token: apiToken || '', signedInAs: signedInAs || '' };
}

async function connector() {
  const { url, token } = await connectorSettings();
  const target = YorisoiUrl.connectorBase(url || '');
  return target && token ? { base: target.base, token } : null;
}

// 「Yorisoi にログイン」: the connector checks the dashboard account (or the SSO proxy's header)
// and mints this agent's own token, kept in storage.local like a pasted one.
async function signIn(req) {
  const { url } = await connectorSettings();
  const target = YorisoiUrl.connectorBase(url || '');
  if (!target) return { ok: false, state: 'not_configured' };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  let response;
  try {
    response = await fetch(target.base + '/extension/signin', {
      method: 'POST', signal: controller.signal, cache: 'no-store', redirect: 'error',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Yorisoi-Extension': '1' },
      body: JSON.stringify(req.name ? { name: req.name, password: req.password } : {}),
      // Single sign-on: the proxy knows the agent by its own cookie; a password needs none.
      credentials: req.name ? 'omit' : 'include',
    });
  } catch (e) {
    return { ok: false, state: 'unreachable' };
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 201 && data && typeof data.token === 'string' && typeof data.agent === 'string') {
    await chrome.storage.local.set({ apiToken: data.token, signedInAs: data.agent, connectorUrl: target.base });
    return { ok: true, agent: data.agent };
  }
  const message = data && typeof data.message_ja === 'string'
    ? { message_ja: data.message_ja, message_en: String(data.message_en || '') } : null;
  const state = response.status === 429 ? 'rate_limited' : response.status === 401 ? 'bad_login' : 'error';
  return { ok: false, state, status: response.status, message };
}

async function signOut() {
  const target = await connector();
  if (target) {
    // Revoke it on the connector first; forget it here whatever the answer (offline too).
    await fetch(target.base + '/extension/signout', {
      method: 'POST', headers: { Authorization: 'Bearer ' + target.token }, credentials: 'omit', cache: 'no-store',
    }).catch(() => null);
  }
  await chrome.storage.local.remove(['apiToken', 'signedInAs']);
  return { ok: true };
}

async function api(method, path, body, outer) {
  const target = await connector();
  if (!target) return { ok: false, state: 'not_configured' };
  return YorisoiProtocol.callApi({ url: target.base + '/api/v1' + path, token: target.token, method, body, outer,
    timeoutMs: TIMEOUT_MS });
}

// UI strings: the agent may pick Japanese or English in the options (a Japanese team's browser
// is not always in Japanese); `auto` follows the browser. chrome.i18n cannot switch locales,
// so the pages get the chosen _locales file from here.
const messageCache = {};
async function uiMessages() {
  const { uiLang } = await chrome.storage.local.get('uiLang');
  const auto = (chrome.i18n.getUILanguage() || 'en').toLowerCase().startsWith('ja') ? 'ja' : 'en';
  const lang = uiLang === 'ja' || uiLang === 'en' ? uiLang : auto;
  if (!messageCache[lang]) {
    messageCache[lang] = await (await fetch(chrome.runtime.getURL(`_locales/${lang}/messages.json`))).json();
  }
  return { ok: true, lang, messages: messageCache[lang] };
}

async function tabTickets() {
  const area = chrome.storage.session;
  if (!area) return {};
  const stored = await area.get(TICKETS_KEY);
  return stored[TICKETS_KEY] || {};
}

async function rememberTicket(tabId, ticket) {
  if (chrome.storage.session) {
    const all = await tabTickets();
    if (ticket) all[tabId] = ticket; else delete all[tabId];
    await chrome.storage.session.set({ [TICKETS_KEY]: all });
  }
  // Tell an open side panel (or Firefox sidebar) which ticket this tab shows now.
  chrome.runtime.sendMessage({ type: 'ticketChanged', tabId, ticket }).catch(() => {});
}

async function activeTabId(requested) {
  if (Number.isInteger(requested)) return requested;
  const [tab] = await chrome.tabs.query({ active: true, lastFocusedWindow: true });
  return tab ? tab.id : null;
}

function enablePanel(tabId, enabled) {
  // chrome.sidePanel: Chromium 114+; Firefox has sidebar_action instead (no per-tab toggle needed).
  if (chrome.sidePanel && chrome.sidePanel.setOptions) {
    chrome.sidePanel.setOptions({ tabId, path: 'sidepanel.html', enabled }).catch(() => {});
  }
}

async function handle(req, sender) {
  const q = (params) => new URLSearchParams(params).toString();
  // Sign-in, sign-out and the settings: the options page only, never a helpdesk page's script.
  if (YorisoiProtocol.PAGE_ONLY.has(req.type) && !(sender.url || '').startsWith(chrome.runtime.getURL(''))) {
    return { ok: false, state: 'error' };
  }
  switch (req.type) {
    case 'config': {
      const settings = await connectorSettings();
      return { ok: true, connectorUrl: settings.url, managed: settings.managed, signedIn: Boolean(settings.token),
        signedInAs: settings.signedInAs };
    }
    case 'signIn':
      return signIn(req);
    case 'signOut':
      return signOut();
    case 'panelState': {
      // Remembered for every ticket (not per ticket): an agent who closes it wants the room.
      const { panelCollapsed } = await chrome.storage.local.get('panelCollapsed');
      return { ok: true, collapsed: panelCollapsed === true };
    }
    case 'setPanelCollapsed':
      await chrome.storage.local.set({ panelCollapsed: req.collapsed });
      return { ok: true };
    case 'context':
      return api('GET', '/context?' + q({ helpdesk: req.helpdesk, ticket: req.ticket }));
    case 'draftCheck': {
      // Checks run as the agent types: a newer check from the same tab or panel aborts the
      // request of the one before, whose answer nobody will look at.
      const from = sender.tab ? 'tab:' + sender.tab.id : 'page:' + (sender.url || '');
      if (draftChecks.has(from)) draftChecks.get(from).abort();
      const mine = new AbortController();
      draftChecks.set(from, mine);
      try {
        return await api('POST', '/draft-check', { helpdesk: req.helpdesk, ticket: req.ticket, text: req.text }, mine.signal);
      } finally {
        if (draftChecks.get(from) === mine) draftChecks.delete(from);
      }
    }
    case 'tabInsertDraft': {
      const tabId = await activeTabId(req.tabId);
      if (tabId === null) return { ok: true, inserted: false };
      try {
        const answer = await chrome.tabs.sendMessage(tabId, { type: 'insertDraft', text: req.text });
        return { ok: true, inserted: Boolean(answer && answer.ok) };
      } catch (e) {
        return { ok: true, inserted: false };
      }
    }
    case 'correction':
      return api('POST', '/corrections', { helpdesk: req.helpdesk, ticket: req.ticket, label: req.label, value: req.value });
    case 'ticketShown':
      if (sender.tab && Number.isInteger(sender.tab.id)) {
        enablePanel(sender.tab.id, true);
        await rememberTicket(sender.tab.id, { helpdesk: req.helpdesk, ticket: req.ticket });
      }
      return { ok: true };
    case 'status':
      return { ok: true, configured: Boolean(await connector()) };
    case 'whoami':
      return api('GET', '/me');
    case 'messages':
      return uiMessages();
    case 'openOptions':
      await chrome.runtime.openOptionsPage();
      return { ok: true };
    case 'activeTicket': {
      const tabId = await activeTabId(req.tabId);
      const all = await tabTickets();
      return { ok: true, tabId, ticket: tabId !== null ? all[tabId] || null : null };
    }
    case 'tabDraft': {
      const tabId = await activeTabId(req.tabId);
      if (tabId === null) return { ok: true, text: '' };
      try {
        const answer = await chrome.tabs.sendMessage(tabId, { type: 'readDraft' });
        return { ok: true, text: answer && typeof answer.text === 'string' ? answer.text : '' };
      } catch (e) {
        return { ok: true, text: '' };
      }
    }
    default:
      return { ok: false, state: 'error' };
  }
}

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  // Only our own content scripts and pages; web pages cannot message us (no externally_connectable).
  if (sender.id !== chrome.runtime.id) return false;
  if (msg && (msg.type === 'ticketChanged' || msg.type === 'draftChanged')) return false;  // broadcasts to the pages
  const req = YorisoiProtocol.validateRequest(msg);
  if (!req) {
    sendResponse({ ok: false, state: 'error' });
    return false;
  }
  handle(req, sender).then(sendResponse, () => sendResponse({ ok: false, state: 'error' }));
  return true;  // answer asynchronously
});

// In-app navigation backup: the helpdesks switch tickets with pushState, which re-runs no
// content script. The content script listens to the Navigation API and popstate itself; this
// relay covers what those miss. The tab re-reads its own location (the URL is not trusted).
chrome.tabs.onUpdated.addListener((tabId, changeInfo) => {
  if (!changeInfo.url) return;
  const ticket = YorisoiPages.parseTicketUrl(changeInfo.url);
  enablePanel(tabId, Boolean(ticket));
  if (!ticket) rememberTicket(tabId, null);
  chrome.tabs.sendMessage(tabId, { type: 'locationChanged' }).catch(() => {});
});

chrome.tabs.onRemoved.addListener((tabId) => { rememberTicket(tabId, null); });

function setUp() {
  if (chrome.sidePanel && chrome.sidePanel.setPanelBehavior) {
    chrome.sidePanel.setPanelBehavior({ openPanelOnActionClick: true }).catch(() => {});
    // Off by default; enabled per tab on ticket pages (ticketShown / onUpdated).
    chrome.sidePanel.setOptions({ path: 'sidepanel.html', enabled: false }).catch(() => {});
  }
}
chrome.runtime.onInstalled.addListener(setUp);
// First install (IT's policy or by hand): open the options so the agent can sign in at once.
chrome.runtime.onInstalled.addListener(async ({ reason }) => {
  if (reason === 'install' && !(await connector())) chrome.runtime.openOptionsPage().catch(() => {});
});
chrome.runtime.onStartup.addListener(setUp);

// Firefox: the toolbar button toggles the sidebar (sidebarAction needs this user action).
if (typeof browser !== 'undefined' && browser.sidebarAction && chrome.action) {
  chrome.action.onClicked.addListener(() => { browser.sidebarAction.toggle(); });
}
