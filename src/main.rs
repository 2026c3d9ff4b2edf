//! The `consentry` command: run the proxy, check a config, explain a
//! decision, run the demo, make a development certificate, verify receipts,
//! probe a running instance's health (for container `HEALTHCHECK`s, where
//! a distroless image has no curl).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use consentry::config::Source;
use consentry::explain::ExplainArgs;
use consentry::snapshot::Snapshot;
use consentry::snapshot::Store;
use consentry::{demo, receipts, reload, server, tls};

/// mimalloc, not the system allocator: a proxy allocates and frees small
/// buffers (header maps, body frames, futures) on every request, across
/// threads, and glibc's malloc spent about 5% of the CPU of a 2 KB request
/// in `malloc`/`_int_free`/`malloc_consolidate` (BENCHMARKS.md).
/// Without the `mimalloc` feature the system allocator is used, which heap
/// profilers (heaptrack, valgrind) can see.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONSENTRY_GIT_REV"), ")");

/// A reverse proxy that enforces cookie consent on the wire.
#[derive(Debug, Parser)]
#[command(name = "consentry", version = VERSION, about)]
struct Cli {
    /// Log format (default: `[log] format` of the config, else text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Worker threads of the async runtime (default: one per core). With 1,
    /// everything runs on one thread with tokio's current-thread scheduler,
    /// which skips the cross-thread queues and work stealing one worker
    /// never needs.
    #[arg(long, global = true, env = "CONSENTRY_WORKERS")]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the sites of a config until SIGTERM or SIGINT.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "config/consentry.toml")]
        config: PathBuf,
    },
    /// Check a config; print every error as file:line:column: reason.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "config/consentry.toml")]
        config: PathBuf,
    },
    /// Print what the policy decides for one request, item by item, and why.
    Explain(ExplainArgs),
    /// Proof-of-consent receipts.
    Receipts {
        #[command(subcommand)]
        command: ReceiptsCommand,
    },
    /// Start the sample legacy site and consentry in front of it.
    Demo {
        /// The demo configuration (the built-in copy when the file is absent).
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
    },
    /// Serve the sample legacy site alone (no consent enforcement).
    DemoOrigin {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Also load this third-party script on the home page, as the
        /// browser will reach it (e.g. the `demo-tracker`'s /tracker.js).
        #[arg(long, env = "CONSENTRY_DEMO_TRACKER_URL", value_parser = demo::tracker_url)]
        tracker_url: Option<String>,
    },
    /// Serve the sample third-party tracker alone (a script that sets a
    /// cookie and reports that it ran), for docker-compose.
    DemoTracker {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
    },
    /// GET an admin URL and exit 0 on a 2xx answer, 1 otherwise (no answer,
    /// another status, or none within the timeout): a container health check.
    Healthcheck {
        /// The URL to probe (http only).
        #[arg(long, env = "CONSENTRY_HEALTHCHECK_URL", default_value = "http://127.0.0.1:9901/healthz")]
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Write a self-signed development certificate: OUT/HOST.pem and OUT/HOST-key.pem.
    Cert {
        /// Host name the certificate is for (repeat for more names).
        #[arg(long = "host", default_value = "localhost")]
        hosts: Vec<String>,
        /// Directory to write to.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ReceiptsCommand {
    /// Check a receipts file: every line parses, ids are unique, the hash
    /// chain is unbroken. Exits 1 on a problem.
    Verify {
        /// The receipts file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = match cli.workers {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("consentry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("consentry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { config } => Ok(check(&config)),
        Command::Explain(args) => match args.run() {
            Ok(text) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Receipts { command: ReceiptsCommand::Verify { file } } => {
            let report =
                receipts::verify(&file).with_context(|| format!("cannot read {}", file.display()))?;
            println!("{}: {report}", file.display());
            Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Run { config } => {
            let Some(snapshot) = load_or_report(&config) else { return Ok(ExitCode::FAILURE) };
            init_logging(cli.log_format, snapshot.log.format.as_deref());
            for warning in snapshot.warnings() {
                tracing::warn!(config = %config.display(), "{warning}");
            }
            let mut signals = StopSignals::new()?;
            let running = server::start_with(snapshot).await?;
            let _watcher = watch(&running.store, &config);
            announce(&running);
            signals.recv().await;
            running.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { config } => {
            let snapshot = if config.exists() {
                let Some(snapshot) = load_or_report(&config) else { return Ok(ExitCode::FAILURE) };
                snapshot
            } else {
                let source = Source { path: config.clone(), text: demo::DEMO_CONFIG.to_string() };
                Snapshot::compile(&source, 1).map_err(|e| anyhow::anyhow!("built-in demo config: {e:?}"))?
            };
            init_logging(cli.log_format, snapshot.log.format.as_deref());
            let mut signals = StopSignals::new()?;
            let Some(site) = snapshot.router.sites().first() else { bail!("the demo config has no site") };
            let origin: SocketAddr = site
                .origin
                .authority
                .as_str()
                .parse()
                .with_context(|| format!("the demo origin {} must be an IP:port", site.origin.uri))?;
            let (origin, _origin_task) = demo::spawn_origin(origin)
                .await
                .with_context(|| format!("cannot start the demo origin on {origin}"))?;
            let running = server::start_with(snapshot).await?;
            // Editing config/demo.toml reloads the running demo.
            let _watcher = config.exists().then(|| watch(&running.store, &config));
            let proxy = running.http_addr.context("the demo config needs [listen] http")?;
            let port = proxy.port();
            println!();
            println!("  consentry demo");
            println!("  open        http://localhost:{port}/          (the site, through consentry)");
            println!("  compare     http://{origin}/          (the same site, unprotected)");
            println!("  inspect     http://localhost:{port}/echo      (what the origin received)");
            println!("  stop        Ctrl-C");
            println!();
            signals.recv().await;
            running.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoOrigin { listen, tracker_url } => {
            init_logging(cli.log_format, None);
            let mut signals = StopSignals::new()?;
            let (addr, _task) = demo::spawn_origin_with(listen, tracker_url.clone())
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(%addr, tracker = tracker_url.as_deref().unwrap_or("none"), "demo origin listening");
            signals.recv().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoTracker { listen } => {
            init_logging(cli.log_format, None);
            let mut signals = StopSignals::new()?;
            let (addr, _task) =
                demo::spawn_tracker(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(%addr, "demo tracker listening");
            signals.recv().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { url, timeout } => match healthcheck(&url, timeout).await {
            Ok(status) => {
                println!("{url}: {status}");
                Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Err(e) => {
                eprintln!("{url}: {e:#}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Cert { hosts, out } => {
            let (cert, key) = tls::write_self_signed(&hosts, &out)
                .with_context(|| format!("cannot write a certificate to {}", out.display()))?;
            println!("wrote {} and {} (self-signed, for development only)", cert.display(), key.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `consentry healthcheck`: one HTTP/1.1 GET over a fresh connection,
/// bounded by `timeout` as a whole (connect, send, response head).
async fn healthcheck(url: &str, timeout: Duration) -> anyhow::Result<http::StatusCode> {
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;

    let uri: http::Uri = url.parse().with_context(|| format!("not a URL: {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs can be probed");
    }
    let authority = uri.authority().context("the URL has no host")?.clone();
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str).to_string();
    let probe = async move {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.context("cannot connect")?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("handshake")?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .header(http::header::USER_AGENT, concat!("consentry-healthcheck/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<bytes::Bytes>::new())?;
        let response = sender.send_request(request).await.context("no answer")?;
        anyhow::Ok(response.status())
    };
    tokio::time::timeout(timeout, probe).await.map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
}

/// Logs where each site can be opened (its first exact host on the bound
/// port), so that `docker compose up` prints a URL to click.
fn announce(running: &server::Running) {
    let snapshot = running.store.load();
    for site in snapshot.router.sites() {
        let Some(host) = site.hosts.iter().find(|h| !h.contains('*')) else { continue };
        let urls = [("http", running.http_addr), ("https", running.https_addr)];
        for (scheme, addr) in urls.iter().filter_map(|(s, a)| a.map(|a| (s, a))) {
            let url = format!("{scheme}://{host}:{}/", addr.port());
            tracing::info!(site = %site.name, %url, "serving");
        }
    }
}

/// Starts hot reload (file changes and SIGHUP). Without it the proxy still
/// serves, on the config it started with: say so, loudly.
fn watch(store: &std::sync::Arc<Store>, config: &Path) -> Option<reload::WatcherHandle> {
    match reload::spawn_watcher(store.clone(), config.to_path_buf()) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "hot reload is off: config changes need a restart");
            None
        }
    }
}

/// `consentry check`.
fn check(config: &Path) -> ExitCode {
    match load_or_report(config) {
        Some(snapshot) => {
            for warning in snapshot.warnings() {
                eprintln!("{}: warning: {warning}", config.display());
            }
            println!(
                "{}: ok ({} site(s), {} polic{})",
                config.display(),
                snapshot.router.sites().len(),
                snapshot.policies.len(),
                if snapshot.policies.len() == 1 { "y" } else { "ies" }
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// Loads a config, printing every error (file:line:column: reason).
fn load_or_report(config: &Path) -> Option<Snapshot> {
    match Snapshot::load(config, 1) {
        Ok(snapshot) => Some(snapshot),
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!("{}: {} error(s)", config.display(), errors.len());
            None
        }
    }
}

/// Sets up `tracing`: the flag wins over the config's `[log] format`.
fn init_logging(flag: Option<LogFormat>, config_format: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let format =
        flag.unwrap_or(if config_format == Some("json") { LogFormat::Json } else { LogFormat::Text });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
}

/// SIGTERM and SIGINT, listened for from the moment this is made: made
/// before the listeners bind, so a signal that arrives as soon as the
/// address is logged is never the default (fatal) action.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Resolves on the first SIGTERM or SIGINT.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
