// The background worker's sign-in and settings, run in a vm with a stub of the chrome.* APIs:
// only the extension's own pages may sign in, the request is the one the connector expects
// (JSON + X-Yorisoi-Extension; cookies only for SSO), the minted token is stored, and the
// connector URL comes from policy, then the agent's choice, then the build's config.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const BASE = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop/';

function worker({ managed = null, local = {}, preset = null, answer = { status: 201, body: { token: 'ysi_' + 'a'.repeat(43), agent: '佐藤' } } } = {}) {
  const store = { ...local };
  const fetches = [];
  let listener = null;
  const chrome = {
    runtime: {
      id: 'abcdefghijklmnopabcdefghijklmnop',
      getURL: (path) => BASE + path,
      onMessage: { addListener: (fn) => { listener = fn; } },
      onInstalled: { addListener: () => {} },
      onStartup: { addListener: () => {} },
      sendMessage: () => Promise.resolve(),
      openOptionsPage: () => Promise.resolve(),
    },
    storage: {
      local: {
        get: async (keys) => Object.fromEntries([].concat(keys).filter((k) => k in store).map((k) => [k, store[k]])),
        set: async (values) => { Object.assign(store, values); },
        remove: async (keys) => { for (const k of [].concat(keys)) delete store[k]; },
      },
      managed: { get: async () => { if (managed === null) throw new Error('Managed storage manifest not found'); return managed; } },
    },
    tabs: { onUpdated: { addListener: () => {} }, onRemoved: { addListener: () => {} } },
    i18n: { getUILanguage: () => 'ja' },
  };
  const fetch = async (url, init) => {
    fetches.push({ url, init });
    if (url === BASE + 'config.json') {
      if (preset === null) throw new TypeError('Failed to fetch');
      return { json: async () => ({ connectorUrl: preset }) };
    }
    return { status: answer.status, json: async () => answer.body };
  };
  const context = vm.createContext({ chrome, fetch, URL, URLSearchParams, AbortController, setTimeout, clearTimeout, console });
  for (const file of ['url.js', 'helpdesk_pages.js', 'protocol.js', 'background.js']) {
    vm.runInContext(readFileSync(join(EXT, file), 'utf8'), context, { filename: file });
  }
  const send = (msg, sender) => new Promise((resolve) => {
    // Answers come from the vm's realm: compare them as plain data.
    listener(msg, { id: chrome.runtime.id, ...sender }, (answer) => resolve(JSON.parse(JSON.stringify(answer))));
  });
  return { send, store, fetches };
}

const OPTIONS = { url: BASE + 'options.html', tab: { id: 3 } };
const HELPDESK = { url: 'https://acme.zendesk.com/agent/tickets/1', tab: { id: 4 } };

test('a helpdesk page\'s content script cannot sign in, out or read the settings', async () => {
  const w = worker({ local: { connectorUrl: 'https://yorisoi.example.co.jp', apiToken: 'ysi_x' } });
  for (const msg of [{ type: 'signIn', name: '佐藤', password: 'pw' }, { type: 'signOut' }, { type: 'config' }]) {
    assert.deepEqual(await w.send(msg, HELPDESK), { ok: false, state: 'error' });
  }
  assert.equal(w.fetches.filter((f) => !f.url.endsWith('config.json')).length, 0);
  assert.equal(w.store.apiToken, 'ysi_x');
});

test('sign-in with a password: JSON, the extension header, no cookies; the token is stored', async () => {
  const w = worker({ local: { connectorUrl: 'https://yorisoi.example.co.jp/' } });
  const answer = await w.send({ type: 'signIn', name: '佐藤', password: 'pw' }, OPTIONS);
  assert.deepEqual(answer, { ok: true, agent: '佐藤' });
  const [call] = w.fetches.filter((f) => f.url.includes('/extension/signin'));
  assert.equal(call.url, 'https://yorisoi.example.co.jp/extension/signin');
  assert.equal(call.init.method, 'POST');
  assert.equal(call.init.headers['X-Yorisoi-Extension'], '1');
  assert.equal(call.init.headers['Content-Type'], 'application/json');
  assert.equal(call.init.credentials, 'omit');
  assert.deepEqual(JSON.parse(call.init.body), { name: '佐藤', password: 'pw' });
  assert.equal(w.store.apiToken, 'ysi_' + 'a'.repeat(43));
  assert.equal(w.store.signedInAs, '佐藤');
  assert.ok(!JSON.stringify(w.store).includes('"pw"'), 'the password is never stored');
});

test('single sign-on sends the proxy\'s cookies and no credentials', async () => {
  const w = worker({ preset: 'https://yorisoi.example.co.jp' });
  await w.send({ type: 'signIn' }, OPTIONS);
  const [call] = w.fetches.filter((f) => f.url.includes('/extension/signin'));
  assert.equal(call.init.credentials, 'include');
  assert.deepEqual(JSON.parse(call.init.body), {});
});

test('a refused sign-in keeps the connector\'s message and stores nothing', async () => {
  const w = worker({ local: { connectorUrl: 'https://y.example' },
    answer: { status: 401, body: { message_ja: 'アカウント名またはパスワードが違います。', message_en: 'wrong account name or password' } } });
  const answer = await w.send({ type: 'signIn', name: '佐藤', password: 'bad' }, OPTIONS);
  assert.equal(answer.ok, false);
  assert.equal(answer.state, 'bad_login');
  assert.equal(answer.message.message_ja, 'アカウント名またはパスワードが違います。');
  assert.ok(!('apiToken' in w.store));
});

test('the connector URL: IT\'s policy, then the agent\'s choice, then the build\'s preset', async () => {
  const config = async (opts) => (await worker(opts).send({ type: 'config' }, OPTIONS));
  assert.equal((await config({ preset: 'https://preset.example' })).connectorUrl, 'https://preset.example');
  assert.equal((await config({ preset: 'https://preset.example', local: { connectorUrl: 'https://mine.example' } })).connectorUrl,
    'https://mine.example');
  const managed = await config({ managed: { connectorUrl: 'https://it.example' }, local: { connectorUrl: 'https://mine.example' } });
  assert.equal(managed.connectorUrl, 'https://it.example');
  assert.equal(managed.managed, true);
  assert.equal((await config({})).connectorUrl, '');
});

test('the collapse is remembered through the background', async () => {
  const w = worker();
  assert.deepEqual(await w.send({ type: 'panelState' }, HELPDESK), { ok: true, collapsed: false });
  await w.send({ type: 'setPanelCollapsed', collapsed: true }, HELPDESK);
  assert.deepEqual(await w.send({ type: 'panelState' }, HELPDESK), { ok: true, collapsed: true });
});

test('sign-out revokes on the connector and forgets the token', async () => {
  const w = worker({ local: { connectorUrl: 'https://y.example', apiToken: 'ysi_' + 'b'.repeat(43), signedInAs: '佐藤' },
    answer: { status: 200, body: { revoked: 1 } } });
  assert.deepEqual(await w.send({ type: 'signOut' }, OPTIONS), { ok: true });
  const [call] = w.fetches.filter((f) => f.url.includes('/extension/signout'));
  assert.equal(call.init.headers.Authorization, 'Bearer ysi_' + 'b'.repeat(43));
  assert.ok(!('apiToken' in w.store) && !('signedInAs' in w.store));
});
