// Tests of the extension as a whole: locales, no HTML parsing, the manifest, load order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import vm from 'node:vm';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const EXT = join(here, '..', '..', 'extension');
const load = (file) => createRequire(import.meta.url)(join(EXT, file));
const messages = (lang) => JSON.parse(readFileSync(join(EXT, '_locales', lang, 'messages.json'), 'utf8'));

test('both locales have the same keys, and every key the code uses exists', () => {
  const ja = messages('ja'), en = messages('en');
  assert.deepEqual(Object.keys(ja).sort(), Object.keys(en).sort());
  const sources = readdirSync(EXT).filter((f) => f.endsWith('.js') || f.endsWith('.html') || f === 'manifest.json')
    .map((f) => readFileSync(join(EXT, f), 'utf8')).join('\n');
  const used = new Set([...sources.matchAll(/\bt\('([A-Za-z_]+)'/g)].map((m) => m[1])
    .concat([...sources.matchAll(/data-i18n="([A-Za-z_]+)"/g)].map((m) => m[1]))
    .concat([...sources.matchAll(/__MSG_([A-Za-z_]+)__/g)].map((m) => m[1])));
  for (const state of ['loading', 'not_configured', 'unreachable', 'unauthorized', 'not_found', 'rate_limited', 'error', 'no_ticket', 'reload']) used.add('state_' + state);
  for (const key of used) if (!key.endsWith('_')) assert.ok(key in ja, `missing message ${key}`);
});

test('no HTML parsing or eval anywhere in the extension', () => {
  for (const file of readdirSync(EXT).filter((f) => f.endsWith('.js'))) {
    const source = readFileSync(join(EXT, file), 'utf8');
    for (const bad of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function']) {
      assert.ok(!source.includes(bad), `${file} uses ${bad}`);
    }
  }
});

test('manifest: one folder for Chrome MV3 and Firefox', () => {
  const manifest = JSON.parse(readFileSync(join(EXT, 'manifest.json'), 'utf8'));
  assert.equal(manifest.manifest_version, 3);
  assert.equal(manifest.background.service_worker, 'background.js');
  assert.deepEqual(manifest.background.scripts, ['url.js', 'helpdesk_pages.js', 'protocol.js', 'background.js']);
  assert.ok(manifest.browser_specific_settings.gecko.id);
  assert.equal(manifest.side_panel.default_path, manifest.sidebar_action.default_panel);
  const [cs] = manifest.content_scripts;
  assert.deepEqual(cs.js, ['url.js', 'helpdesk_pages.js', 'format.js', 'dom.js', 'render.js', 'content.js']);
  assert.ok(cs.matches.includes('https://*.zendesk.com/agent/*') && cs.matches.includes('https://*.freshdesk.com/a/*'));
  assert.ok(!manifest.permissions.includes('tabs'), 'no broad tabs permission');
});

// Each page's scripts, in the order the browser runs them: the manifest's content script and
// background (Firefox), the worker's importScripts (Chrome), and the two extension pages.
function loadOrders() {
  const manifest = JSON.parse(readFileSync(join(EXT, 'manifest.json'), 'utf8'));
  const scripts = (page) => [...readFileSync(join(EXT, page), 'utf8').matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]);
  const imported = /importScripts\(([^)]*)\)/.exec(readFileSync(join(EXT, 'background.js'), 'utf8'))[1]
    .split(',').map((s) => s.trim().replace(/^'|'$/g, ''));
  return {
    content: manifest.content_scripts[0].js, background: manifest.background.scripts,
    serviceWorker: [...imported, 'background.js'], sidepanel: scripts('sidepanel.html'), options: scripts('options.html'),
  };
}

test('every page loads each module after the ones it needs, and every namespace its script uses', () => {
  const modules = ['url.js', 'helpdesk_pages.js', 'format.js', 'dom.js', 'protocol.js', 'render.js'];
  for (const [page, files] of Object.entries(loadOrders())) {
    const glue = files[files.length - 1];
    const libraries = files.slice(0, -1);
    assert.ok(libraries.every((f) => modules.includes(f)), `${page}: ${files}`);
    // As the browser does: each file a plain script on one global object, in order (a module
    // whose dependency is missing throws "load X before it").
    const sandbox = vm.createContext({ URL });
    for (const file of libraries) vm.runInContext(readFileSync(join(EXT, file), 'utf8'), sandbox, { filename: file });
    const used = new Set([...readFileSync(join(EXT, glue), 'utf8').matchAll(/\b(Yorisoi[A-Z][A-Za-z]+)\./g)].map((m) => m[1]));
    assert.ok(used.size > 0, glue);
    for (const name of used) assert.equal(typeof sandbox[name], 'object', `${page}: ${glue} uses ${name}, not loaded before it`);
  }
});

test('a module loaded before what it needs says so', () => {
  const sandbox = vm.createContext({ URL });
  assert.throws(() => vm.runInContext(readFileSync(join(EXT, 'dom.js'), 'utf8'), sandbox), /dom\.js: load url\.js before it/);
});

test('no module of the old single shared.js is left', () => {
  assert.ok(!readdirSync(EXT).includes('shared.js'));
  for (const file of readdirSync(EXT).filter((f) => /\.(js|html|json)$/.test(f))) {
    assert.ok(!readFileSync(join(EXT, file), 'utf8').includes('YorisoiShared'), file);
  }
});
