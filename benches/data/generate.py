#!/usr/bin/env python3
"""Generates the three benchmark pages (deterministic: fixed seed).

small.html   ~20 KB: a landing page with a handful of scripts
article.html ~150 KB: a news article with 30 scripts (first party,
             trackers, inline gtag/fbq, JSON-LD), images, iframes
listing.html ~2 MB: a long shop listing: products, images, a few scripts
tracked.html 100 KB: the load harness's page (benches/load/run.py), 23 trackers

Run from this directory: python3 generate.py
"""
import random

random.seed(20240611)
WORDS = ("consent cookie privacy tracker analytics article market product price review "
         "shipping delivery quality season winter summer garden kitchen travel city news "
         "report policy update share follow subscribe newsletter offer discount").split()


def words(n):
    return " ".join(random.choice(WORDS) for _ in range(n))


HEAD_TRACKERS = [
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC123"></script>',
    "<script>window.dataLayer = window.dataLayer || [];function gtag(){dataLayer.push(arguments);}"
    "gtag('js', new Date());gtag('config', 'G-ABC123');</script>",
    "<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?"
    "n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;n.push=n;"
    "n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;t.src=v;"
    "s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}(window, document,'script',"
    "'https://connect.facebook.net/en_US/fbevents.js');fbq('init', '123456');fbq('track', 'PageView');</script>",
    '<noscript><img height="1" width="1" style="display:none" '
    'src="https://www.facebook.com/tr?id=123456&ev=PageView&noscript=1"/></noscript>',
    "<script>(function(h,o,t,j,a,r){h.hj=h.hj||function(){(h.hj.q=h.hj.q||[]).push(arguments)};"
    "h._hjSettings={hjid:1234,hjsv:6};a=o.getElementsByTagName('head')[0];r=o.createElement('script');"
    "r.async=1;r.src=t+h._hjSettings.hjid+j+h._hjSettings.hjsv;a.appendChild(r);})"
    "(window,document,'https://static.hotjar.com/c/hotjar-','.js?sv=');</script>",
    '<link rel="preconnect" href="https://www.google-analytics.com">',
    '<link rel="dns-prefetch" href="https://connect.facebook.net">',
]


def head(title, extra_scripts):
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="description" content="{words(20)}">',
        '<link rel="stylesheet" href="/assets/css/main.3f9a2c.css">',
        '<link rel="preload" href="/assets/fonts/inter.woff2" as="font" type="font/woff2" crossorigin>',
        '<link rel="icon" href="/favicon.ico">',
    ]
    parts += HEAD_TRACKERS
    parts += extra_scripts
    parts.append("</head>")
    return "\n".join(parts)


def nav():
    items = "".join(f'<li><a href="/section/{w}">{w.title()}</a></li>' for w in random.sample(WORDS, 8))
    return f'<header class="site-header"><a class="logo" href="/"><img src="/assets/img/logo.svg" alt="Example"></a><nav><ul>{items}</ul></nav></header>'


def footer():
    cols = "".join(
        f'<div class="col"><h4>{words(2)}</h4><ul>'
        + "".join(f'<li><a href="/{w}">{words(2)}</a></li>' for w in random.sample(WORDS, 5))
        + "</ul></div>"
        for _ in range(4)
    )
    return (f'<footer class="site-footer">{cols}<p>&copy; 2024 Example Ltd. {words(12)}</p>'
            '<script src="/assets/js/footer.js" defer></script></footer>')


def small():
    scripts = ['<script src="/assets/js/app.8c1d.js" defer></script>']
    body = [nav(), '<main class="landing">', f"<h1>{words(6)}</h1>"]
    for i in range(22):
        body.append(
            f'<section class="feature"><img src="/assets/img/feature-{i}.webp" alt="{words(3)}" width="320" height="200">'
            f"<h2>{words(4)}</h2><p>{words(60)}</p>"
            f'<a class="button" href="/signup?from=feature{i}">{words(2)}</a></section>'
        )
    body.append('<iframe src="https://www.youtube.com/embed/dQw4w9WgXcQ" width="560" height="315" allowfullscreen></iframe>')
    body.append("</main>")
    body.append(footer())
    return head(words(5), scripts) + "\n<body>" + "\n".join(body) + "</body></html>\n"


