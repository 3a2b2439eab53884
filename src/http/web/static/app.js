// IARI workstation: the few things HTML alone cannot do. Served from /static/app.js with its
// SHA-256 as subresource integrity; the pages carry no inline script.
(function () {
  "use strict";

  // Worklist: fetch the table body again every data-refresh-ms. The request says it is a
  // background refresh, so it does not keep an unattended session alive.
  var table = document.querySelector("table[data-refresh-url]");
  if (table) {
    var url = table.getAttribute("data-refresh-url");
    var ms = parseInt(table.getAttribute("data-refresh-ms"), 10) || 3000;
    var busy = false;
    setInterval(function () {
      if (busy) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Iari-Background": "1" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null) { return; }
          var doc = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
          var fresh = doc.querySelector("tbody");
          var old = document.getElementById("worklist-body");
          if (fresh && old) {
            old.replaceWith(fresh);
            var count = document.getElementById("worklist-count");
            if (count) { count.textContent = fresh.getAttribute("data-count"); }
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .finally(function () { busy = false; });
    }, ms);
  }

  // Decision page: keys 0-4 pick a grade (not while typing in a field).
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) { return; }
    var link = document.querySelector("a[data-key='" + e.key + "']");
    if (link) { e.preventDefault(); link.click(); }
  });

  // Image zoom: 1x, 2x, 4x.
  var figure = document.querySelector("[data-zoom-target]");
  if (figure) {
    var levels = ["zoom-1", "zoom-2", "zoom-4"];
    var at = 0;
    document.querySelectorAll("button[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        figure.classList.remove(levels[at]);
        at = b.getAttribute("data-zoom") === "in" ? Math.min(at + 1, 2) : Math.max(at - 1, 0);
        figure.classList.add(levels[at]);
      });
    });
  }

  // The signature form opens with the password field focused.
  var pw = document.getElementById("sign-password");
  if (pw) { pw.focus(); }
})();
