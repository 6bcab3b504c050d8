/*
 * The side panel (Chrome chrome.sidePanel) and the Firefox sidebar (sidebar_action): the same
 * view as the in-page sidebar, for the ticket of the active tab (or of ?tabId=N).
 */
/* global YorisoiFormat, YorisoiRender */
(async () => {
  const params = new URLSearchParams(location.search);
  const forcedTab = params.has('tabId') && /^\d+$/.test(params.get('tabId')) ? Number(params.get('tabId')) : null;

  async function send(msg) {
    try {
      return (await chrome.runtime.sendMessage(msg)) || { ok: false, state: 'error' };
    } catch (e) {
      return { ok: false, state: 'error' };
    }
  }

  const ui = await send({ type: 'messages' });
  const lang = ui.ok ? ui.lang : 'en';
  const t = ui.ok ? YorisoiFormat.translator(ui.messages) : (key, ...subs) => chrome.i18n.getMessage(key, subs.map(String)) || key;
  document.documentElement.lang = lang;

  const style = document.createElement('style');
  style.textContent = YorisoiRender.CSS + '\nbody { margin: 0; }';
  const sidebar = YorisoiRender.createSidebar(document, {
    lang, t, send, embedded: true,
    readDraft: async () => ((await send({ type: 'tabDraft', tabId: forcedTab })).text || ''),
    insertDraft: async (text) => Boolean((await send({ type: 'tabInsertDraft', tabId: forcedTab, text })).inserted),
    onOpenOptions: () => chrome.runtime.openOptionsPage(),
  });
  document.head.appendChild(style);
  document.body.appendChild(sidebar.panel);

  async function refresh() {
    const answer = await send({ type: 'activeTicket', tabId: forcedTab });
    await sidebar.show(answer && answer.ok ? answer.ticket : null);
  }
  chrome.runtime.onMessage.addListener((msg, sender) => {
    if (sender.id !== chrome.runtime.id || !msg) return;
    // The agent types in the helpdesk editor of a tab: check that draft (debounced) when the
    // tab is the one this panel follows.
    if (msg.type === 'draftChanged' && sender.tab && (forcedTab === null ? sender.tab.active : sender.tab.id === forcedTab)) {
      sidebar.draftChanged(msg.text, msg.ticket);
      return;
    }
    if (msg.type !== 'ticketChanged') return;
    if (forcedTab === null || msg.tabId === forcedTab) refresh();
  });
  if (forcedTab === null && chrome.tabs && chrome.tabs.onActivated) chrome.tabs.onActivated.addListener(refresh);
  refresh();
})();
