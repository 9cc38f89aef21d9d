// aligntds report: the example table (sort, filter) and the example pages'
// token panel. Text from models and data sets only ever goes into
// textContent, never into markup. Per-example data arrives through a script
// tag (works from file://, where fetch() of local files is blocked).
// Needs tds-page.js loaded first.
(function () {
  'use strict';
  var page = window.aligntdsPage;
  var el = page.el, visible = page.visible, prob = page.prob, num = page.num;
  var CATEGORY = ['unshifted', 'marginal', 'shifted'];
  var CLASS = CATEGORY.map(function (c) { return page.CATEGORY_CLASS[c]; });

  function initTable() {
    var table = document.getElementById('example-table');
    if (!table) return;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var filter = document.getElementById('filter');
    var shown = document.getElementById('shown');
    function update() {
      var q = filter.value.trim().toLowerCase();
      var n = 0;
      rows.forEach(function (r) {
        var ok = !q || r.getAttribute('data-text').indexOf(q) >= 0;
        r.hidden = !ok;
        if (ok) n++;
      });
      shown.textContent = n + ' of ' + rows.length + ' examples';
    }
    filter.addEventListener('input', update);
    update();
    var headers = table.querySelectorAll('th[data-col]');
    Array.prototype.forEach.call(headers, function (th) {
      th.tabIndex = 0;
      function sort() {
        var col = +th.getAttribute('data-col');
        var numeric = th.getAttribute('data-type') === 'num';
        var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
        Array.prototype.forEach.call(headers, function (h) { h.setAttribute('aria-sort', 'none'); });
        th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
        var key = function (r) {
          var c = r.cells[col];
          return numeric ? parseFloat(c.getAttribute('data-v')) : c.textContent.toLowerCase();
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          return (x < y ? -1 : x > y ? 1 : 0) * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); }
      });
    });
  }

  function initExample() {
    var answer = document.getElementById('answer');
    if (!answer) return;
    var tokens = Array.prototype.slice.call(answer.querySelectorAll('.t'));
    var panel = document.getElementById('panel');
    var data = null;
    var current = -1;

    window.aligntds = {
      receive: function (d) {
        data = d;
        if (current >= 0) render(current);
      }
    };
    // A run with several reference sides: colour each token by its category
    // under the side chosen (the letters of data-cats, base first).
    var colourBy = document.getElementById('colour-by');
    if (colourBy) {
      colourBy.addEventListener('change', function () {
        var k = Number(colourBy.value);
        tokens.forEach(function (s) {
          var c = (s.getAttribute('data-cats') || '').charAt(k);
          if (!c) return;
          s.classList.remove('u', 'm', 's');
          s.classList.add(c);
        });
        if (current >= 0) render(current);
      });
    }
    var script = document.createElement('script');
    script.src = document.body.getAttribute('data-data');
    script.onerror = function () {
      panel.textContent = 'Could not load ' + script.src + ': the per-position details are missing.';
    };
    document.body.appendChild(script);

    function text(i) { return tokens[i].textContent; }
    function prefixEnd(contextId, t) {
      var ctx = document.getElementById(contextId).textContent;
      var before = ctx + tokens.slice(0, t).map(function (s) { return s.textContent; }).join('');
      var tail = before.length > 240 ? '…' + before.slice(before.length - 240) : before;
      var pre = el('pre', 'prefix', tail);
      pre.appendChild(el('span', 'next', text(t) === '' ? '∅' : text(t)));
      return pre;
    }
    function topTable(caption, ids, logprobs, hit) {
      var table = el('table');
      table.appendChild(el('caption', null, caption));
      var head = el('tr');
      ['#', 'token', 'p'].forEach(function (h) { head.appendChild(el('th', null, h)); });
      table.appendChild(el('thead')).appendChild(head);
      var body = el('tbody');
      for (var j = 0; j < ids.length; j++) {
        var tr = el('tr', ids[j] === hit ? 'hit' : null);
        tr.appendChild(el('td', null, String(j + 1)));
        var token = data.dict[ids[j]];
        tr.appendChild(el('td', 'tok', visible(token === undefined ? '#' + ids[j] : token)));
        var p = el('td', 'p', prob(logprobs[j]));
        var bar = el('span', 'bar');
        bar.style.width = (100 * Math.exp(logprobs[j])).toFixed(1) + '%';
        p.appendChild(bar);
        tr.appendChild(p);
        body.appendChild(tr);
      }
      table.appendChild(body);
      return table;
    }
    function render(i) {
      panel.textContent = '';
      var token = tokens[i];
      var category = ['u', 'm', 's'].filter(function (c) { return token.classList.contains(c); })[0];
      var h = el('h3', null, 'Position ' + i + ' · ');
      h.appendChild(el('code', null, visible(text(i))));
      h.appendChild(document.createTextNode(' '));
      h.appendChild(el('span', 'badge ' + category, CATEGORY[CLASS.indexOf(category)]));
      panel.appendChild(h);
      if (!data) {
        panel.appendChild(el('p', 'hint', 'Loading details…'));
        return;
      }
      var p = data.pos[i];
      if (!p) {
        panel.appendChild(el('p', 'hint', 'No details for this position.'));
        return;
      }
      var metrics = el('dl', 'metrics');
      [
        ['base rank of o_t', String(p[3])],
        ['aligned rank of o_t', String(p[1])],
        ['p_aligned(o_t)', prob(p[2])],
        ['p_base(o_t)', prob(p[4])],
        ['KL(aligned ‖ base)', num(p[5])],
        ['KL(base ‖ aligned)', num(p[6])],
        ['JS divergence', num(p[7])],
        ['log-ratio log p_a − log p_b', num(p[8])],
        ['entropy aligned / base', num(p[9]) + ' / ' + num(p[10])],
        ['same top-1', p[11][0] === p[13][0] ? 'yes' : 'no']
      ].concat(document.body.classList.contains('handover') ? [[
        'chosen by', token.classList.contains('by-base') ? 'base (coloured by its aligned rank)' : 'aligned'
      ]] : []).forEach(function (m) {
        metrics.appendChild(el('dt', null, m[0]));
        metrics.appendChild(el('dd', null, m[1]));
      });
      panel.appendChild(metrics);
      if (data.sides && data.sides.length) {
        // The aligned token's rank under every reference side, base first.
        var table = el('table', 'sides');
        table.appendChild(el('caption', null, 'o_t under every reference side'));
        var head = el('tr');
        ['side', 'rank', 'p', 'KL(aligned ‖ side)'].forEach(function (c) { head.appendChild(el('th', null, c)); });
        table.appendChild(head);
        [['base', p[3], p[4], p[5]]].concat(data.sides.map(function (s) {
          var q = s.pos[i] || [null, null, null];
          return [s.name, q[0], q[1], q[2]];
        })).forEach(function (r) {
          var tr = el('tr');
          tr.appendChild(el('th', null, r[0]));
          tr.appendChild(el('td', null, String(r[1])));
          tr.appendChild(el('td', null, prob(r[2])));
          tr.appendChild(el('td', null, num(r[3])));
          table.appendChild(tr);
        });
        panel.appendChild(table);
      }
      var tops = el('div', 'tops');
      tops.appendChild(topTable('Aligned@t', p[11], p[12], p[0]));
      tops.appendChild(topTable('Base@t', p[13], p[14], p[0]));
      panel.appendChild(tops);
      var live = liveLink(i);
      if (live) panel.appendChild(live);
      panel.appendChild(el('h4', null, 'End of the aligned prefix'));
      panel.appendChild(prefixEnd('ctx-aligned', i));
      panel.appendChild(el('h4', null, 'End of the base prefix'));
      panel.appendChild(prefixEnd('ctx-base', i));
    }
    // Served by `aligntds serve` (under /runs/): a link that opens this query
    // in the live view with the answer kept up to this token, to continue
    // from there with either model.
    function liveLink(i) {
      if (!/^https?:$/.test(location.protocol) || location.pathname.indexOf('/runs/') !== 0) return null;
      var kind = function (id) {
        var k = document.getElementById(id).getAttribute('data-kind');
        return ['chat', 'template', 'plain', 'urial'].indexOf(k) >= 0 ? k : '';
      };
      var state = new URLSearchParams();
      state.set('q', document.querySelector('pre.query').textContent);
      if (kind('ctx-aligned')) state.set('ac', kind('ctx-aligned'));
      if (kind('ctx-base')) state.set('bc', kind('ctx-base'));
      state.set('start', JSON.stringify({ p: data.pos.slice(0, i + 1).map(function (p) { return p[0]; }), w: 'aligned' }));
      state.set('t', String(i));
      var a = el('a', 'live-link', 'Open in the live view from this token');
      a.id = 'open-live';
      a.href = '/#' + state.toString();
      var p = el('p');
      p.appendChild(a);
      return p;
    }
    function select(i, focus) {
      if (!tokens.length) return;
      i = Math.max(0, Math.min(tokens.length - 1, i));
      if (current >= 0) {
        tokens[current].classList.remove('sel');
        tokens[current].tabIndex = -1;
      }
      current = i;
      tokens[i].classList.add('sel');
      tokens[i].tabIndex = 0;
      if (focus) tokens[i].focus();
      try { history.replaceState(null, '', '#t=' + i); } catch (e) { /* some file:// setups refuse */ }
      Array.prototype.forEach.call(document.querySelectorAll('a.run-link'), function (a) {
        a.hash = 't=' + i;
      });
      render(i);
    }
    if (tokens.length) tokens[0].tabIndex = 0;
    answer.addEventListener('click', function (e) {
      var t = e.target.closest('.t');
      if (t) select(+t.getAttribute('data-t'), true);
    });
    answer.addEventListener('focusin', function (e) {
      var t = e.target.closest('.t');
      if (t && +t.getAttribute('data-t') !== current) select(+t.getAttribute('data-t'), false);
    });
    document.addEventListener('keydown', function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.target.closest && e.target.closest('input, textarea, summary')) return;
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        e.preventDefault();
        select(current < 0 ? 0 : current + (e.key === 'ArrowRight' ? 1 : -1), true);
      } else if (e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        select(e.key === 'Home' ? 0 : tokens.length - 1, true);
      } else if (e.key === 'n' || e.key === 'p') {
        var a = document.getElementById(e.key === 'n' ? 'next' : 'prev');
        if (a) window.location.href = a.href;
      }
    });
    var m = /t=(\d+)/.exec(window.location.hash);
    if (m) select(+m[1], true);
  }

  initTable();
  initExample();
})();
