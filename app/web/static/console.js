// Small enhancements of the staff console; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // "Copy link" buttons: shown only where the clipboard can be written.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById(input.id + "-status");
      navigator.clipboard.writeText(input.value).then(function () {
        if (status) { status.textContent = "Link copied."; }
      }, function () {
        input.select();
        if (status) { status.textContent = "Select the link and copy it."; }
      });
    });
  });
  // A form that changes something is sent once: a second click does nothing (the
  // server also enrolls once per form, whatever the browser does).
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
    });
  });
  // After a failed submit, the error summary takes the focus.
  var summary = document.querySelector("[data-focus]");
  if (summary) { summary.focus(); }
});
