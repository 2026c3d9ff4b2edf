# syntax=docker/dockerfile:1
#
# The consentry image: the release binary on distroless (glibc, no shell,
# no package manager), running as an unprivileged user.
#
#   docker build --build-arg CONSENTRY_GIT_REV=$(git rev-parse --short=12 HEAD) -t consentry .
#   docker run --rm -p 8080:8080 -v "$PWD/config:/etc/consentry:ro" consentry \
#       run --config /etc/consentry/consentry.toml
#
# Paths (mount them; all but /var/lib/consentry can be read-only):
#   /etc/consentry       the configuration, watched and hot-reloaded; mount the
#                        directory, not a single file (editors and Kubernetes
#                        replace files, which a file bind mount never sees)
#   /etc/ssl/consentry   certificates and keys (`cert = "/etc/ssl/consentry/..."`)
#   /var/lib/consentry   what consentry writes: receipts, an audit file
# Ports: 8080 http, 8443 https, 9901 admin (/healthz, /readyz, /metrics, ...).
# SIGTERM stops accepting and drains in-flight requests for `shutdown_grace`
# (30s by default): give `docker stop --time` / `stop_grace_period` more.
# The health check probes the admin API, so the config needs
# `[admin] listen` on port 9901 (any address; 127.0.0.1 will do).

# Must be Debian 12 (bookworm), as the runtime image is: the binary links
# against the builder's glibc.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# 1. Dependencies, in a layer of their own that is rebuilt only when
#    Cargo.toml or Cargo.lock change: build the real manifest with stub
#    sources. (Cargo reads every declared bench target, hence benches/;
#    vendor/ holds the patched h2 and hyper, see vendor/*/README.consentry.md.)
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY vendor ./vendor
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2. consentry itself. The context has no .git (see .dockerignore): the
#    revision `consentry --version` shows comes from this build argument.
COPY build.rs ./
COPY src ./src
COPY assets ./assets
COPY config ./config
ARG CONSENTRY_GIT_REV=
# `touch`: the stubs above are newer than the real files' copied mtimes.
RUN touch build.rs src/main.rs src/lib.rs \
    && CONSENTRY_GIT_REV="${CONSENTRY_GIT_REV}" cargo build --release --locked --bin consentry \
    && install -D -s -m 0755 target/release/consentry /out/consentry \
    && mkdir -p /out/data \
    && /out/consentry --version \
    && /out/consentry check --config config/consentry.toml

FROM gcr.io/distroless/cc-debian12:nonroot
ARG CONSENTRY_GIT_REV=
LABEL org.opencontainers.image.title="consentry" \
      org.opencontainers.image.description="A reverse proxy that enforces cookie consent on the wire" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${CONSENTRY_GIT_REV}"

COPY --from=builder /out/consentry /usr/local/bin/consentry
COPY config /etc/consentry
# A directory COPY creates gets the --chown owner: the unprivileged user
# must be able to create receipts here.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/consentry
WORKDIR /var/lib/consentry
VOLUME ["/etc/consentry", "/etc/ssl/consentry", "/var/lib/consentry"]

# distroless's `nonroot`, by number so that Kubernetes' runAsNonRoot can
# verify it.
USER 65532:65532
EXPOSE 8080 8443 9901
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/consentry", "healthcheck", "--url", "http://127.0.0.1:9901/healthz", "--timeout", "3s"]

ENTRYPOINT ["/usr/local/bin/consentry"]
CMD ["run", "--config", "/etc/consentry/consentry.toml"]
