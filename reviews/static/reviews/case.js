// Case page: while the checklist has unsaved edits, say so and hold the decision
// buttons, so nobody approves or denies on results that were never saved.
(function () {
  "use strict";
  function init() {
    var form = document.getElementById("checklist-form");
    if (!form) return;
    var note = form.querySelector(".rd-dirty-note");
    var initial = new FormData(form);
    function snapshot(data) {
      var out = [];
      data.forEach(function (value, key) {
        if (key !== "csrfmiddlewaretoken") out.push(key + "=" + value);
      });
      return out.sort().join("&");
    }
    var clean = snapshot(initial);
    function refresh() {
      var dirty = snapshot(new FormData(form)) !== clean;
      if (note) note.hidden = !dirty;
      document.querySelectorAll("#decision button[type=submit], .rd-decide-button").forEach(function (b) {
        if (dirty) {
          if (!b.disabled) { b.dataset.rdHeld = "1"; b.disabled = true; }
        } else if (b.dataset.rdHeld) {
          delete b.dataset.rdHeld; b.disabled = false;
        }
      });
      form.querySelectorAll(".rd-check").forEach(function (row) {
        var checked = row.querySelector("input[type=radio]:checked");
        row.className = row.className.replace(/rd-result-\S+/, "rd-result-" + (checked ? checked.value : "unchecked"));
      });
    }
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
