/* consentry consent banner: progressive enhancement of plain HTML forms
   and links that already work without JavaScript. Everything lives in this
   IIFE; the only global it creates is window.consentry.

   The page carries at most the short dialog (title, text, Refuse all,
   Accept all, a Customise link); the full one (per-category switches and
   cookie tables) is the page /.consentry/preferences, which visitors
   without JavaScript follow as a link. Here it is fetched and its parts
   are put in place instead, so the page itself stays small.

   Written for the browsers that have fetch, arrow functions and
   Element.closest (every browser since 2017); without them the forms and
   links still work. Served through src/banner.rs's minify_js, which drops
   comments and whitespace and renames this script's own bindings; it
   relies on these rules: every statement ends with a semicolon; no regex
   or template literals; no shorthand properties, spread, labels or
   switch; no local name that is also a global used here. */
(function () {
  'use strict';
  const d = document;
  const $ = id => d.getElementById('consentry-' + id);
  const root = $('root');
  if (!root || window.consentry) return;
  const all = (sel, el) => Array.from((el || d).querySelectorAll(sel));
  const CAT = 'input[name="category"]';
  const split = s => s ? s.split(',') : [];
  let granted = split(root.getAttribute('data-granted'));
  let valid = root.getAttribute('data-valid') === '1';
  /* With a CSP, revived third-party elements would be blocked by the policy
     the page was served with: reload instead so the new one applies. */
  const csp = root.hasAttribute('data-csp');
  let returnTo = null;
  let submitter = null;
  let loading = false;
  const stop = e => e.preventDefault();
  const ok = r => {
    if (!r.ok) throw Error(r.status);
    return r;
  };

  const isOpen = () => {
    const o = $('banner');
    return !!o && !o.hidden;
  };

  /* Content of a closed <details> still has boxes in some engines, so
     visibility is checked explicitly. */
  const shown = el => {
    if (el.checkVisibility) return el.checkVisibility();
    for (let n = el; n && n !== $('dialog'); n = n.parentElement) {
      const p = n.parentElement;
      if (p && p.tagName === 'DETAILS' && !p.open && n.tagName !== 'SUMMARY') return false;
    }
    return el.getClientRects().length > 0;
  };

  const sync = () => all(CAT, root).forEach(box => {
    box.checked = valid && granted.includes(box.value);
  });

  /* A page without <meta name="viewport"> is laid out about 980px wide and
     shown zoomed out on a phone, which shrinks the banner past reading and
     tapping: undo the page's zoom for the banner (CSS zoom, through a
     custom property set with CSSOM, which a CSP allows). Measured when it
     opens only, so a visitor who pinch-zooms in to read larger still gets
     larger text. */
  const fit = () => {
    const v = window.visualViewport;
    const coarse = window.matchMedia && matchMedia('(pointer: coarse)').matches;
    const k = v && coarse && v.scale < 0.9 ? Math.min(1 / v.scale, 4) : 1;
    root.style.setProperty('--cy-zoom', String(Math.round(k * 100) / 100));
  };

  const open = () => {
    if (!isOpen() || !returnTo) returnTo = d.activeElement;
    sync();
    fit();
    $('banner').hidden = false;
    /* Closing without choosing is only offered once a choice exists. */
    if ($('close')) $('close').hidden = !valid;
    $('dialog').focus();
  };

  const close = () => {
    $('banner').hidden = true;
    const back = returnTo && returnTo !== d.body && d.contains(returnTo) ? returnTo : $('manage');
    returnTo = null;
    back.focus();
  };

  /* Fetches the preferences page and hands done a function that takes an
     element out of it by id; if that fails (network, the site's CSP), the
     link is simply followed. */
  const load = (url, done) => {
    if (loading) return;
    loading = true;
    fetch(url, { headers: { Accept: 'text/html' } }).then(ok).then(r => r.text()).then(text => {
      const doc = new DOMParser().parseFromString(text, 'text/html');
      loading = false;
      done(id => d.importNode(doc.getElementById('consentry-' + id), true));
    }).catch(() => {
      location.href = url;
    });
  };

  /* "Manage my cookies": the full dialog (with its close button), fetched
     once; it replaces the short one a first visit had. */
  const manage = () => {
    const o = $('banner');
    if (o && $('close')) return open();
    load($('manage').href, take => {
      const n = take('banner');
      if (o) o.replaceWith(n);
      else $('manage').before(n);
      $('prefs').open = false;
      open();
    });
  };

  /* Customise in the short dialog: its link becomes the fetched panel. */
  const customise = link => load(link.href, take => {
    link.replaceWith(take('prefs'));
    sync();
    $('customise').focus();
  });

  const revive = cat => {
    const sel = '[data-category="' + cat + '"]';
    all('script[type="text/plain"]' + sel).forEach(old => {
      const s = d.createElement('script');
      for (const a of old.attributes) {
        if (!['type', 'data-type', 'data-src'].includes(a.name)) s.setAttribute(a.name, a.value);
      }
      const type = old.getAttribute('data-type');
      const src = old.getAttribute('data-src');
      if (type) s.type = type;
      if (src) {
        /* Keep the page's order between revived scripts unless it said async. */
        s.async = old.hasAttribute('async');
        s.src = src;
      } else {
        s.text = old.text;
      }
      old.replaceWith(s);
    });
    all(sel + '[data-src],' + sel + '[data-srcset],' + sel + '[data-href]').forEach(el => {
      if (el.tagName === 'SCRIPT') return;
      for (const name of ['srcset', 'src', 'href']) {
        const v = el.getAttribute('data-' + name);
        if (v !== null) {
          el.setAttribute(name, v);
          el.removeAttribute('data-' + name);
        }
      }
    });
  };

  const apply = next => {
    const withdrawn = granted.some(c => !next.includes(c));
    const added = next.filter(c => !granted.includes(c));
    granted = next;
    valid = true;
    root.setAttribute('data-granted', next.join(','));
    root.setAttribute('data-valid', '1');
    /* A withdrawn category's scripts have already run: only a reload (whose
       response sweeps their cookies) gets rid of them. */
    if (withdrawn || (added.length && csp)) return location.reload();
    added.forEach(revive);
    close();
    d.dispatchEvent(new CustomEvent('consentry:change', { detail: { granted: next.slice() } }));
  };

  const busy = (form, on) => {
    $('dialog').setAttribute('aria-busy', on);
    all('button', form).forEach(b => {
      b.disabled = on;
    });
  };

  /* Not recorded through fetch: post the form the plain way, with the
     choice the clicked button would have sent. */
  const fallback = (form, choice) => {
    const input = d.createElement('input');
    input.type = 'hidden';
    input.name = 'choice';
    input.value = choice;
    form.append(input);
    busy(form, false);
    form.submit();
  };

  root.addEventListener('click', e => {
    const a = e.target.closest('a,button');
    if (!a) return;
    const id = a.id.slice(10);
    if (id === 'manage') {
      stop(e);
      manage();
    } else if (id === 'customise' && a.tagName === 'A') {
      stop(e);
      customise(a);
    } else if (id === 'close') {
      stop(e);
      close();
    } else if (a.name === 'choice') {
      submitter = a;
    }
  });

  root.addEventListener('submit', e => {
    const form = e.target;
    const b = e.submitter || submitter;
    submitter = null;
    /* No fetch: the plain form post. */
    if (!b || b.name !== 'choice' || !window.fetch) return;
    stop(e);
    const choice = b.value;
    const url = form.getAttribute('action');
    const categories = choice === 'custom' ? all(CAT + ':checked', form).map(box => box.value) : [];
    let posted = false;
    busy(form, true);
    fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ choice: choice, categories: categories, method: 'banner' })
    }).then(ok).then(() => {
      posted = true;
      /* The proxy decides what is granted (Sec-GPC may narrow a choice):
         ask it rather than assume. */
      return fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    }).then(r => r.json()).then(state => {
      busy(form, false);
      if (state.valid) apply(state.granted);
      else location.reload();
    }).catch(() => {
      /* Recorded but unreadable: a reload shows the page as the proxy now
         serves it. */
      if (posted) location.reload();
      else fallback(form, choice);
    });
  });

  root.addEventListener('keydown', e => {
    const dialog = $('dialog');
    if (!isOpen() || !dialog.contains(e.target)) return;
    const key = e.key;
    /* Escape never counts as a choice. Before the first choice it does
       nothing; afterwards it closes and keeps the existing choice. The
       close link is announced as a button: Space works on it too. */
    if (key === 'Escape' || key === 'Esc' || ((key === ' ' || key === 'Spacebar') && e.target === $('close'))) {
      if (valid) {
        stop(e);
        close();
      }
      return;
    }
    if (key !== 'Tab') return;
    const f = all('a[href],button:not([disabled]),input:not([disabled]),summary', dialog).filter(shown);
    if (!f.length) return;
    const first = f[0];
    const last = f[f.length - 1];
    const at = d.activeElement;
    if (e.shiftKey && (at === first || at === dialog)) {
      stop(e);
      last.focus();
    } else if (!e.shiftKey && at === last) {
      stop(e);
      first.focus();
    }
  });

  /* aria-modal: keep keyboard focus inside while open. */
  d.addEventListener('focusin', e => {
    if (isOpen() && !$('dialog').contains(e.target)) $('dialog').focus();
  });

  root.className += ' consentry-js';
  fit();
  if (isOpen()) open();

  window.consentry = {
    open: manage,
    close: () => {
      if (valid && isOpen()) close();
    },
    granted: () => granted.slice()
  };
})();
