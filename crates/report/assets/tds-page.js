// aligntds: helpers shared by the report's pages (report.js) and the live
// page (live.js). A classic script, not an ES module: the report opens from
// file://, where module scripts are refused. It defines one global,
// aligntdsPage, read by the page scripts loaded after it.
(function () {
  'use strict';
  window.aligntdsPage = {
    // Category names and the CSS classes that colour them.
    CATEGORY_CLASS: { unshifted: 'u', marginal: 'm', shifted: 's' },
    // An element with a class and text; text goes into textContent only,
    // so model and data-set text never becomes markup.
    el: function (tag, cls, text) {
      var e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text !== undefined) e.textContent = text;
      return e;
    },
    // Whitespace made visible in lists, where a bare space would be invisible.
    visible: function (s) {
      if (s === '') return '∅';
      return s.replace(/ /g, '␣').replace(/\n/g, '↵').replace(/\t/g, '⇥');
    },
    // A probability from a log-probability, four decimals or scientific.
    prob: function (logprob) {
      var p = Math.exp(logprob);
      return p >= 1e-4 ? p.toFixed(4) : p.toExponential(1);
    },
    // A divergence or entropy; a dash where the value is unknown.
    num: function (x) {
      if (x === null || x === undefined) return '–';
      return x === 0 || Math.abs(x) >= 1e-3 ? x.toFixed(4) : x.toExponential(2);
    }
  };
})();
