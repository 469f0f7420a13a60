/* The one-time link page: move the secret from the URL fragment (never sent to a server)
   into the form, and strip it from the address bar and history. Our own small script; without
   it the worker can paste the code into the field. Nothing is sent until "Open" is tapped. */
(function () {
  "use strict";
  function take() {
    var input = document.getElementById("link-code");
    var hash = window.location.hash;
    if (!input || !hash || hash.length < 2) return;
    input.value = decodeURIComponent(hash.slice(1));
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname);
    }
    var field = document.getElementById("link-code-field");
    if (field) field.hidden = true;
  }
  document.addEventListener("DOMContentLoaded", take);
})();
