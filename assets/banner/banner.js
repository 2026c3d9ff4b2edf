/* consentry consent banner: progressive enhancement of plain HTML forms
   and links that already work without JavaScript. Everything lives in this
   IIFE; the only global it creates is window.consentry.

   The page carries at most the short dialog (title, text, Refuse all,
   Accept all, a Customise link); the full one (per-category switches and
   cookie tables) is the page /.consentry/preferences, which visitors
   without JavaScript follow as a link. Here it is fetched and its parts
   are put in place instead, so the page itself stays small.

   Served through a whitespace minifier (src/banner.rs, minify_js): every
   statement ends with a semicolon; no regex or template literals. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById('consentry-' + id); };
  var root = $('root');
  if (!root || window.consentry) return;
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };
  var split = function (s) { return s ? s.split(',') : []; };
  var has = function (a, x) { return a.indexOf(x) >= 0; };
  var granted = split(root.getAttribute('data-granted'));
  var valid = root.getAttribute('data-valid') === '1';
  /* With a CSP, revived third-party elements would be blocked by the policy
     the page was served with: reload instead so the new one applies. */
  var csp = root.hasAttribute('data-csp');
  var returnTo = null;
  var submitter = null;
  var loading = false;

  function isOpen() { var o = $('banner'); return !!o && !o.hidden; }

  /* Content of a closed <details> still has boxes in some engines, so
     visibility is checked explicitly. */
  function shown(el) {
    if (el.checkVisibility) return el.checkVisibility();
    for (var n = el; n && n !== $('dialog'); n = n.parentElement) {
      var d = n.parentElement;
      if (d && d.tagName === 'DETAILS' && !d.open && n.tagName !== 'SUMMARY') return false;
    }
    return el.getClientRects().length > 0;
  }

  function focusables() {
    var all = $('dialog').querySelectorAll('a[href],button:not([disabled]),input:not([disabled]),summary');
    return Array.prototype.filter.call(all, shown);
  }

  function sync() {
    each(root.querySelectorAll('input[name="category"]'), function (box) {
      box.checked = valid && has(granted, box.value);
    });
  }

  /* A page without <meta name="viewport"> is laid out about 980px wide and
     shown zoomed out on a phone, which shrinks the banner past reading and
     tapping: undo the page's zoom for the banner (CSS zoom, through a
     custom property set with CSSOM, which a CSP allows). Measured when it
     opens only, so a visitor who pinch-zooms in to read larger still gets
     larger text. */
  function fit() {
    var v = window.visualViewport;
    var coarse = window.matchMedia && window.matchMedia('(pointer: coarse)').matches;
    var k = v && coarse && v.scale < 0.9 ? Math.min(1 / v.scale, 4) : 1;
    root.style.setProperty('--cy-zoom', String(Math.round(k * 100) / 100));
  }

  function open() {
    if (!isOpen() || !returnTo) returnTo = document.activeElement;
    sync();
    fit();
    $('banner').hidden = false;
    /* Closing without choosing is only offered once a choice exists. */
    if ($('close')) $('close').hidden = !valid;
    $('dialog').focus();
  }

  function close() {
    $('banner').hidden = true;
    var back = returnTo && returnTo !== document.body && document.contains(returnTo) ? returnTo : $('manage');
    returnTo = null;
    back.focus();
  }

  /* Fetches the preferences page and hands its document to done; if that
     fails (network, the site's CSP), the link is simply followed. */
  function load(url, done) {
    if (loading) return;
    loading = true;
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } }).then(function (r) {
      if (!r.ok) throw new Error('status ' + r.status);
      return r.text();
    }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, 'text/html');
      loading = false;
      done(function (id) { return document.importNode(doc.getElementById('consentry-' + id), true); });
    }).catch(function () {
      location.href = url;
    });
  }

  /* "Manage my cookies": the full dialog (with its close button), fetched
     once; it replaces the short one a first visit had. */
  function manage() {
    var o = $('banner');
    if (o && $('close')) {
      open();
      return;
    }
    load($('manage').href, function (take) {
      var n = take('banner');
      if (o) o.parentNode.replaceChild(n, o);
      else root.insertBefore(n, $('manage'));
      $('prefs').open = false;
      open();
    });
  }

  /* Customise in the short dialog: its link becomes the fetched panel. */
  function customise(link) {
    load(link.href, function (take) {
      link.parentNode.replaceChild(take('prefs'), link);
      sync();
      $('customise').focus();
    });
  }

  function revive(cat) {
    var sel = '[data-category="' + cat + '"]';
    each(document.querySelectorAll('script[type="text/plain"]' + sel), function (old) {
      var s = document.createElement('script');
      each(old.attributes, function (a) {
        if (a.name !== 'type' && a.name !== 'data-type' && a.name !== 'data-src') s.setAttribute(a.name, a.value);
      });
      if (old.getAttribute('data-type')) s.type = old.getAttribute('data-type');
      var src = old.getAttribute('data-src');
      if (src) {
        /* Keep the page's order between revived scripts unless it said async. */
        s.async = old.hasAttribute('async');
        s.src = src;
      } else {
        s.text = old.text;
      }
      old.parentNode.replaceChild(s, old);
    });
    each(document.querySelectorAll(sel + '[data-src],' + sel + '[data-srcset],' + sel + '[data-href]'), function (el) {
      if (el.tagName === 'SCRIPT') return;
      each(['srcset', 'src', 'href'], function (name) {
        var v = el.getAttribute('data-' + name);
        if (v !== null) {
          el.setAttribute(name, v);
          el.removeAttribute('data-' + name);
        }
      });
    });
  }

  function apply(next) {
    var withdrawn = granted.filter(function (c) { return !has(next, c); });
    var added = next.filter(function (c) { return !has(granted, c); });
    granted = next;
    valid = true;
    root.setAttribute('data-granted', next.join(','));
    root.setAttribute('data-valid', '1');
    /* A withdrawn category's scripts have already run: only a reload (whose
       response sweeps their cookies) gets rid of them. */
    if (withdrawn.length || (added.length && csp)) {
      location.reload();
      return;
    }
    each(added, revive);
    close();
    document.dispatchEvent(new CustomEvent('consentry:change', { detail: { granted: next.slice() } }));
  }

  function busy(form, on) {
    $('dialog').setAttribute('aria-busy', on ? 'true' : 'false');
    each(form.querySelectorAll('button'), function (b) { b.disabled = on; });
  }

  function fallback(form, choice) {
    var input = document.createElement('input');
    input.type = 'hidden';
    input.name = 'choice';
    input.value = choice;
    form.appendChild(input);
    busy(form, false);
    HTMLFormElement.prototype.submit.call(form);
  }

  root.addEventListener('click', function (e) {
    var a = e.target.closest ? e.target.closest('a,button') : null;
    if (!a) return;
    if (a.id === 'consentry-manage') {
      e.preventDefault();
      manage();
    } else if (a.id === 'consentry-customise' && a.tagName === 'A') {
      e.preventDefault();
      customise(a);
    } else if (a.id === 'consentry-close') {
      e.preventDefault();
      close();
    } else if (a.name === 'choice') {
      submitter = a;
    }
  });

  root.addEventListener('submit', function (e) {
    var form = e.target;
    var b = e.submitter || submitter;
    submitter = null;
    /* No fetch: the plain form post. */
    if (!b || b.name !== 'choice' || !window.fetch) return;
    e.preventDefault();
    var choice = b.value;
    var picked = [];
    each(form.querySelectorAll('input[name="category"]:checked'), function (box) { picked.push(box.value); });
    var url = form.getAttribute('action');
    var posted = false;
    busy(form, true);
    fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ choice: choice, categories: choice === 'custom' ? picked : [], method: 'banner' })
    }).then(function (r) {
      if (!r.ok) throw new Error('status ' + r.status);
      posted = true;
      /* The proxy decides what is granted (Sec-GPC may narrow a choice):
         ask it rather than assume. */
      return fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
    }).then(function (r) {
      return r.json();
    }).then(function (state) {
      busy(form, false);
      if (state.valid) apply(state.granted);
      else location.reload();
    }).catch(function () {
      /* Not recorded: post the form the plain way. Recorded but unreadable:
         a reload shows the page as the proxy now serves it. */
      if (posted) location.reload();
      else fallback(form, choice);
    });
  });

  root.addEventListener('keydown', function (e) {
    if (!isOpen() || !$('dialog').contains(e.target)) return;
    if (e.key === 'Escape' || e.key === 'Esc') {
      /* Escape never counts as a choice. Before the first choice it does
         nothing; afterwards it closes and keeps the existing choice. */
      if (valid) {
        e.preventDefault();
        close();
      }
      return;
    }
    /* The close link is announced as a button: Space works too. */
    if ((e.key === ' ' || e.key === 'Spacebar') && e.target === $('close')) {
      e.preventDefault();
      close();
      return;
    }
    if (e.key !== 'Tab') return;
    var f = focusables();
    if (!f.length) return;
    var first = f[0];
    var last = f[f.length - 1];
    var at = document.activeElement;
    if (e.shiftKey && (at === first || at === $('dialog'))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && at === last) {
      e.preventDefault();
      first.focus();
    }
  });

  /* aria-modal: keep keyboard focus inside while open. */
  document.addEventListener('focusin', function (e) {
    if (isOpen() && !$('dialog').contains(e.target)) $('dialog').focus();
  });

  root.className += ' consentry-js';
  fit();
  if (isOpen()) open();

  window.consentry = {
    open: manage,
    close: function () { if (valid && isOpen()) close(); },
    granted: function () { return granted.slice(); }
  };
})();
