/* Abri pages: a countdown on the hold page and live holds on the staff page.
   Our own small script; the pages work without it (forms post normally). */
(function () {
  "use strict";

  /* Abri's time now: the device's clock corrected by how far it was from Abri's when the page
     was drawn (data-server-now). A tablet whose clock is minutes slow would otherwise show a
     hold as lasting minutes longer than Abri keeps it. The page is never cached (no-store);
     the few seconds it took to arrive are within the countdown's own precision. */
  var skew = (function () {
    var at = Date.parse(document.body.getAttribute("data-server-now") || "");
    return isNaN(at) ? 0 : at - Date.now();
  })();
  function now() { return Date.now() + skew; }

  function countdown() {
    var el = document.getElementById("countdown");
    if (!el) return;
    var deadline = Date.parse(el.getAttribute("data-deadline"));
    /* the timer is silent; crossing 10, 5 or 1 minute(s) left is said, once each, not
       at load (the page itself says the time left then) */
    var news = document.getElementById("countdown-news");
    var first = true, warned = Infinity;
    function warn(left) {
      var mark = [1, 5, 10].filter(function (t) { return left > 0 && left <= t * 60000; })[0];
      if (mark === undefined || mark >= warned) return;
      if (!first && news) {
        news.textContent = (news.getAttribute("data-text") || "")
          .replace("%(n)s", String(Math.ceil(left / 60000)));
      }
      warned = mark;
    }
    function tick() {
      var left = Math.max(0, deadline - now());
      var m = Math.floor(left / 60000);
      var s = Math.floor((left % 60000) / 1000);
      el.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      warn(left);
      first = false;
      if (left > 0) setTimeout(tick, 1000);
    }
    if (!isNaN(deadline)) tick();
  }

  /* "N min left" beside a hold or a wait counts down between redraws (the server drew it;
     a redraw comes only with news). Looked up at every tick: a live redraw replaces them. */
  function minutesLeftNow() {
    document.querySelectorAll("[data-min-left]").forEach(function (el) {
      var deadline = Date.parse(el.getAttribute("data-min-left"));
      var text = el.getAttribute("data-text");
      if (isNaN(deadline) || !text) return;
      var n = Math.max(0, Math.ceil((deadline - now()) / 60000));
      var shown = text.replace("%(n)s", String(n));
      if (el.textContent !== shown) el.textContent = shown;
    });
  }
  function minutesLeft() {
    minutesLeftNow();
    setInterval(minutesLeftNow, 15000);
  }

  /* This page (or `path`) as the server would draw it now (cookie session), parsed; null on
     failure. Sent as the page's own look (X-Abri-Background), which does not count as the
     user doing something: a console left open is signed out after its idle limit all the
     same. Once the session has ended (the server says so, 401), the page goes to the sign-in
     page, which says why (and comes back here once signed in again), instead of sitting
     there frozen with what it showed. It also says
     which session it was drawn for (X-Abri-Page): after a sign-out and a sign-in as someone
     else in another tab (409), it is drawn again for them, from their home page, instead of
     showing their holds or waiting list under this page's header and forms. */
  var leaving = false;
  function fetchPage(path) {
    if (leaving) return Promise.resolve(null);
    var headers = { "Accept": "text/html", "X-Abri-Background": "1" };
    var mark = document.body.getAttribute("data-session");
    if (mark) headers["X-Abri-Page"] = mark;
    return fetch(path || window.location.pathname, { credentials: "same-origin", headers: headers })
      .then(function (r) {
        var over = r.headers.get("X-Abri-Session");
        if ((r.status === 401 && over === "ended") || (r.status === 409 && over === "changed")) {
          leaving = true;
          window.location.assign(over === "ended"
            ? "/web/sign-in?ended=1&next=" + encodeURIComponent(window.location.pathname)
            : "/web/");
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { return html ? new DOMParser().parseFromString(html, "text/html") : null; });
  }

  /* Before a live redraw replaces `current` with `fresh`: what the user typed there (and did
     not send) is typed into the fresh copy, its folded section left open; a refusal drawn for
     a form the user sent (role=alert, describing its field) goes along with the field, so that
     a redraw wipes neither what is being typed nor what has not been read and corrected. */
  function carry(current, fresh) {
    function byId(root, id) {
      return id ? root.querySelector("#" + (window.CSS && CSS.escape ? CSS.escape(id) : id)) : null;
    }
    /* A value carried over was typed against the old figures: its form keeps the old form's
       hidden basis (the pool's version and held count), so that sending it is answered with
       the conflict and the new figures, not saved over what came in meanwhile (a hold). */
    function basis(field, twin) {
      if (!field.form || !twin.form) return;
      field.form.querySelectorAll("input[type=hidden][name]").forEach(function (h) {
        if (h.name === "csrf") return;
        var t = twin.form.querySelector('input[type=hidden][name="' + h.name + '"]');
        if (t) t.value = h.value;
      });
    }
    current.querySelectorAll("input:not([type=hidden]), textarea").forEach(function (field) {
      var twin = byId(fresh, field.id);
      if (!twin || field.value === field.defaultValue) return;
      twin.value = field.value;
      basis(field, twin);
      for (var d = twin.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
        d.open = true;
      }
    });
    /* a list the user opened or folded (a long one comes folded) stays as it was */
    current.querySelectorAll("details[id]").forEach(function (d) {
      var twin = byId(fresh, d.id);
      if (twin) twin.open = d.open;
    });
    current.querySelectorAll('[role="alert"][id]').forEach(function (err) {
      if (byId(fresh, err.id)) return;
      var field = current.querySelector('[aria-describedby~="' + err.id + '"]');
      var twin = field && byId(fresh, field.id);
      if (!twin) return;  /* the form is gone (e.g. nobody is expected any more) */
      (twin.form || twin).insertAdjacentElement("beforebegin", err.cloneNode(true));
      twin.setAttribute("aria-describedby", field.getAttribute("aria-describedby"));
      if (field.getAttribute("aria-invalid")) twin.setAttribute("aria-invalid", "true");
      twin.value = field.value;
      basis(field, twin);
    });
  }

  /* The live part holds the focus (a "Decline" opened, a code being typed): it is not
     replaced (that would take the focus and what is typed), but households sent or gone
     since are still shown: the items (.hold with an id) are brought in line with `fresh`
     one by one, the one with the focus left as it is, and the count updated. */
  function merge(current, fresh) {
    var focused = document.activeElement;
    var items = function (root) { return root.querySelectorAll(".hold[id]"); };
    var wanted = {};
    items(fresh).forEach(function (it) { wanted[it.id] = true; });
    items(current).forEach(function (it) {
      if (!wanted[it.id] && !it.contains(focused)) it.remove();
    });
    var last = null;
    items(fresh).forEach(function (it) {
      var old = document.getElementById(it.id);
      var neu = document.importNode(it, true);
      if (old && current.contains(old)) {
        if (!old.contains(focused)) { carry(old, neu); old.replaceWith(neu); last = neu; }
        else last = old;
        return;
      }
      if (last) last.insertAdjacentElement("afterend", neu);
      else {
        var first = current.querySelector(".hold[id]");
        var parent = fresh.querySelector(".hold[id]").parentElement;
        var home = parent && parent.id ? document.getElementById(parent.id) : current;
        if (first) first.insertAdjacentElement("beforebegin", neu);
        else (home || current).appendChild(neu);
      }
      last = neu;
    });
    var count = current.querySelector(".count"), freshCount = fresh.querySelector(".count");
    if (count && freshCount) count.textContent = freshCount.textContent;
    var none = current.querySelector(":scope > p.muted");
    if (none && !fresh.querySelector(":scope > p.muted")) none.remove();
  }

  /* Households newly in `fresh` (not in `current`) are said in #live-news (role=status):
     the redraw itself is silent for a screen reader. "Incoming: <code> · <place> <details>" */
  function announce(current, fresh) {
    var news = document.getElementById("live-news");
    if (!news) return;
    var heading = fresh.querySelector("h1, h2");
    var title = "";
    if (heading) {
      heading.childNodes.forEach(function (n) {
        if (n.nodeType === 3) title += n.textContent;
      });
    }
    var said = [];
    fresh.querySelectorAll(".hold[id]").forEach(function (it) {
      if (current.querySelector("#" + it.id)) return;
      var parts = [];
      it.querySelectorAll("h2, h3, p").forEach(function (el, i) {
        if (i < 2) parts.push(el.textContent);
      });
      said.push(parts.join(" — "));
    });
    if (said.length) {
      /* French sets a space before the colon, as the pages do */
      var colon = document.documentElement.lang === "fr" ? "\u202f: " : ": ";
      news.textContent = ((title.trim() ? title.trim() + colon : "") + said.join(" — "))
        .replace(/\s+/g, " ").trim();
    }
  }

  function live() {
    /* the staff page's #holds, or the night worker's #arriving on the link page */
    var holds = document.querySelector("[data-live]");
    if (!holds || !holds.id || !window.EventSource || !window.fetch) return;
    var liveId = holds.id;
    var busy = false, again = false;
    /* A redraw that failed (the phone's Wi-Fi dropped for a moment, a 503) is tried again
       soon: the stream has already moved past the event that asked for it and will not
       send it again, so giving up would leave a household sent meanwhile off the page. */
    var retryTimer = null, retryDelay = 2000;
    function retryLater() {
      if (retryTimer) return;
      retryTimer = setTimeout(function () { retryTimer = null; refresh(); }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    }
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      /* the page's own GET address: after a form was refused the address bar shows the
         POST's (e.g. /web/link/arrived), which a GET would answer with 405 */
      fetchPage(holds.getAttribute("data-page"))
        .then(function (doc) {
          if (!doc) { retryLater(); return; }
          retryDelay = 2000;
          var fresh = doc.getElementById(liveId);
          var current = document.getElementById(liveId);
          if (fresh && current) announce(current, fresh);
          if (fresh && current && !current.contains(document.activeElement)) {
            carry(current, fresh);
            current.replaceWith(fresh);
          } else if (fresh && current) {
            merge(current, fresh);
          }
          /* a card with a refusal (conflict, error) drawn for the form just sent stays as it
             is until the user acts on it: the redraw comes at once (the stream's opening) */
          document.querySelectorAll("article.pool").forEach(function (old) {
            var neu = doc.getElementById(old.id);
            if (neu && !old.contains(document.activeElement) &&
                !old.querySelector(".conflict, .error")) {
              carry(old, neu);
              old.replaceWith(neu);
            }
          });
          /* who is in house (an arrival, a departure): redrawn whole, unless it holds the
             focus (a "Departed" being pressed) */
          document.querySelectorAll("[data-redraw][id]").forEach(function (old) {
            var neu = doc.getElementById(old.id);
            if (neu && !old.contains(document.activeElement)) {
              carry(old, neu);
              old.replaceWith(neu);
            }
          });
          /* what was redrawn says the time left as this page counts it, at once (not at the
             next tick, up to 15 s later, with the server's rounding) */
          minutesLeftNow();
        })
        .catch(retryLater)
        .then(function () { busy = false; if (again) { again = false; refresh(); } });
    }
    window.addEventListener("online", refresh);
    var source = new EventSource(holds.getAttribute("data-live"));
    ["hold.created", "hold.arrived", "hold.released", "hold.expired", "hold.declined",
     "hold.no_show", "hold.departed", "hold.extended", "message"].forEach(function (kind) {
      source.addEventListener(kind, refresh);
    });
    /* refused (e.g. 429: too many streams open with this token) or gone for good: the
       browser will not try again, so the page says so instead of looking live */
    source.addEventListener("error", function () {
      if (source.readyState !== EventSource.CLOSED) return;  /* reconnecting by itself */
      document.documentElement.setAttribute("data-live", "off");
      if (document.getElementById("live-off")) return;
      var off = document.createElement("p");
      off.id = "live-off";
      off.className = "notice";
      off.setAttribute("role", "status");
      /* the element as it is now: a redraw has replaced the one found when the page loaded */
      var here = document.getElementById(liveId) || holds;
      off.textContent = here.getAttribute("data-live-off") || "";
      if (here.parentNode) here.parentNode.insertBefore(off, here);
    });
    document.documentElement.setAttribute("data-live", "on");
  }

  /* The hold page while the place is held: the shelter may decline it, or it may expire or
     be marked arrived; look every 15 s and show the new state (with its reason) at once. And
     while the household is there (arrived): the place may report its location compromised,
     and the page must then say "do not go there" and stop giving its phone and handover. */
  function watchHold() {
    var el = document.getElementById("hold-state");
    var state = el && el.getAttribute("data-state");
    if (!el || (state !== "held" && state !== "arrived") || !window.fetch) return;
    var doNotGo = el.getAttribute("data-do-not-go");
    /* the place closed to new admissions (or suspended) since: "call before going" */
    var warning = el.getAttribute("data-place-warning");
    function look() {
      fetchPage()
        .then(function (doc) {
          var fresh = doc && doc.getElementById("hold-state");
          if (fresh && (fresh.getAttribute("data-state") !== state ||
                        fresh.getAttribute("data-do-not-go") !== doNotGo ||
                        fresh.getAttribute("data-place-warning") !== warning)) {
            window.location.reload();
          }
        })
        .catch(function () {});
    }
    setInterval(look, 15000);
  }

  /* The console while a standing request waits: a place may free up at any moment and be held
     for the operator; look every 15 s (at the console itself: a results page was drawn for a
     POST) and redraw the list, the hold's code in it. Only a change of state is announced to
     screen readers (#standing-news), not the whole list every time. */
  function watchStanding() {
    var el = document.getElementById("standing");
    var news = document.getElementById("standing-news");
    if (!el || el.getAttribute("data-waiting") !== "1" || !window.fetch) return;
    function states(section) {
      var out = {};
      section.querySelectorAll("li[data-state]").forEach(function (li) {
        out[li.id] = li.getAttribute("data-state");
      });
      return out;
    }
    var timer = setInterval(function () {
      fetchPage("/web/console")
        .then(function (doc) {
          if (!doc) return;
          var fresh = doc.getElementById("standing");
          var current = document.getElementById("standing");
          if (!current) { clearInterval(timer); return; }
          if (!fresh) { current.removeAttribute("data-waiting"); clearInterval(timer); return; }
          if (current.contains(document.activeElement)) return;
          var before = states(current), changed = [];
          current.innerHTML = fresh.innerHTML;
          minutesLeftNow();  /* the time left as this page counts it, not the server's */
          current.querySelectorAll("li[data-state]").forEach(function (li) {
            if (before[li.id] !== li.getAttribute("data-state")) changed.push(li.textContent);
          });
          if (news && changed.length) {
            news.textContent = changed.join(" — ").replace(/\s+/g, " ").trim();
          }
          if (fresh.getAttribute("data-waiting") !== "1") {
            current.removeAttribute("data-waiting");
            clearInterval(timer);
          }
        })
        .catch(function () {});
    }, 15000);
  }

  /* Back to the console's form (from the results, or from the browser's error page after a
     send lost in a network blip), the browser fills in again what was typed, but never a
     field with autocomplete=off (kept off the device's autofill history): the areas to avoid,
     the preferred area, the callback. The form looked complete without the partner's
     municipality avoided. Those fields are kept in this history entry's own state (like the
     browser's form state: this tab only, this page only) and put back on Back/Forward. */
  function keepUnrestoredFields() {
    var form = document.getElementById("search-form");
    if (!form || !window.history || !history.replaceState) return;
    var fields = form.querySelectorAll('input[autocomplete="off"][name]');
    var nav = window.performance && performance.getEntriesByType ?
      performance.getEntriesByType("navigation")[0] : null;
    var kept = history.state && history.state.abriFields;
    if (nav && nav.type === "back_forward" && kept) {
      fields.forEach(function (f) {
        /* untouched since the page was drawn: the browser did not restore it */
        if (f.value === f.defaultValue && typeof kept[f.name] === "string") f.value = kept[f.name];
      });
    }
    function save() {
      var now = {};
      fields.forEach(function (f) { now[f.name] = f.value; });
      var state = {};
      var old = history.state;
      if (old && typeof old === "object") Object.keys(old).forEach(function (k) { state[k] = old[k]; });
      state.abriFields = now;
      try { history.replaceState(state, ""); } catch (e) { /* state too large: no keeping */ }
    }
    save();
    form.addEventListener("input", save);
    form.addEventListener("change", save);
    form.addEventListener("submit", save);
  }

  // A form that takes a place out of the searches asks first (one stray tap on a phone at
  // night would otherwise hide a free bed until someone notices). Delegated: the live refresh
  // replaces parts of the page. Without JavaScript the form still works in one tap.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    /* A second tap while the first is on its way (a slow network in a car) sent the form
       again: the first extended the hold, the page then showed the second one's refusal as
       if the extension had failed (and "+ 1" counted twice). Every POST form here leaves the
       page, so the same form is not sent again for 10 s; Back to this page resets it. (A GET
       form may answer with a download and leave the page as it is: not those.) */
    if (!form || event.defaultPrevented || (form.method || "").toLowerCase() !== "post") return;
    if (changedSinceResults(form)) { event.preventDefault(); return; }
    var sent = Number(form.getAttribute("data-sent-at") || 0);
    if (sent && Date.now() - sent < 10000) { event.preventDefault(); return; }
    form.setAttribute("data-sent-at", String(Date.now()));
    currentCallback(form);
  });

  /* A results page's hold and wait forms carry the household and the areas the options were
     found for. The operator added the toddler the mother mentioned, or an area to avoid, and
     pressed "Hold this place" without searching again: the place was held for the household
     without the toddler (a room too small), or in the area to avoid. While the search form
     differs from what was searched, they are refused here, saying to search again. */
  function changedSinceResults(form) {
    var results = document.getElementById("results");
    var search = document.getElementById("search-form");
    if (!results || !search || !results.contains(form)) return false;
    var changed = Array.prototype.some.call(search.elements, function (el) {
      if (!el.name || el.name === "callback" || el.type === "hidden" || el.tagName === "BUTTON") return false;
      if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
      if (el.tagName === "SELECT") {
        var drawn = 0;  /* the option drawn selected, else the first */
        Array.prototype.forEach.call(el.options, function (o, i) { if (o.defaultSelected) drawn = i; });
        return el.selectedIndex !== drawn;
      }
      return el.value !== el.defaultValue;
    });
    if (!changed) return false;
    var say = document.getElementById("form-changed");
    if (!say) {
      say = document.createElement("p");
      say.id = "form-changed";
      say.className = "error";
      say.setAttribute("role", "alert");
      say.setAttribute("tabindex", "-1");
    }
    say.textContent = results.getAttribute("data-form-changed") || "";
    form.insertAdjacentElement("beforebegin", say);
    say.focus();
    return true;
  }

  /* A results page's hold and wait forms carry "How the shelter can reach you" as it was at
     the search. The operator often types it once the options are shown (the field stays right
     above them): the hold went without it, and the shelter could not call back. They take the
     field as it is now (the household and the areas stay those the options were found for). */
  function currentCallback(form) {
    var field = document.getElementById("callback");
    var carried = form.querySelector('input[type=hidden][name="callback"]');
    if (!field || !carried || field.form === form) return;
    carried.value = field.value;
    /* the form as typed, drawn again if the hold or wait is refused */
    var typed = form.querySelector('input[type=hidden][name="typed"]');
    if (!typed) return;
    try {
      var values = JSON.parse(typed.value);
      if (values && typeof values === "object") {
        values.callback = field.value;
        typed.value = JSON.stringify(values);
      }
    } catch (e) { /* not ours to fix: the server draws the form it was given */ }
  }
  window.addEventListener("pageshow", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-sent-at]"), function (f) {
      f.removeAttribute("data-sent-at");
    });
  });

  /* A page drawn for a refused form opens at its top: on a phone the refusal may be screens
     further down (the second facility's pool card), and a screen reader starts reading at the
     top, role=alert or not (a region already there when the page loads is not announced). The
     refusal gets the focus, which also brings it into view; its field instead when it
     describes one (aria-invalid), to be corrected at once. A search's results page: the
     results, below the long form. */
  function focusOnArrival() {
    var main = document.getElementById("main");
    if (!main) return;
    var target = null;
    /* the first refusal drawn with the page (an empty alert region waits for later news) */
    var err = Array.prototype.filter.call(main.querySelectorAll('[role="alert"]'), function (el) {
      return el.textContent.trim() !== "";
    })[0];
    if (err) {
      target = err.id ? main.querySelector('[aria-invalid="true"][aria-describedby~="' + err.id + '"]') : null;
      target = target || err;
    } else {
      target = document.getElementById("results-h");
    }
    if (!target) return;
    if (!/^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(target.tagName)) target.setAttribute("tabindex", "-1");
    target.focus();
  }

  /* The confirmation of what was just done ("Saved.", "Marked as arrived.") is drawn with
     the page in a status region, which a screen reader does not say (and the page opens at
     the card, not at the top): once the page is up it is said in #live-news. */
  function sayNotice() {
    var notice = document.getElementById("notice");
    var news = document.getElementById("live-news");
    if (!notice || !news) return;
    setTimeout(function () { news.textContent = notice.textContent.trim(); }, 300);
  }

  document.addEventListener("DOMContentLoaded", function () {
    keepUnrestoredFields(); sayNotice(); focusOnArrival(); countdown(); minutesLeft(); live();
    watchHold(); watchStanding();
  });
})();