def article():
    scripts = [
        '<script src="/assets/js/vendor.91ab.js" defer></script>',
        '<script src="/assets/js/article.77c2.js" defer></script>',
        '<script type="application/ld+json">{"@context":"https://schema.org","@type":"NewsArticle","headline":"'
        + words(8) + '","datePublished":"2024-06-01"}</script>',
        '<script src="https://cdn.cookielaw.org/scripttemplates/otSDKStub.js" data-domain-script="abc"></script>',
        '<script src="https://securepubads.g.doubleclick.net/tag/js/gpt.js" async></script>',
        '<script src="https://static.chartbeat.com/js/chartbeat.js" async></script>',
        '<script src="https://platform.twitter.com/widgets.js" async charset="utf-8"></script>',
        "<script>var googletag = googletag || {cmd: []};googletag.cmd.push(function(){googletag.pubads().enableSingleRequest();googletag.enableServices();});</script>",
    ]
    body = [nav(), '<main><article class="story">', f"<h1>{words(10)}</h1>",
            f'<p class="byline">By {words(2).title()} &middot; <time datetime="2024-06-01">June 1</time></p>']
    n_scripts = len(HEAD_TRACKERS) + len(scripts) - 3  # scripts counted, not hints/noscript
    i = 0
    while sum(len(x) for x in body) < 145_000:
        i += 1
        body.append(f"<p>{words(90)}</p>")
        if i % 6 == 0:
            body.append(
                f'<figure><img src="https://images.example-cdn.com/story/{i}.jpg" '
                f'srcset="https://images.example-cdn.com/story/{i}@2x.jpg 2x" alt="{words(4)}" loading="lazy">'
                f"<figcaption>{words(12)}</figcaption></figure>"
            )
        if i % 9 == 0 and n_scripts < 30:
            n_scripts += 1
            body.append(random.choice([
                f'<div class="ad" id="ad-{i}"><script>googletag.cmd.push(function(){{googletag.display("ad-{i}");}});</script></div>',
                f'<script src="/assets/js/embed-{i}.js" async></script>',
                f'<script>window.__related && window.__related.push({{id:{i},title:"{words(5)}"}});</script>',
                '<blockquote class="twitter-tweet"><p>' + words(20) + '</p></blockquote><script async src="https://platform.twitter.com/widgets.js"></script>',
            ]))
        if i % 25 == 0:
            body.append('<iframe src="https://www.youtube.com/embed/xyz123" width="560" height="315" loading="lazy"></iframe>')
    while n_scripts < 30:
        n_scripts += 1
        body.append(f'<script src="/assets/js/late-{n_scripts}.js" defer></script>')
    body.append("</article></main>")
    body.append(footer())
    return head(words(8), scripts) + "\n<body>" + "\n".join(body) + "</body></html>\n"


def listing():
    scripts = ['<script src="/assets/js/shop.4d2e.js" defer></script>',
               '<script src="https://js.stripe.com/v3/" async></script>']
    body = [nav(), '<main class="listing"><h1>' + words(3) + '</h1><ul class="products">']
    i = 0
    size = 0
    while size < 1_950_000:
        i += 1
        item = (
            f'<li class="product" data-id="{i}"><a href="/product/{i}-{random.choice(WORDS)}">'
            f'<img src="/img/products/{i}.jpg" srcset="/img/products/{i}@2x.jpg 2x" alt="{words(3)}" width="300" height="300" loading="lazy">'
            f'<h3>{words(5)}</h3></a><p class="price"><span class="amount">{random.randint(5, 500)}.99</span> EUR</p>'
            f'<p class="desc">{words(25)}</p>'
            f'<button type="button" class="add-to-cart" data-sku="SKU{i:06d}">Add to cart</button></li>'
        )
        if i % 200 == 0:
            item += f'<li class="promo"><script>window.dataLayer && dataLayer.push({{event:"promo_view",id:{i}}});</script></li>'
        body.append(item)
        size += len(item)
    body.append("</ul></main>")
    body.append(footer())
    return head(words(4), scripts) + "\n<body>" + "\n".join(body) + "</body></html>\n"


# The load harness's 100 KB page: imported from benches/load/run.py (not
# copied), so the criterion figures and the load figures are about the same
# bytes.
def _load_harness():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "load", "run.py")
    spec = importlib.util.spec_from_file_location("load_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_page(size):
    return _load_harness().html_page(size)


def tracked():
    return load_page(100 * 1024)


for name, fn in [("small.html", small), ("article.html", article), ("listing.html", listing), ("tracked.html", tracked)]:
    html = fn()
    with open(name, "w") as f:
        f.write(html)
    print(name, len(html.encode()), "bytes,", html.count("<script"), "scripts")
