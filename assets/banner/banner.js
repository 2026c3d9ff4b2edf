/* consentry consent banner: progressive enhancement of a plain HTML form
   that already works without JavaScript. Everything lives in this IIFE; the
   only global it creates is window.consentry. */
(function () {
  'use strict';
  var root = document.getElementById('consentry-root');
  if (!root || window.consentry) return;
  var overlay = document.getElementById('consentry-banner');
  var dialog = document.getElementById('consentry-dialog');
  var form = document.getElementById('consentry-form');
  var manage = document.getElementById('consentry-manage');
  var closer = document.getElementById('consentry-close');
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };
  var split = function (s) { return s ? s.split(',') : []; };
  var has = function (a, x) { return a.indexOf(x) >= 0; };
  var granted = split(root.getAttribute('data-granted'));
  var valid = root.getAttribute('data-valid') === '1';
  // With a CSP, revived third-party elements would be blocked by the policy
  // the page was served with: reload instead so the new one applies.
  var csp = root.hasAttribute('data-csp');
  var returnTo = null;
  var submitter = null;

  function isOpen() { return !overlay.hidden; }

  // Content of a closed <details> still has boxes in some engines, so
  // visibility is checked explicitly.
  function shown(el) {
    if (el.checkVisibility) return el.checkVisibility();
    for (var n = el; n && n !== dialog; n = n.parentElement) {
      var d = n.parentElement;
      if (d && d.tagName === 'DETAILS' && !d.open && n.tagName !== 'SUMMARY') return false;
    }
    return el.getClientRects().length > 0;
  }

  function focusables() {
    var all = dialog.querySelectorAll('a[href],button:not([disabled]),input:not([disabled]),summary');
    return Array.prototype.filter.call(all, shown);
  }

  function sync() {
    each(form.querySelectorAll('input[name="category"]'), function (box) {
      if (!box.disabled) box.checked = valid && has(granted, box.value);
    });
  }

  // A page without <meta name="viewport"> is laid out about 980px wide and
  // shown zoomed out on a phone, which shrinks the banner past reading and
  // tapping: undo the page's zoom for the banner (CSS zoom, through a
  // custom property set with CSSOM, which a CSP allows). Measured when it
  // opens only, so a visitor who pinch-zooms in to read larger still gets
  // larger text.
  function fit() {
    var v = window.visualViewport;
    var coarse = window.matchMedia && window.matchMedia('(pointer: coarse)').matches;
    var k = v && coarse && v.scale < 0.9 ? Math.min(1 / v.scale, 4) : 1;
    root.style.setProperty('--consentry-zoom', String(Math.round(k * 100) / 100));
  }

  function open() {
    if (!isOpen() || !returnTo) returnTo = document.activeElement;
    sync();
    fit();
    overlay.hidden = false;
    // Closing without choosing is only offered once a choice exists.
    closer.hidden = !valid;
    dialog.focus();
  }

  function close() {
    overlay.hidden = true;
    var back = returnTo && returnTo !== document.body && document.contains(returnTo) ? returnTo : manage;
    returnTo = null;
    back.focus();
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
        // Keep the page's order between revived scripts unless it said async.
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
    // A withdrawn category's scripts have already run: only a reload (whose
    // response sweeps their cookies) gets rid of them.
    if (withdrawn.length || (added.length && csp)) {
      location.reload();
      return;
    }
    each(added, revive);
    close();
    document.dispatchEvent(new CustomEvent('consentry:change', { detail: { granted: next.slice() } }));
  }

  function busy(on) {
    dialog.setAttribute('aria-busy', on ? 'true' : 'false');
    each(form.querySelectorAll('button'), function (b) { b.disabled = on; });
  }

  function fallback(choice) {
    var input = document.createElement('input');
    input.type = 'hidden';
    input.name = 'choice';
    input.value = choice;
    form.appendChild(input);
    busy(false);
    HTMLFormElement.prototype.submit.call(form);
  }

  form.addEventListener('click', function (e) {
    var b = e.target.closest ? e.target.closest('button[name="choice"]') : null;
    if (b) submitter = b;
  });

  form.addEventListener('submit', function (e) {
    var b = e.submitter || submitter;
    submitter = null;
    if (!b || b.name !== 'choice' || !window.fetch) return; // plain form post
    e.preventDefault();
    var choice = b.value;
    var picked = [];
    each(form.querySelectorAll('input[name="category"]:checked'), function (box) { picked.push(box.value); });
    var url = form.getAttribute('action');
    var posted = false;
    busy(true);
    fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ choice: choice, categories: choice === 'custom' ? picked : [], method: 'banner' })
    }).then(function (r) {
      if (!r.ok) throw new Error('status ' + r.status);
      posted = true;
      // The proxy decides what is granted (Sec-GPC may narrow a choice):
      // ask it rather than assume.
      return fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
    }).then(function (r) {
      return r.json();
    }).then(function (state) {
      busy(false);
      if (state.valid) apply(state.granted);
      else location.reload();
    }).catch(function () {
      // Not recorded: post the form the plain way. Recorded but unreadable:
      // a reload shows the page as the proxy now serves it.
      if (posted) location.reload();
      else fallback(choice);
    });
  });

  dialog.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' || e.key === 'Esc') {
      // Escape never counts as a choice. Before the first choice it does
      // nothing; afterwards it closes and keeps the existing choice.
      if (valid) {
        e.preventDefault();
        close();
      }
      return;
    }
    // The close link is announced as a button: Space works too.
    if ((e.key === ' ' || e.key === 'Spacebar') && e.target === closer) {
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
    if (e.shiftKey && (at === first || at === dialog)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && at === last) {
      e.preventDefault();
      first.focus();
    }
  });

  // aria-modal: keep keyboard focus inside while open.
  document.addEventListener('focusin', function (e) {
    if (isOpen() && !dialog.contains(e.target)) dialog.focus();
  });

  manage.addEventListener('click', function (e) {
    e.preventDefault();
    open();
  });
  closer.addEventListener('click', function (e) {
    e.preventDefault();
    close();
  });

  root.className += ' consentry-js';
  fit();
  if (isOpen() || location.hash === '#consentry-banner') open();

  window.consentry = {
    open: open,
    close: function () { if (valid && isOpen()) close(); },
    granted: function () { return granted.slice(); }
  };
})();
