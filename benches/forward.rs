//! The header jobs of the forward stage, per request: hop-by-hop stripping,
//! `X-Forwarded-*`/`Via`, and `cookie` joining, on a realistic browser
//! request head. Run with `cargo bench --bench forward`.

#![allow(missing_docs)] // criterion_group! makes undocumented items

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Version;
use http::header::{HeaderMap, HeaderValue};

/// A Chrome-like request head, with the cookies of a site that uses
/// analytics and advertising, as HTTP/2 sends them (one field per cookie).
fn browser_head() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "www.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("connection", "keep-alive, x-debug"),
        ("x-debug", "1"),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("x-forwarded-for", "203.0.113.7"),
        ("cookie", "sessionid=8f14e45fceea167a5a36dedd4bea2543"),
        ("cookie", "csrftoken=Jq3vXjZ0Vw6mBzq2"),
        ("cookie", "_ga=GA1.1.1804215117.1732464000"),
        ("cookie", "_ga_DEMO1234=GS1.1.1732464000.1.0.1732464000.0.0.0"),
        ("cookie", "_fbp=fb.1.1732464000000.1804215117"),
        ("cookie", "consentry=v1.1.1732464000.necessary,analytics"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

fn bench(c: &mut Criterion) {
    let head = browser_head();
    let bytes: u64 = head.iter().map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64).sum();
    let mut group = c.benchmark_group("request_head");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("hop_strip", |b| {
        b.iter_batched_ref(
            || head.clone(),
            |h| consentry::hop::strip(black_box(h)),
            criterion::BatchSize::SmallInput,
        )
    });
    let client = consentry::forwarded::Client {
        ip: "192.0.2.1".parse().unwrap(),
        https: true,
        host: "www.example.com",
        version: Version::HTTP_2,
    };
    group.bench_function("forwarded_set", |b| {
        b.iter_batched_ref(
            || head.clone(),
            |h| consentry::forwarded::set(black_box(h), &client),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("join_cookies", |b| {
        b.iter_batched_ref(
            || head.clone(),
            |h| consentry::forward::join_cookies(black_box(h)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
