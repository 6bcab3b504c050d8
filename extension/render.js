/*
 * Yorisoi sidebar: rendering. The ticket's context, the draft check's findings, the states,
 * the sidebar controller shared by the in-page sidebar and the side panel, and its CSS. Every
 * element is made by dom.js's `el()`, so connector data only ever becomes text nodes.
 * Plain script, no build step: loaded by a <script>/manifest entry it defines a global
 * namespace; under node (tests/js/) it is a CommonJS module. No chrome.* calls here.
 * Needs url.js, format.js, dom.js.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory(require('./url.js'), require('./format.js'), require('./dom.js'));
  else root.YorisoiRender = factory(root.YorisoiUrl, root.YorisoiFormat, root.YorisoiDom);
})(typeof globalThis !== 'undefined' ? globalThis : this, function (Url, Format, Dom) {
  'use strict';
  if (!Url) throw new Error('render.js: load url.js before it');
  if (!Format) throw new Error('render.js: load format.js before it');
  if (!Dom) throw new Error('render.js: load dom.js before it');
  const { safeUrl } = Url;
  const { formatDate, accountAge, formatCount } = Format;
  const { el } = Dom;

  const SENTIMENT_CLASS = { negative: 'neg', neutral: 'neu', positive: 'pos' };
  /** The draft check runs this long after the agent stops typing (a check per keystroke would
   *  spend the token's rate limit and flicker). */
  const DRAFT_DEBOUNCE_MS = 400;

  function badge(doc, cls, text) {
    return el(doc, 'span', { class: 'badge ' + cls }, text);
  }

  /** A small SVG line chart of sentiment scores (-1..1), oldest left; the current post ringed. */
  function sentimentChart(doc, series, t) {
    const points = (series || []).filter((p) => typeof p.score === 'number');
    const width = 300, height = 70, pad = 8;
    const svg = el(doc, 'svg:svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width: '100%', height: String(height),
      role: 'img', 'aria-label': t('chartLabel'), preserveAspectRatio: 'none' });
    svg.appendChild(el(doc, 'svg:line', { x1: 0, x2: width, y1: height / 2, y2: height / 2, class: 'axis' }));
    if (!points.length) return svg;
    const x = (i) => points.length === 1 ? width / 2 : pad + (i * (width - 2 * pad)) / (points.length - 1);
    const y = (s) => pad + ((1 - Math.max(-1, Math.min(1, s))) / 2) * (height - 2 * pad);
    svg.appendChild(el(doc, 'svg:polyline', { points: points.map((p, i) => `${x(i).toFixed(1)},${y(p.score).toFixed(1)}`).join(' '),
      class: 'line', fill: 'none' }));
    points.forEach((p, i) => {
      svg.appendChild(el(doc, 'svg:circle', { cx: x(i).toFixed(1), cy: y(p.score).toFixed(1), r: p.current ? 5 : 3,
        class: 'dot ' + (SENTIMENT_CLASS[p.sentiment] || 'neu') + (p.current ? ' current' : '') },
        el(doc, 'svg:title', {}, `${formatDate(p.at)} ${p.sentiment} ${p.score.toFixed(2)}`)));
    });
    return svg;
  }

  /** A label's evidence lines in the panel's language: the connector sends them in Japanese
   *  too (evidence_ja); an older connector sends only the stored English lines. */
  function evidenceOf(label, lang) {
    const lines = lang === 'ja' && Array.isArray(label.evidence_ja) ? label.evidence_ja : label.evidence;
    return Array.isArray(lines) ? lines.filter((e) => typeof e === 'string') : [];
  }

  function section(doc, title, ...children) {
    return el(doc, 'section', { class: 'section' }, el(doc, 'h3', {}, title), ...children);
  }

  /**
   * The sidebar body for a context answer. opts: {lang, t, onCorrect(label, value, button),
   * onCheck(), draftArea (a textarea the caller owns), findings (an element or null)}.
   */
  function renderContext(doc, ctx, opts) {
    const t = opts.t;
    const lang = opts.lang === 'ja' ? 'ja' : 'en';
    const labels = (ctx.analysis && ctx.analysis.labels) || {};
    const name = (l) => (lang === 'ja' ? l.value_ja : l.value_en) || l.value || '–';
    const author = ctx.author || {};
    const post = ctx.post || {};
    const root = el(doc, 'div', { class: 'context', 'data-ticket': ctx.ticket ? ctx.ticket.id : '' });
    const outage = renderOutageBanner(doc, ctx.storm, { t, lang });
    if (outage) root.appendChild(outage);

    // Profile card
    const age = accountAge(author.account_age_days, lang);
    root.appendChild(el(doc, 'section', { class: 'profile' },
      safeUrl(author.avatar_url, true) ? el(doc, 'img', { class: 'avatar', src: author.avatar_url, alt: '', width: 48, height: 48,
        // A strict page CSP (img-src) or a dead link: no broken-image icon.
        on: { error: (ev) => ev.currentTarget.remove() } }) : null,
      el(doc, 'div', { class: 'who' },
        el(doc, 'div', { class: 'name', 'data-field': 'name' }, author.name || author.handle || t('unknownAuthor')),
        author.handle ? el(doc, author.profile_url ? 'a' : 'span', { class: 'handle', href: author.profile_url, 'data-field': 'handle' },
          '@' + author.handle) : null,
        el(doc, 'div', { class: 'facts' },
          el(doc, 'span', { 'data-field': 'followers' }, t('followers', formatCount(author.followers))),
          age ? el(doc, 'span', { 'data-field': 'age' }, t('accountAge', age)) : null,
          author.location ? el(doc, 'span', { 'data-field': 'location' }, author.location) : null)),
      author.bio ? el(doc, 'p', { class: 'bio', 'data-field': 'bio' }, author.bio) : null));

    // Risk and priority
    const risk = labels.risk, priority = labels.priority;
    root.appendChild(el(doc, 'div', { class: 'risk-row' },
      priority ? badge(doc, 'prio-' + priority.value, t('priority') + ': ' + name(priority)) : null,
      risk ? badge(doc, 'risk-' + risk.value, t('risk') + ': ' + name(risk)) : null,
      labels.sentiment ? badge(doc, SENTIMENT_CLASS[labels.sentiment.value] || 'neu', name(labels.sentiment)) : null,
      labels.intent ? badge(doc, 'intent', name(labels.intent)) : null));

    // The post, with its links
    const reply = post.reply || {};
    root.appendChild(section(doc, t('post'),
      el(doc, 'blockquote', { class: 'post-text', 'data-field': 'post-text' }, post.text || ''),
      el(doc, 'div', { class: 'links' },
        post.url ? el(doc, 'a', { href: post.url, class: 'link-post' }, t('openPost', post.platform_name || '')) : null,
        reply.mode === 'prepared' && reply.url ? el(doc, 'a', { href: reply.url, class: 'link-reply' }, t('openPreparedReply')) : null,
        reply.mode === 'none' && reply.url ? el(doc, 'a', { href: reply.url, class: 'link-reply' }, t('replyOnSite')) : null),
      reply.mode === 'prepared' ? el(doc, 'p', { class: 'note' }, t('preparedNote')) : null));

    // The storm (炎上) this post is part of: answer in line with the team, or leave it to the
    // problem ticket's answer.
    const storm = ctx.storm;
    if (storm) {
      const first = storm.first_post || {};
      root.appendChild(section(doc, t('storm'),
        el(doc, 'p', { class: 'storm-size', 'data-field': 'storm-size' }, t('stormSize', String(storm.size)),
          storm.topic ? ' · ' + storm.topic : ''),
        storm.reason ? el(doc, 'p', { class: 'note', 'data-field': 'storm-reason' }, storm.reason) : null,
        el(doc, 'div', { class: 'storm-first' }, t('stormFirstPost'), ' ',
          el(doc, first.url ? 'a' : 'span', { href: first.url, 'data-field': 'storm-first' }, first.text || '')),
        storm.problem_ticket ? el(doc, storm.problem_ticket.url ? 'a' : 'span',
          { href: storm.problem_ticket.url, class: 'storm-problem' }, t('stormProblem', '#' + storm.problem_ticket.id)) : null,
        (storm.answers || []).length
          ? el(doc, 'ol', { class: 'exchanges storm-answers' }, storm.answers.map((x) => el(doc, 'li', {},
              el(doc, 'div', { class: 'meta' }, formatDate(x.created_at, lang), ' · ', x.agent, ' · #', x.ticket_id),
              el(doc, 'div', { class: 'exchange-text' }, x.text))))
          : el(doc, 'p', { class: 'empty' }, t('stormNoAnswers'))));
    }

    // Help writing the reply: suggested draft, the brand's guidelines, similar past cases
    root.appendChild(renderReplyHelp(doc, ctx, { t, lang, onInsert: opts.onInsert, onUseInCheck: opts.onUseInCheck }));

    // Draft check
    if (opts.draftArea) {
      root.appendChild(section(doc, t('draftCheck'),
        el(doc, 'p', { class: 'note' }, t('draftHelp'), ' ', t('liveCheck')),
        opts.draftArea,
        el(doc, 'button', { type: 'button', class: 'primary check-btn', on: { click: () => opts.onCheck() } }, t('checkMyReply')),
        opts.findings || el(doc, 'div', { class: 'findings' })));
    }

    // Sentiment history
    root.appendChild(section(doc, t('sentimentHistory'), sentimentChart(doc, ctx.sentiment_history, t)));

    // Earlier posts, exchanges, other tickets
    root.appendChild(section(doc, t('earlierPosts'), (ctx.history || []).length
      ? el(doc, 'ol', { class: 'history' }, ctx.history.map((h) => el(doc, 'li', { 'data-key': h.key },
          el(doc, 'div', { class: 'meta' }, formatDate(h.created_at, lang), ' ',
            h.sentiment ? badge(doc, SENTIMENT_CLASS[h.sentiment] || 'neu', t('sentiment_' + h.sentiment)) : null, ' ',
            h.intent ? badge(doc, 'intent', t('intent_' + h.intent)) : null,
            h.ticket ? el(doc, 'span', { class: 'ticket-ref' }, ` #${h.ticket.id}`) : null),
          el(doc, h.url ? 'a' : 'span', { href: h.url, class: 'history-text' }, h.text))))
      : el(doc, 'p', { class: 'empty' }, t('noEarlierPosts'))));
    root.appendChild(section(doc, t('exchanges'), (ctx.exchanges || []).length
      ? el(doc, 'ol', { class: 'exchanges' }, ctx.exchanges.map((x) => el(doc, 'li', {},
          el(doc, 'div', { class: 'meta' }, formatDate(x.created_at, lang), ' · ', x.agent, ' · ', t('status_' + x.status), ' · #', x.ticket_id),
          el(doc, 'div', { class: 'exchange-text' }, x.text),
          x.url ? el(doc, 'a', { href: x.url }, t('openLink')) : null)))
      : el(doc, 'p', { class: 'empty' }, t('noExchanges'))));
    root.appendChild(section(doc, t('otherTickets'), (ctx.other_tickets || []).length
      ? el(doc, 'ul', { class: 'tickets' }, ctx.other_tickets.map((tk) => el(doc, 'li', {},
          el(doc, tk.url ? 'a' : 'span', { href: tk.url }, `#${tk.id} `, tk.subject || ''),
          ' ', tk.sentiment ? badge(doc, SENTIMENT_CLASS[tk.sentiment] || 'neu', t('sentiment_' + tk.sentiment)) : null)))
      : el(doc, 'p', { class: 'empty' }, t('noOtherTickets'))));
    // Labels with evidence and the correction buttons
    const sets = ctx.label_sets || {};
    const corrected = ctx.corrections || {};
    const valueName = (label, value) => {
      const found = (sets[label] || []).find((v) => v.value === value);
      return found ? (lang === 'ja' ? found.ja : found.en) : value;
    };
    const labelList = el(doc, 'div', { class: 'labels' });
    const order = ['sentiment', 'intent', 'expectation_type', 'expectation_content', 'quality_axis', 'risk', 'priority'];
    for (const key of order.filter((k) => labels[k]).concat(Object.keys(labels).filter((k) => !order.includes(k)))) {
      const label = labels[key];
      const row = el(doc, 'div', { class: 'label', 'data-label': key },
        el(doc, 'div', { class: 'label-head' },
          el(doc, 'span', { class: 'label-name' }, (lang === 'ja' ? label.name_ja : label.name_en) || key),
          el(doc, 'span', { class: 'label-value', 'data-field': 'value' }, name(label)),
          typeof label.score === 'number' ? el(doc, 'span', { class: 'score' }, label.score.toFixed(2)) : null,
          typeof label.confidence === 'number'
            ? el(doc, 'span', { class: 'confidence' + (label.unsure ? ' unsure' : ''), 'data-field': 'confidence' },
              label.unsure ? t('unsure', Math.round(label.confidence * 100)) : t('confidence', Math.round(label.confidence * 100)))
            : null),
        corrected[key] ? el(doc, 'div', { class: 'corrected', 'data-field': 'corrected' },
          t('correctedBy', valueName(key, corrected[key].value), corrected[key].agent)) : null,
        evidenceOf(label, lang).length
          ? el(doc, 'ul', { class: 'evidence' }, evidenceOf(label, lang).slice(0, 6).map((e) => el(doc, 'li', {}, e))) : null);
      if (sets[key] && opts.onCorrect) {
        const buttons = el(doc, 'div', { class: 'correct', 'aria-label': t('correctLabel') },
          el(doc, 'span', { class: 'correct-label' }, t('correctTo')),
          sets[key].filter((v) => v.value !== label.value).map((v) => el(doc, 'button', {
            type: 'button', class: 'correct-btn', 'data-value': v.value,
            on: { click: (ev) => opts.onCorrect(key, v.value, ev.currentTarget) } }, lang === 'ja' ? v.ja : v.en)));
        row.appendChild(buttons);
      }
      labelList.appendChild(row);
    }
    root.appendChild(section(doc, t('analysis'), labelList));

    return root;
  }


  /** The outage banner: shown while the ticket's post belongs to an active storm. */
  function renderOutageBanner(doc, storm, opts) {
    const t = opts.t;
    const lang = opts.lang === 'ja' ? 'ja' : 'en';
    if (!storm || !storm.active) return null;
    const statement = storm.statement;
    return el(doc, 'div', { class: 'outage', role: 'status', 'data-field': 'outage' },
      el(doc, 'strong', { class: 'outage-title' }, t('outageBanner', storm.topic || (storm.brand || ''), String(storm.size))),
      statement
        ? el(doc, 'div', { class: 'outage-statement', 'data-field': 'outage-statement' },
            el(doc, 'div', { class: 'meta' }, t('outageStatement', formatDate(statement.at, lang), statement.author || '')),
            el(doc, 'p', { class: 'statement-text' }, statement.text || ''),
            safeUrl(statement.url) ? el(doc, 'a', { href: statement.url, class: 'statement-link' }, statement.url) : null)
        : el(doc, 'p', { class: 'note' }, t('outageNoStatement')));
  }

  const REACTION_CLASS = { good: 'pos', bad: 'neg', neutral: 'neu', none: 'neu' };

  /**
   * "Help writing the reply": the suggested first draft (inserted only on the agent's click),
   * the brand's reply guidelines and the team's answers to similar earlier posts.
   * opts: {t, lang, onInsert(text, button), onUseInCheck(text)}.
   */
  function renderReplyHelp(doc, ctx, opts) {
    const t = opts.t;
    const lang = opts.lang === 'ja' ? 'ja' : 'en';
    const box = el(doc, 'section', { class: 'section reply-help', 'data-field': 'reply-help' }, el(doc, 'h3', {}, t('replyHelp')));
    const draft = ctx.suggested_draft;
    if (draft && draft.text) {
      box.appendChild(el(doc, 'div', { class: 'suggested', 'data-field': 'suggested-draft', lang: draft.lang === 'en' ? 'en' : 'ja' },
        el(doc, 'h4', {}, t('suggestedDraft')),
        el(doc, 'p', { class: 'suggested-text' }, draft.text),
        el(doc, 'p', { class: 'note' }, t('suggestedNote')),
        el(doc, 'div', { class: 'links' },
          opts.onInsert ? el(doc, 'button', { type: 'button', class: 'primary insert-btn',
            on: { click: (ev) => opts.onInsert(draft.text, ev.currentTarget) } }, t('insertDraft')) : null,
          opts.onUseInCheck ? el(doc, 'button', { type: 'button', class: 'use-btn',
            on: { click: () => opts.onUseInCheck(draft.text) } }, t('useInCheck')) : null)));
    }
    const guide = ctx.reply_guidelines;
    if (guide) {
      const matched = new Set(guide.faq_matched || []);
      const english = draft && draft.lang === 'en';
      const pick = (ja, en) => (english || lang === 'en') && en ? en : ja;
      const rows = [
        guide.signature || guide.signature_en ? [t('guideSignature'), pick(guide.signature, guide.signature_en)] : null,
        guide.tone || guide.tone_en ? [t('guideTone'), pick(guide.tone, guide.tone_en)] : null,
        (guide.avoid_words || []).length ? [t('guideAvoid'), guide.avoid_words.join('、')] : null,
        guide.dm_handoff || guide.dm_handoff_en ? [t('guideDm'), pick(guide.dm_handoff, guide.dm_handoff_en)] : null,
      ].filter(Boolean);
      box.appendChild(el(doc, 'div', { class: 'guidelines', 'data-field': 'guidelines' },
        el(doc, 'h4', {}, t('guidelines')),
        el(doc, 'dl', {}, rows.map(([k, v]) => [el(doc, 'dt', {}, k), el(doc, 'dd', {}, v)]).flat()),
        (guide.faq || []).length ? el(doc, 'div', { class: 'faq' }, el(doc, 'span', { class: 'meta' }, t('guideFaq')),
          el(doc, 'ul', {}, guide.faq.filter((f) => safeUrl(f.url)).map((f) => el(doc, 'li',
            { class: matched.has(f.topic) ? 'faq-matched' : '', 'data-topic': f.topic },
            el(doc, 'a', { href: f.url }, (lang === 'en' && f.title_en) || f.title || f.topic),
            matched.has(f.topic) ? el(doc, 'span', { class: 'badge intent' }, t('guideFaqMatched')) : null)))) : null));
    }
    const cases = ctx.similar_cases || [];
    box.appendChild(el(doc, 'div', { class: 'similar', 'data-field': 'similar-cases' },
      el(doc, 'h4', {}, t('similarCases')),
      cases.length
        ? el(doc, 'ol', { class: 'similar-cases' }, cases.map((c) => {
            const post = c.post || {}, reply = c.reply || {}, reaction = c.reaction || { verdict: 'none' };
            return el(doc, 'li', { 'data-key': post.key || '' },
              el(doc, 'div', { class: 'meta' }, formatDate(post.created_at, lang), post.author ? ' · ' + post.author : ''),
              el(doc, safeUrl(post.url) ? 'a' : 'span', { href: safeUrl(post.url) ? post.url : null, class: 'similar-post' }, post.text || ''),
              el(doc, 'div', { class: 'similar-reply' },
                el(doc, 'div', { class: 'meta' }, t('similarReply', reply.agent || '', formatDate(reply.at, lang))),
                el(doc, 'div', { class: 'exchange-text' }, reply.text || '')),
              el(doc, 'div', { class: 'reaction', 'data-verdict': reaction.verdict,
                title: lang === 'ja' ? reaction.reason_ja || '' : reaction.reason_en || '' },
                badge(doc, REACTION_CLASS[reaction.verdict] || 'neu', t('reaction_' + (REACTION_CLASS[reaction.verdict] ? reaction.verdict : 'none'))),
                reaction.text ? el(doc, 'span', { class: 'reaction-text' }, ' ', reaction.text) : null));
          }))
        : el(doc, 'p', { class: 'empty' }, t('noSimilarCases'))));
    return box;
  }

  /** The draft-check result: findings with severity, message and hint in the UI language. */
  function renderFindings(doc, result, opts) {
    const t = opts.t;
    const lang = opts.lang === 'ja' ? 'ja' : 'en';
    const box = el(doc, 'div', { class: 'findings', 'data-count': String((result.findings || []).length) });
    if (result.length) {
      const over = result.length.count > result.length.limit;
      const unit = result.length.unit ? t('countUnit_' + String(result.length.unit).replace(/-/g, '_')) : '';
      box.appendChild(el(doc, 'p', { class: 'length' + (over ? ' over' : ''), 'data-field': 'network-count' },
        t('lengthCount', result.length.count, result.length.limit), unit ? ' ' + unit : ''));
    }
    if (typeof result.graphemes === 'number') {
      box.appendChild(el(doc, 'p', { class: 'length graphemes', 'data-field': 'grapheme-count' }, t('graphemeCount', result.graphemes)));
    }
    if (!(result.findings || []).length) {
      box.appendChild(el(doc, 'p', { class: 'ok' }, t('noFindings')));
      return box;
    }
    box.appendChild(el(doc, 'ul', {}, result.findings.map((f) => el(doc, 'li', { class: 'finding sev-' + f.severity, 'data-rule': f.rule },
      el(doc, 'span', { class: 'sev' }, t('severity_' + f.severity)),
      el(doc, 'span', { class: 'msg' }, lang === 'ja' ? f.message_ja : f.message_en),
      el(doc, 'div', { class: 'hint' }, lang === 'ja' ? f.hint_ja : f.hint_en)))));
    return box;
  }

  /** One of the sidebar's states other than a rendered ticket. */
  function renderState(doc, state, opts) {
    const t = opts.t;
    const lang = opts.lang === 'ja' ? 'ja' : 'en';
    const detail = opts.message ? (lang === 'ja' ? opts.message.message_ja : opts.message.message_en) : null;
    const box = el(doc, 'div', { class: 'state state-' + state, 'data-state': state },
      el(doc, 'p', { class: 'state-title' }, t('state_' + state)),
      detail ? el(doc, 'p', { class: 'state-detail' }, detail) : null);
    if ((state === 'not_configured' || state === 'unauthorized') && opts.onOpenOptions) {
      box.appendChild(el(doc, 'button', { type: 'button', class: 'primary', on: { click: opts.onOpenOptions } }, t('openOptions')));
    }
    if ((state === 'unreachable' || state === 'error' || state === 'rate_limited') && opts.onRetry) {
      box.appendChild(el(doc, 'button', { type: 'button', on: { click: opts.onRetry } }, t('retry')));
    }
    return box;
  }

  /**
   * The sidebar controller shared by the in-page sidebar and the side panel. It owns one panel
   * element and shows a ticket in it; every answer is keyed by ticket, so a slow answer for a
   * ticket the agent already left is dropped. opts: {lang, t, send(msg) → Promise<answer>,
   * readDraft() → Promise<string>, onOpenOptions(), embedded (side panel: no fixed position),
   * onToggle(collapsed) (the agent collapsed or expanded it)}.
   */
  function createSidebar(doc, opts) {
    const t = opts.t;
    const lang = opts.lang === 'ja' ? 'ja' : 'en';
    const body = el(doc, 'div', { class: 'body' });
    const ticketLabel = el(doc, 'span', { class: 'ticket-label' });
    // The collapse/expand control: a real <button> (mouse, Enter, Space, in the Tab order),
    // aria-expanded for screen readers, and it stays visible in the collapsed strip.
    body.setAttribute('id', 'yorisoi-panel-body');
    const toggle = el(doc, 'button', { type: 'button', class: 'toggle', title: t('collapse'), 'aria-label': t('collapse'),
      'aria-expanded': 'true', 'aria-controls': 'yorisoi-panel-body' }, '⟩');
    const panel = el(doc, 'aside', { class: 'panel', lang, 'aria-label': t('sidebarTitle'), 'data-state': 'idle' },
      el(doc, 'header', {}, el(doc, 'span', { class: 'title' }, t('sidebarTitle')), ticketLabel, toggle), body);
    function setCollapsed(collapsed) {
      if (collapsed) panel.classList.add('collapsed'); else panel.classList.remove('collapsed');
      toggle.textContent = collapsed ? '⟨' : '⟩';
      toggle.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
      toggle.setAttribute('title', collapsed ? t('expand') : t('collapse'));
      toggle.setAttribute('aria-label', collapsed ? t('expand') : t('collapse'));
    }
    toggle.addEventListener('click', () => {
      const collapsed = !panel.classList.contains('collapsed');
      setCollapsed(collapsed);
      if (opts.onToggle) opts.onToggle(collapsed);
    });
    let current = null;
    let seq = 0;
    let live = null;  // the rendered ticket's draft box: the editor's text flows into it as the agent types
    const timers = opts.timers || { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (id) => clearTimeout(id) };

    function setState(state, message) {
      panel.setAttribute('data-state', state);
      body.replaceChildren(renderState(doc, state, { t, lang, message,
        onOpenOptions: opts.onOpenOptions, onRetry: () => current && show(current, true) }));
    }

    async function show(ticket, force) {
      if (!ticket) {
        current = null;
        live = null;
        seq += 1;
        ticketLabel.textContent = '';
        panel.removeAttribute('data-ticket');
        setState('no_ticket');
        return;
      }
      if (!force && current && current.helpdesk === ticket.helpdesk && current.ticket === ticket.ticket) return;
      current = { helpdesk: ticket.helpdesk, ticket: ticket.ticket };
      live = null;
      const mine = ++seq;
      ticketLabel.textContent = `#${ticket.ticket}`;
      panel.setAttribute('data-ticket', ticket.ticket);
      panel.removeAttribute('data-rendered');
      setState('loading');
      const answer = await opts.send({ type: 'context', helpdesk: ticket.helpdesk, ticket: ticket.ticket });
      if (mine !== seq) return;  // the agent moved on to another ticket meanwhile
      if (!answer || !answer.ok) {
        setState((answer && answer.state) || 'error', answer && answer.message);
        return;
      }
      render(ticket, answer.data, mine);
    }

    function render(ticket, ctx, mine) {
      const draftArea = el(doc, 'textarea', { class: 'draft', rows: 4, 'aria-label': t('draftCheck') });
      let findings = el(doc, 'div', { class: 'findings' });
      let checkSeq = 0;
      let timer = null;
      const showFindings = (next) => { findings.replaceWith(next); findings = next; };
      // One check of the text in the box. Every answer is keyed by checkSeq: an answer to a
      // text the agent has typed past (or a ticket they left) is dropped, so a slow answer can
      // never overwrite a newer one. The background also aborts the superseded request.
      const runCheck = async () => {
        const text = draftArea.value;
        const mineCheck = ++checkSeq;
        if (!text.trim()) {
          showFindings(el(doc, 'div', { class: 'findings', 'data-count': '0' }, el(doc, 'p', { class: 'note' }, t('noDraftFound'))));
          return;
        }
        findings.setAttribute('aria-busy', 'true');
        const answer = await opts.send({ type: 'draftCheck', helpdesk: ticket.helpdesk, ticket: ticket.ticket, text });
        if (mine !== seq || mineCheck !== checkSeq) return;
        if (answer && answer.state === 'cancelled') return;
        showFindings(answer && answer.ok ? renderFindings(doc, answer.data, { t, lang })
          : renderState(doc, (answer && answer.state) || 'error', { t, lang, message: answer && answer.message }));
      };
      const schedule = () => {
        if (timer !== null) timers.clearTimeout(timer);
        checkSeq += 1;  // an answer in flight is stale from this keystroke on
        timer = timers.setTimeout(() => { timer = null; runCheck(); }, DRAFT_DEBOUNCE_MS);
      };
      draftArea.addEventListener('input', schedule);
      const onCheck = async () => {
        if (timer !== null) { timers.clearTimeout(timer); timer = null; }
        const fromEditor = opts.readDraft ? ((await opts.readDraft()) || '') : '';
        if (fromEditor.trim()) draftArea.value = fromEditor;
        if (draftArea.value.trim()) findings.replaceChildren(el(doc, 'p', { class: 'note' }, t('checking')));
        await runCheck();
      };
      const onUseInCheck = (text) => { draftArea.value = text; schedule(); };
      // The suggested draft goes into the helpdesk's editor only on this click; nothing is sent.
      const onInsert = async (text, button) => {
        const done = opts.insertDraft ? await opts.insertDraft(text) : false;
        if (mine !== seq) return;
        if (button) button.setAttribute('title', done ? t('inserted') : t('insertFailed'));
        if (!done) onUseInCheck(text);
        else { draftArea.value = text; schedule(); }
      };
      live = { ticket, draftChanged: (text) => { if (text !== draftArea.value) { draftArea.value = text; schedule(); } } };
      const onCorrect = async (label, value, button) => {
        button.setAttribute('disabled', '');
        const answer = await opts.send({ type: 'correction', helpdesk: ticket.helpdesk, ticket: ticket.ticket, label, value });
        button.removeAttribute('disabled');
        const row = button.closest ? button.closest('.label') : null;
        if (answer && answer.ok) {
          button.classList.add('done');
          button.setAttribute('title', t('correctionSaved'));
          const shown = row && row.querySelector('.label-value');
          if (shown) shown.textContent = button.textContent + ' ✓';
        } else {
          button.setAttribute('title', t('correctionFailed'));
          button.classList.add('failed');
        }
      };
      body.replaceChildren(renderContext(doc, ctx, { t, lang, draftArea, findings, onCheck, onCorrect, onInsert, onUseInCheck }));
      panel.setAttribute('data-state', 'ok');
      panel.setAttribute('data-rendered', ticket.ticket);
    }

    if (opts.embedded) panel.classList.add('embedded');
    /** The helpdesk editor's text changed (content.js): check it, debounced, for the ticket shown. */
    function draftChanged(text, ticket) {
      if (!live || typeof text !== 'string') return;
      if (ticket && (ticket.helpdesk !== live.ticket.helpdesk || ticket.ticket !== live.ticket.ticket)) return;
      live.draftChanged(text.slice(0, 10000));
    }
    return { panel, show, draftChanged, setCollapsed, collapsed: () => panel.classList.contains('collapsed'), current: () => current };
  }

  const CSS = `
:host { all: initial; }
.panel { position: fixed; top: 0; right: 0; width: 360px; height: 100vh; overflow-y: auto; z-index: 2147483646;
  background: #fbfaf7; color: #222; border-left: 1px solid #d8d4cc; box-shadow: -2px 0 8px rgba(0,0,0,.08);
  font: 13px/1.5 "Noto Sans CJK JP", "Hiragino Sans", "Yu Gothic", system-ui, sans-serif; box-sizing: border-box; }
.panel.collapsed { width: 36px; overflow: hidden; }
.panel.collapsed .body, .panel.collapsed .title, .panel.collapsed .ticket-label { display: none; }
.panel.collapsed header { padding: 8px 4px; justify-content: center; }
.panel.collapsed.attention .toggle { background: #b3261e; border-color: #fff; }
.toggle { min-width: 26px; min-height: 26px; font-size: 14px; }
button:focus-visible, a:focus-visible { outline: 3px solid #f0a35e; outline-offset: 2px; }
.toggle:focus-visible { outline-offset: -1px; }
.panel.embedded { position: static; width: auto; height: auto; min-height: 100vh; border: 0; box-shadow: none; }
header { display: flex; align-items: center; gap: 6px; padding: 8px 10px; background: #2f5d50; color: #fff; position: sticky; top: 0; z-index: 1; }
header .title { font-weight: 700; flex: 1; }
header button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.5); border-radius: 4px; cursor: pointer; }
.body { padding: 10px; }
.profile { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.avatar { border-radius: 50%; background: #ddd; }
.who { flex: 1; min-width: 0; }
.name { font-weight: 700; font-size: 15px; word-break: break-word; }
.handle { color: #2f5d50; }
.facts { display: flex; flex-wrap: wrap; gap: 8px; color: #555; font-size: 12px; }
.bio { flex-basis: 100%; margin: 4px 0 0; color: #333; white-space: pre-wrap; word-break: break-word; }
.risk-row { display: flex; flex-wrap: wrap; gap: 4px; margin: 8px 0; }
.badge { display: inline-block; padding: 1px 6px; border-radius: 10px; font-size: 11px; background: #e7e3da; }
.badge.neg { background: #f6d5d1; color: #8a1c12; } .badge.pos { background: #d6efd9; color: #1d5e29; } .badge.neu { background: #e7e3da; }
.prio-urgent, .risk-critical { background: #b3261e !important; color: #fff; } .prio-high, .risk-high { background: #f0a35e !important; }
.section { margin-top: 12px; } h3 { font-size: 12px; margin: 0 0 4px; color: #2f5d50; text-transform: uppercase; letter-spacing: .03em; }
blockquote { margin: 0; padding: 6px 8px; background: #fff; border-left: 3px solid #2f5d50; white-space: pre-wrap; word-break: break-word; }
.links { display: flex; gap: 10px; margin-top: 4px; flex-wrap: wrap; } a { color: #1f5fa8; }
.note { color: #666; font-size: 12px; margin: 4px 0; }
.label { padding: 4px 0; border-bottom: 1px dashed #e0dcd2; }
.label-head { display: flex; gap: 6px; align-items: baseline; } .label-name { color: #555; min-width: 96px; } .label-value { font-weight: 700; } .confidence { color: #555; font-size: 11px; } .confidence.unsure { color: #9a3412; font-weight: 700; }
.score { color: #999; font-size: 11px; margin-left: auto; }
.evidence { margin: 2px 0 0 16px; padding: 0; color: #555; font-size: 11px; }
.correct { display: flex; flex-wrap: wrap; gap: 3px; margin-top: 3px; align-items: center; }
.correct-label { color: #888; font-size: 11px; }
.corrected { color: #1d5e29; font-size: 11px; }
button { font: inherit; font-size: 12px; border: 1px solid #bdb7aa; background: #fff; border-radius: 4px; padding: 2px 8px; cursor: pointer; }
button.primary { background: #2f5d50; color: #fff; border-color: #2f5d50; padding: 4px 10px; }
button.done { background: #d6efd9; border-color: #1d5e29; }
textarea { width: 100%; box-sizing: border-box; min-height: 70px; font: inherit; margin: 4px 0; }
.findings ul { list-style: none; margin: 6px 0 0; padding: 0; }
.finding { margin: 4px 0; padding: 5px 7px; border-radius: 4px; background: #fff; border-left: 4px solid #999; }
.sev-error { border-color: #b3261e; } .sev-warning { border-color: #e09a2d; } .sev-info { border-color: #1f5fa8; }
.sev { font-weight: 700; margin-right: 6px; font-size: 11px; } .hint { color: #555; font-size: 12px; margin-top: 2px; }
.length { font-size: 12px; margin: 6px 0 0; } .length.over { color: #b3261e; font-weight: 700; } .ok { color: #1d5e29; }
ol, ul { padding-left: 18px; margin: 0; } li { margin: 4px 0; word-break: break-word; }
.meta { color: #777; font-size: 11px; } .empty { color: #888; margin: 0; }
.chart { display: block; background: #fff; border: 1px solid #e0dcd2; }
.chart .axis { stroke: #ccc; stroke-dasharray: 3 3; } .chart .line { stroke: #2f5d50; stroke-width: 1.5; }
.dot.neg { fill: #b3261e; } .dot.pos { fill: #2e8b3d; } .dot.neu { fill: #888; } .dot.current { stroke: #222; stroke-width: 2; }
.outage { margin: 0 0 8px; padding: 8px 10px; background: #fdecea; border: 1px solid #b3261e; border-left-width: 5px; border-radius: 4px; }
.outage-title { color: #8a1c12; display: block; } .statement-text { margin: 4px 0; white-space: pre-wrap; word-break: break-word; }
h4 { font-size: 12px; margin: 8px 0 2px; color: #333; }
.suggested-text { margin: 2px 0; padding: 6px 8px; background: #fff; border: 1px dashed #2f5d50; white-space: pre-wrap; word-break: break-word; }
.guidelines dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 8px; margin: 2px 0; font-size: 12px; }
.guidelines dt { color: #555; } .guidelines dd { margin: 0; word-break: break-word; }
.faq-matched a { font-weight: 700; }
.similar-cases li { padding-bottom: 4px; border-bottom: 1px dashed #e0dcd2; } .similar-reply { margin: 2px 0 2px 8px; }
.reaction-text { color: #555; font-size: 11px; }
.state { padding: 12px; background: #fff; border: 1px solid #e0dcd2; border-radius: 6px; }
.state-title { font-weight: 700; margin: 0 0 6px; } .state-detail { color: #555; margin: 0 0 8px; }
.state-unauthorized .state-title, .state-unreachable .state-title { color: #b3261e; }
`;

  return {
    sentimentChart, renderContext, renderOutageBanner, renderReplyHelp, renderFindings, renderState, createSidebar, CSS,
    DRAFT_DEBOUNCE_MS,
  };
});
