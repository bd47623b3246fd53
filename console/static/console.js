// wharf console: live refresh of the overview and selection helpers.
// No framework and no build step. Everything it inserts comes from the
// console's own server-rendered (escaped) fragments.
(function () {
  "use strict";

  // The overview's counts and chart: fetched again every data-every
  // seconds while the tab is visible.
  function live() {
    var box = document.getElementById("live");
    if (!box) return;
    var src = box.getAttribute("data-src");
    var every = Math.max(1, parseInt(box.getAttribute("data-every"), 10) || 5) * 1000;
    var busy = false;
    function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) { box.innerHTML = html; box.removeAttribute("data-stale"); box.setAttribute("data-refreshed", String(Date.now())); })
        .catch(function () { box.setAttribute("data-stale", "true"); })
        .then(function () { busy = false; });
    }
    setInterval(refresh, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  }

  // Dead letters: select all on the page, and buttons that need a
  // selection enabled only with one.
  function selection() {
    var form = document.getElementById("dead-form");
    if (!form) return;
    var all = document.getElementById("select-all");
    var boxes = form.querySelectorAll('input[type=checkbox][name=id]');
    var needs = form.querySelectorAll("[data-needs-selection]");
    function update() {
      var n = 0;
      boxes.forEach(function (b) { if (b.checked) n++; });
      needs.forEach(function (b) {
        b.disabled = n === 0;
        var base = b.getAttribute("data-label") || b.textContent;
        b.setAttribute("data-label", base);
        b.textContent = n > 0 ? base.replace("selected", n + " selected") : base;
      });
      if (all) {
        all.checked = n > 0 && n === boxes.length;
        all.indeterminate = n > 0 && n < boxes.length;
      }
    }
    if (all) all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    selection();
  });
})();
