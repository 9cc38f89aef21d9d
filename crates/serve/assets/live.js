// aligntds live: streams answers from /api/analyze and /api/continue, colours
// each token as it arrives, and keeps the whole state (query, options,
// branches) in the URL so a link reproduces it. Text from models and users only
// ever goes into textContent, never into markup. Needs tds-page.js loaded first.
(function () {
  'use strict';
  var page = window.aligntdsPage;
  var el = page.el, visible = page.visible, prob = page.prob, num = page.num;
  var CATEGORY = page.CATEGORY_CLASS;
  var $ = function (id) { return document.getElementById(id); };
  var form = $('query-form'), query = $('query'), system = $('system'), maxNew = $('max-new');
  var alignedContext = $('aligned-context'), baseContext = $('base-context');
  var runButton = $('run'), stopButton = $('stop'), saveButton = $('save');
  var statusLine = $('status'), errorBox = $('error'), streamsBox = $('streams'), panel = $('panel');

  // state: what the URL holds. start: the main stream continues a given prefix
  // (opened from a run page); branches: continuations of some prefix.
  var state = { q: '', sys: '', n: '', ac: '', bc: '', start: null, branches: [] };
  var streams = [];   // {box, answer, stats, tokens: [], spans: [], session, title, w}
  var selected = { s: -1, t: -1 };
  var running = null; // the AbortController of the stream in flight
  var queue = [];     // streams waiting for their turn (one at a time)

  function showError(message) {
    errorBox.hidden = !message;
    errorBox.textContent = message || '';
  }

  // ---- URL state ----
  function saveState() {
    var p = new URLSearchParams();
    ['q', 'sys', 'n', 'ac', 'bc'].forEach(function (k) { if (state[k]) p.set(k, state[k]); });
    if (state.start) p.set('start', JSON.stringify(state.start));
    if (state.branches.length) p.set('b', JSON.stringify(state.branches));
    if (state.t) p.set('t', state.t);
    history.replaceState(null, '', '#' + p.toString());
  }
  function loadState() {
    var p = new URLSearchParams(location.hash.slice(1));
    var parse = function (k, fallback) {
      try { return p.has(k) ? JSON.parse(p.get(k)) : fallback; } catch (e) { return fallback; }
    };
    state = {
      q: p.get('q') || '', sys: p.get('sys') || '', n: p.get('n') || '',
      ac: p.get('ac') || '', bc: p.get('bc') || '',
      start: parse('start', null), branches: parse('b', []), t: p.get('t')
    };
    if (!Array.isArray(state.branches)) state.branches = [];
    query.value = state.q; system.value = state.sys; maxNew.value = state.n;
    alignedContext.value = state.ac; baseContext.value = state.bc;
  }
  function request(extra) {
    var body = { query: state.q };
    if (state.sys) body.system = state.sys;
    if (state.n) body.max_new_tokens = +state.n;
    if (state.ac) body.aligned_context = state.ac;
    if (state.bc) body.base_context = state.bc;
    for (var k in extra) body[k] = extra[k];
    return body;
  }

  // ---- streams ----
  function addStream(title, w) {
    var s = { box: el('section', 'stream'), tokens: [], spans: [], session: null, title: title, w: w };
    s.index = streams.length;
    s.box.setAttribute('data-stream', String(s.index));
    s.box.appendChild(el('h3', null, title));
    s.stats = s.box.appendChild(el('p', 'stats', 'waiting…'));
    s.answer = s.box.appendChild(el('div', 'answer'));
    s.answer.setAttribute('aria-label', title + ' tokens');
    s.answer.addEventListener('click', function (e) {
      var t = e.target.closest('.t');
      if (t) select(s.index, +t.getAttribute('data-t'), true);
    });
    streams.push(s);
    streamsBox.appendChild(s.box);
    return s;
  }
  function tokenClass(tok) {
    var byBase = tok.chosen_by === 'base';
    var cat = CATEGORY[byBase ? tok.aligned_category : tok.category] || 'u';
    var cls = 't ' + cat;
    if (tok.aligned_top.length && tok.base_top.length && tok.aligned_top[0].id !== tok.base_top[0].id) cls += ' d';
    if (byBase) cls += ' by-base';
    if (tok.chosen_by === 'prefix' || tok.chosen_by === 'replace') cls += ' given';
    if (tok.text === '') cls += ' empty';
    else if (tok.text.indexOf('\n') >= 0) cls += ' nl';
    return cls;
  }
  function addToken(s, tok) {
    var span = el('span', tokenClass(tok), tok.text);
    span.setAttribute('data-t', String(tok.position));
    span.tabIndex = -1;
    s.tokens.push(tok);
    s.spans.push(span);
    s.answer.appendChild(span);
    if (s.tokens.length % 8 === 1) s.stats.textContent = s.tokens.length + ' tokens…';
  }
  function finish(s, done) {
    // A stop string drops the tokens it began in.
    while (s.tokens.length > done.tokens) {
      s.tokens.pop();
      s.answer.removeChild(s.spans.pop());
    }
    s.session = done.session;
    var r = done.ratios;
    s.stats.textContent = done.tokens + ' tokens (stop: ' + done.stop_reason + '): ' +
      (100 * r.unshifted).toFixed(1) + ' / ' + (100 * r.marginal).toFixed(1) + ' / ' +
      (100 * r.shifted).toFixed(1) + ' % unshifted / marginal / shifted; mean KL ' + num(done.mean_kl) +
      '; ' + (done.seconds > 0 ? (done.tokens / done.seconds).toFixed(1) : '–') + ' tokens/s';
    s.box.setAttribute('data-done', '1');
    // Opened at a token (from a run page): select it once its answer is here.
    if (s.index === 0 && state.t && selected.s < 0) select(0, +state.t, false);
    saveButton.disabled = !streams.some(function (x) { return x.session !== null; });
  }
  function fail(s, message) {
    s.stats.textContent = 'failed';
    s.box.setAttribute('data-done', 'error');
    showError(message);
  }

  // Reads a text/event-stream body, calling onEvent(name, data) per event.
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = '';
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          var block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          var name = 'message', data = [];
          block.split('\n').forEach(function (line) {
            if (line.indexOf('event:') === 0) name = line.slice(6).trim();
            else if (line.indexOf('data:') === 0) data.push(line.slice(5).replace(/^ /, ''));
          });
          if (data.length) onEvent(name, JSON.parse(data.join('\n')));
        }
        return pump();
      });
    }
    return pump();
  }

  function describe(status, body, retry) {
    var what = { 400: 'Bad request', 413: 'Too large', 429: 'Server busy', 503: 'Not ready' }[status] || 'Error';
    var text = what + ' (' + status + '): ' + (body && body.error ? body.error : 'no details');
    if (retry) text += ' Retry after ' + retry + ' s.';
    return text;
  }

  function runStream(s, endpoint, body) {
    var controller = new AbortController();
    running = controller;
    stopButton.disabled = false;
    s.stats.textContent = 'starting…';
    return fetch(endpoint, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body), signal: controller.signal
    }).then(function (response) {
      if (!response.ok) {
        var retry = response.headers.get('Retry-After');
        return response.json().catch(function () { return null; }).then(function (b) {
          fail(s, describe(response.status, b, retry));
          s.box.setAttribute('data-status', String(response.status));
        });
      }
      return readEvents(response, function (name, data) {
        if (name === 'token') addToken(s, data);
        else if (name === 'done') finish(s, data);
        else if (name === 'error') fail(s, 'Error: ' + data.error);
        if (selected.s === s.index && selected.t >= 0) render();
      });
    }).catch(function (e) {
      if (e.name === 'AbortError') s.stats.textContent = 'stopped after ' + s.tokens.length + ' tokens';
      else fail(s, 'The connection failed: ' + e.message);
    }).then(function () {
      if (running === controller) running = null;
      stopButton.disabled = true;
    });
  }

  // Streams run one after another: the server generates one at a time.
  function enqueue(s, endpoint, body) {
    queue.push([s, endpoint, body]);
    if (queue.length === 1) next();
  }
  function next() {
    if (!queue.length) { statusLine.textContent = ''; return; }
    var job = queue[0];
    statusLine.textContent = 'streaming ' + job[0].title + '…';
    runStream(job[0], job[1], job[2]).then(function () { queue.shift(); next(); });
  }

  function branchTitle(b) {
    var how = b.r !== undefined && b.r !== null ? 'swap at ' + (b.p.length - 1) + ', then ' + b.w : b.w + ' from ' + b.p.length;
    return 'Branch: ' + how;
  }
  function startBranch(b) {
    var s = addStream(branchTitle(b), b.w);
    var extra = { prefix_ids: b.p, with: b.w };
    if (b.r !== undefined && b.r !== null) extra.replace = b.r;
    enqueue(s, '/api/continue', request(extra));
  }
  function runAll() {
    if (running) running.abort();
    queue = [];
    streams = [];
    streamsBox.textContent = '';
    selected = { s: -1, t: -1 };
    showError('');
    saveButton.disabled = true;
    if (!state.q.trim()) { showError('Type a query first.'); return; }
    if (state.start && Array.isArray(state.start.p)) {
      var main = addStream('Answer (continued by ' + (state.start.w || 'aligned') + ' from ' + state.start.p.length + ' given tokens)', state.start.w || 'aligned');
      enqueue(main, '/api/continue', request({ prefix_ids: state.start.p, with: state.start.w || 'aligned' }));
    } else {
      enqueue(addStream('Aligned answer', 'aligned'), '/api/analyze', request({}));
    }
    state.branches.forEach(startBranch);
  }
  function branch(s, t, w, replace) {
    var ids = s.tokens.slice(0, replace === undefined ? t : t + 1).map(function (x) { return x.token_id; });
    var b = { p: ids, w: w };
    if (replace !== undefined) b.r = replace;
    state.branches.push(b);
    saveState();
    startBranch(b);
  }

  // ---- the panel ----
  function topTable(caption, list, hit, onSwap) {
    var table = el('table');
    table.appendChild(el('caption', null, caption));
    var head = el('tr');
    ['#', 'token', 'p'].forEach(function (h) { head.appendChild(el('th', null, h)); });
    table.appendChild(el('thead')).appendChild(head);
    var body = el('tbody');
    list.forEach(function (x, j) {
      var tr = el('tr', (x.id === hit ? 'hit ' : '') + 'swap');
      tr.title = 'swap for this token and continue';
      tr.setAttribute('data-id', String(x.id));
      tr.appendChild(el('td', null, String(j + 1)));
      tr.appendChild(el('td', 'tok', visible(x.text)));
      var p = el('td', 'p', prob(x.logprob));
      var bar = el('span', 'bar');
      bar.style.width = (100 * Math.exp(x.logprob)).toFixed(1) + '%';
      p.appendChild(bar);
      tr.appendChild(p);
      tr.addEventListener('click', function () { onSwap(x.id); });
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }
  function render() {
    var s = streams[selected.s];
    if (!s) return;
    var tok = s.tokens[selected.t];
    if (!tok) return;
    panel.textContent = '';
    var h = el('h3', null, s.title + ' · position ' + tok.position + ' · ');
    h.appendChild(el('code', null, visible(tok.text)));
    h.appendChild(document.createTextNode(' '));
    h.appendChild(el('span', 'badge ' + CATEGORY[tok.category], tok.category));
    panel.appendChild(h);
    var metrics = el('dl', 'metrics');
    [
      ['base_rank', 'base rank of o_t', String(tok.base_rank)],
      ['aligned_rank', 'aligned rank of o_t', String(tok.aligned_rank)],
      ['p_aligned', 'p_aligned(o_t)', prob(tok.aligned_logprob)],
      ['p_base', 'p_base(o_t)', prob(tok.base_logprob)],
      ['kl_aligned_base', 'KL(aligned ‖ base)', num(tok.kl_aligned_base)],
      ['kl_base_aligned', 'KL(base ‖ aligned)', num(tok.kl_base_aligned)],
      ['js', 'JS divergence', num(tok.js)],
      ['entropy', 'entropy aligned / base', num(tok.aligned_entropy) + ' / ' + num(tok.base_entropy)],
      ['chosen_by', 'chosen by', tok.chosen_by]
    ].forEach(function (m) {
      metrics.appendChild(el('dt', null, m[1]));
      var dd = metrics.appendChild(el('dd', null, m[2]));
      dd.setAttribute('data-k', m[0]);
    });
    panel.appendChild(metrics);
    var actions = el('div', 'actions');
    [['base', 'Continue with base from here'], ['aligned', 'Continue with aligned from here']].forEach(function (a) {
      var b = el('button', null, a[1]);
      b.type = 'button';
      b.id = 'continue-' + a[0];
      b.addEventListener('click', function () { branch(s, selected.t, a[0]); });
      actions.appendChild(b);
    });
    panel.appendChild(actions);
    var tops = el('div', 'tops');
    var swap = function (id) { branch(s, selected.t, s.w === 'base' ? 'base' : 'aligned', id); };
    tops.appendChild(topTable('Aligned@t', tok.aligned_top, tok.token_id, swap));
    tops.appendChild(topTable('Base@t', tok.base_top, tok.token_id, swap));
    panel.appendChild(tops);
    panel.appendChild(el('p', 'hint', 'Click a row to swap this position for that token and continue.'));
  }
  function select(si, t, focus) {
    var s = streams[si];
    if (!s || !s.tokens.length) return;
    t = Math.max(0, Math.min(s.tokens.length - 1, t));
    var old = streams[selected.s];
    if (old && old.spans[selected.t]) old.spans[selected.t].classList.remove('sel');
    streams.forEach(function (x) { x.box.classList.toggle('active', x === s); });
    selected = { s: si, t: t };
    s.spans[t].classList.add('sel');
    if (focus) s.spans[t].focus();
    render();
  }
  document.addEventListener('keydown', function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.target.closest && e.target.closest('input, textarea, select, button')) return;
    if ((e.key === 'ArrowRight' || e.key === 'ArrowLeft') && selected.s >= 0) {
      e.preventDefault();
      select(selected.s, selected.t + (e.key === 'ArrowRight' ? 1 : -1), true);
    }
  });

  // ---- form, save, info ----
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    state = {
      q: query.value, sys: system.value.trim(), n: maxNew.value.trim(),
      ac: alignedContext.value, bc: baseContext.value, start: null, branches: []
    };
    saveState();
    runAll();
  });
  stopButton.addEventListener('click', function () { if (running) running.abort(); });
  saveButton.addEventListener('click', function () {
    var sessions = streams.filter(function (s) { return s.session !== null; }).map(function (s) { return s.session; });
    var name = 'live-' + new Date().toISOString().replace(/[:.]/g, '-');
    fetch('/api/save', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: name, sessions: sessions }) })
      .then(function (r) { return r.json().then(function (b) { return [r, b]; }); })
      .then(function (rb) {
        if (!rb[0].ok) { showError(describe(rb[0].status, rb[1])); return; }
        statusLine.textContent = '';
        statusLine.appendChild(el('span', 'saved', 'Saved ' + rb[1].examples + ' answers as ' + rb[1].saved + ' (open it with: ' + rb[1].report + ')'));
      });
  });
  function info() {
    fetch('/api/info').then(function (r) { return r.json(); }).then(function (i) {
      var pair = $('pair');
      if (!i.ready) {
        pair.textContent = i.load_error ? 'models failed to load: ' + i.load_error : 'loading the models…';
        if (!i.load_error) setTimeout(info, 2000);
        return;
      }
      pair.textContent = 'aligned ' + i.aligned.model + ' (' + i.aligned.context + ') vs base ' + i.base.model +
        ' (' + i.base.context + '), ' + i.aligned.weights + ' on ' + i.device;
      $('runs-link').hidden = !i.runs;
      if (!maxNew.value) maxNew.placeholder = String(i.limits.default_new_tokens);
      maxNew.max = String(i.limits.max_new_tokens);
    }).catch(function () { $('pair').textContent = 'cannot reach the server'; });
  }

  info();
  loadState();
  if (state.q) runAll();
  window.addEventListener('hashchange', function () {
    var before = JSON.stringify(state);
    loadState();
    if (JSON.stringify(state) !== before && state.q) runAll();
  });
})();
