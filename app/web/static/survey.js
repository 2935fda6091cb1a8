// Small enhancements of the survey pages; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Text size: applied at once, without reloading the page (and losing what was typed);
  // the same cookie the server sets for the links' no-script way.
  var links = document.querySelectorAll("a[data-text-size]");
  links.forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var size = link.getAttribute("data-text-size");
      var secure = window.location.protocol === "https:" ? "; secure" : "";
      document.cookie = "text_size=" + size + "; path=/s/; max-age=31536000; samesite=strict" + secure;
      document.documentElement.classList.toggle("text-large", size === "large");
      links.forEach(function (other) {
        if (other === link) { other.setAttribute("aria-current", "true"); }
        else { other.removeAttribute("aria-current"); }
      });
    });
  });
});
