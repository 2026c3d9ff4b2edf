//! Packaging, checked without a Docker engine or a cluster: `Dockerfile`,
//! `.dockerignore`, `docker-compose.yml` and `deploy/kubernetes/` agree with
//! the repository, with the configurations they use and with the binary.
//!
//! - every file they name exists (COPY sources, bind mounts, configs) and
//!   the build context lets every COPY source through;
//! - every config they run passes `consentry check` (`Snapshot::load`);
//! - ports agree: published ports and probes ↔ the config's listen and
//!   admin addresses, the origin service ↔ the site's origin URL, the
//!   tracker's address ↔ the URL the demo page loads it from;
//! - every subcommand and flag they use exists (the built binary's `--help`);
//! - shutdown budgets hold: the orchestrator waits longer than
//!   `shutdown_grace` before killing;
//! - `consentry healthcheck`, which the image's HEALTHCHECK runs, against
//!   real sockets; `--version` names the commit.
//!
//! Not checked here: that the image builds and runs (that needs a Docker
//! engine) or that a cluster accepts the manifests. By hand, where the tools
//! are installed: `hadolint Dockerfile`, `docker compose config`,
//! `kubernetes-validate --strict deploy/kubernetes/*.yaml`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use consentry::snapshot::Snapshot;
use serde::Deserialize as _;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn consentry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_consentry")).args(args).output().unwrap()
}

/// Checks that `args` (a subcommand and its flags, as a container runs
/// them) name a subcommand of the binary and only flags it has.
fn assert_cli(args: &[String], context: &str) {
    let subcommand = args.first().unwrap_or_else(|| panic!("{context}: no subcommand"));
    let output = consentry(&[subcommand, "--help"]);
    assert!(
        output.status.success(),
        "{context}: `consentry {subcommand}` does not exist: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let help = String::from_utf8_lossy(&output.stdout);
    let flags: BTreeSet<&str> =
        help.split_whitespace().map(|w| w.trim_end_matches(',')).filter(|w| w.starts_with("--")).collect();
    for arg in &args[1..] {
        if let Some(flag) = arg.strip_prefix("--") {
            let flag = format!("--{}", flag.split('=').next().unwrap());
            assert!(flags.contains(flag.as_str()), "{context}: `consentry {subcommand}` has no {flag}");
        }
    }
}

/// The value after `--flag` in an argument list.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn load(path: &Path) -> Snapshot {
    Snapshot::load(path, 1).unwrap_or_else(|errors| {
        panic!(
            "{} fails `consentry check`:\n{}",
            path.display(),
            errors.iter().map(|e| format!("{e}\n")).collect::<String>()
        )
    })
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port_or_known_default().unwrap()
}

// ---------------------------------------------------------------------------
// Dockerfile

/// One instruction, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

/// A build stage: its base image, its name and its instructions.
#[derive(Debug, Clone, Default)]
struct Stage {
    base: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &Instruction> {
        self.instructions.iter().filter(move |i| i.keyword == keyword)
    }

    fn one(&self, keyword: &str) -> &Instruction {
        let found: Vec<_> = self.all(keyword).collect();
        assert_eq!(found.len(), 1, "expected one {keyword} in stage {:?}", self.name);
        found[0]
    }
}

struct Dockerfile {
    stages: Vec<Stage>,
}

impl Dockerfile {
    /// Parses the subset of Dockerfile syntax a Dockerfile needs: comments,
    /// `\` continuations, global `ARG`s substituted into `FROM`.
    fn parse(text: &str) -> Dockerfile {
        let mut instructions = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with('#') || (line.is_empty() && pending.is_none()) {
                continue;
            }
            let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
            match line.strip_suffix('\\') {
                Some(part) => {
                    joined.push_str(part);
                    joined.push(' ');
                    pending = Some((start, joined));
                }
                None => {
                    joined.push_str(line);
                    let (keyword, args) = joined.split_once(char::is_whitespace).unwrap_or((&joined, ""));
                    instructions.push(Instruction {
                        line: start,
                        keyword: keyword.to_ascii_uppercase(),
                        args: args.trim().to_string(),
                    });
                }
            }
        }
        assert!(pending.is_none(), "the Dockerfile ends in a continuation");
        let mut global_args: BTreeMap<String, String> = BTreeMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        for instruction in instructions {
            if instruction.keyword == "FROM" {
                let mut words = instruction.args.split_whitespace();
                let mut base = words.next().unwrap().to_string();
                for (name, value) in &global_args {
                    base = base.replace(&format!("${{{name}}}"), value);
                }
                let name = match (words.next(), words.next()) {
                    (Some(as_), Some(name)) if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    _ => None,
                };
                stages.push(Stage { base, name, instructions: Vec::new() });
            } else if let Some(stage) = stages.last_mut() {
                stage.instructions.push(instruction);
            } else {
                assert_eq!(instruction.keyword, "ARG", "only ARG may come before FROM");
                let (name, value) = instruction.args.split_once('=').unwrap_or((&instruction.args, ""));
                global_args.insert(name.to_string(), value.to_string());
            }
        }
        Dockerfile { stages }
    }

    fn read() -> Dockerfile {
        Dockerfile::parse(&std::fs::read_to_string(root().join("Dockerfile")).unwrap())
    }

    fn builder(&self) -> &Stage {
        &self.stages[0]
    }

    fn runtime(&self) -> &Stage {
        self.stages.last().unwrap()
    }

    fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no stage {name}"))
    }
}

/// A `COPY`: its flags, sources and destination.
#[derive(Debug)]
struct Copy {
    flags: BTreeMap<String, String>,
    sources: Vec<String>,
    dest: String,
}

impl Copy {
    fn parse(instruction: &Instruction) -> Copy {
        let mut flags = BTreeMap::new();
        let mut paths = Vec::new();
        for word in instruction.args.split_whitespace() {
            match word.strip_prefix("--") {
                Some(f) => {
                    let (k, v) = f.split_once('=').unwrap_or((f, ""));
                    flags.insert(k.to_string(), v.to_string());
                }
                None => paths.push(word.to_string()),
            }
        }
        assert!(
            !instruction.args.starts_with('['),
            "line {}: JSON-form COPY is not expected",
            instruction.line
        );
        let dest = paths.pop().unwrap();
        Copy { flags, sources: paths, dest }
    }
}

/// An exec-form (JSON array) argument list.
fn exec_form(text: &str, context: &str) -> Vec<String> {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{context}: not an exec-form JSON array ({e}): {text}"))
}

/// The host file a path in the runtime image comes from, through the
/// runtime stage's `COPY`s from the build context.
fn image_path_to_host(docker: &Dockerfile, container_path: &str) -> Option<PathBuf> {
    docker.runtime().all("COPY").map(Copy::parse).filter(|c| !c.flags.contains_key("from")).find_map(|c| {
        let dest = c.dest.trim_end_matches('/');
        let rest = container_path.strip_prefix(dest)?.trim_start_matches('/');
        Some(root().join(&c.sources[0]).join(rest))
    })
}

/// `.dockerignore` rules as Docker applies them: each pattern (Go
/// `filepath.Match` syntax, `**` allowed) is matched against the path and
/// each of its parent directories, and the last rule that matches decides.
struct DockerIgnore {
    rules: Vec<(globset::GlobMatcher, bool)>,
}

impl DockerIgnore {
    fn read() -> DockerIgnore {
        let text = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (pattern, include) = match line.strip_prefix('!') {
                    Some(p) => (p, true),
                    None => (line, false),
                };
                let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
                let glob = globset::GlobBuilder::new(pattern).literal_separator(true).build().unwrap();
                (glob.compile_matcher(), include)
            })
            .collect();
        DockerIgnore { rules }
    }

    /// Whether the build context leaves out `path` (relative to the root).
    fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (glob, include) in &self.rules {
            let matches = (1..=parts.len()).any(|n| glob.is_match(parts[..n].join("/")));
            if matches {
                excluded = !include;
            }
        }
        excluded
    }
}

fn files_under(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files_under(&entry.unwrap().path()));
    }
    out
}

#[test]
fn dockerignore_follows_docker_semantics() {
    // The matcher itself: an allowlist, re-included directories, last rule wins.
    let ignore = DockerIgnore {
        rules: ["*", "!src", "src/secret.rs", "!keep/**/*.toml"]
            .iter()
            .map(|p| {
                let (p, include) = p.strip_prefix('!').map_or((*p, false), |p| (p, true));
                (
                    globset::GlobBuilder::new(p).literal_separator(true).build().unwrap().compile_matcher(),
                    include,
                )
            })
            .collect(),
    };
    assert!(ignore.excludes("target/debug/consentry"));
    assert!(!ignore.excludes("src/main.rs"));
    assert!(!ignore.excludes("src/consent/mod.rs"));
    assert!(ignore.excludes("src/secret.rs"));
    assert!(!ignore.excludes("keep/a/b.toml"));
    assert!(ignore.excludes("keep/a/b.pem"));
}

#[test]
fn the_build_context_has_every_copy_source_and_nothing_private() {
    let docker = Dockerfile::read();
    let ignore = DockerIgnore::read();
    let mut checked = 0;
    for stage in &docker.stages {
        for instruction in stage.all("COPY").chain(stage.all("ADD")) {
            let copy = Copy::parse(instruction);
            if copy.flags.contains_key("from") {
                continue;
            }
            for source in &copy.sources {
                let path = root().join(source);
                assert!(
                    path.exists(),
                    "Dockerfile:{}: COPY source {source} does not exist",
                    instruction.line
                );
                for file in files_under(&path) {
                    let relative = file.strip_prefix(root()).unwrap().to_str().unwrap().to_string();
                    // Written by `consentry demo` next to its config: runtime
                    // output, not a source (and left out on purpose, below).
                    if relative.starts_with("config/demo-receipts.jsonl") {
                        continue;
                    }
                    assert!(
                        !ignore.excludes(&relative),
                        "Dockerfile:{}: .dockerignore leaves out {relative}",
                        instruction.line
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} files checked");
    // What must never reach the builder: gigabytes of build output, the
    // repository, keys. (The revision comes in as a build argument.)
    for private in [
        ".git/HEAD",
        "target/debug/consentry",
        "certs/localhost-key.pem",
        "receipts.jsonl",
        "config/demo-receipts.jsonl",
        "config/demo-receipts.jsonl.20261206T120000Z",
    ] {
        assert!(ignore.excludes(private), ".dockerignore lets {private} through");
    }
    // The build still compiles the crate's whole manifest: every target
    // Cargo.toml declares must be in the context.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    for bench in manifest["bench"].as_array().unwrap() {
        let name = bench["name"].as_str().unwrap();
        assert!(!ignore.excludes(&format!("benches/{name}.rs")), "bench {name} is left out of the context");
    }
}

#[test]
fn the_dockerfile_builds_on_the_runtime_s_debian_and_a_new_enough_rust() {
    let docker = Dockerfile::read();
    assert!(docker.stages.len() >= 2, "multi-stage build expected");
    let builder = docker.builder();
    let runtime = docker.runtime();
    // The binary links against the builder's glibc: same Debian release.
    let release = |image: &str| -> u32 {
        for (codename, number) in [("bullseye", 11), ("bookworm", 12), ("trixie", 13)] {
            if image.contains(codename) || image.contains(&format!("debian{number}")) {
                return number;
            }
        }
        panic!("cannot tell the Debian release of {image}");
    };
    assert_eq!(release(&builder.base), release(&runtime.base), "{} vs {}", builder.base, runtime.base);
    // rust:1.95-bookworm >= the crate's rust-version.
    let version = |text: &str| -> (u32, u32) {
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let tag = builder.base.strip_prefix("rust:").expect("an official rust image");
    let image_rust = version(tag.split('-').next().unwrap());
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let msrv = version(manifest["package"]["rust-version"].as_str().unwrap());
    assert!(image_rust >= msrv, "rust {image_rust:?} in the image < rust-version {msrv:?}");

    // Dependencies are built in a layer before the sources are copied.
    let position = |keyword: &str, needle: &str| {
        builder
            .instructions
            .iter()
            .position(|i| i.keyword == keyword && i.args.contains(needle))
            .unwrap_or_else(|| panic!("no {keyword} with {needle:?} in the builder"))
    };
    assert!(position("RUN", "cargo build") < position("COPY", "src ./src"), "no dependency layer");
    for run in builder.all("RUN").filter(|r| r.args.contains("cargo build")) {
        assert!(run.args.contains("--locked"), "Dockerfile:{}: build with --locked", run.line);
    }
    // The revision is injectable: the context has no .git.
    let last_build = builder.all("RUN").filter(|r| r.args.contains("cargo build")).last().unwrap();
    assert!(last_build.args.contains("--release"));
    assert!(builder.all("ARG").any(|a| a.args.starts_with("CONSENTRY_GIT_REV")));
    assert!(last_build.args.contains("CONSENTRY_GIT_REV"));

    // Every COPY --from names an earlier stage and a path that stage makes.
    for copy in runtime.all("COPY").map(Copy::parse) {
        if let Some(from) = copy.flags.get("from") {
            let stage = docker.stage(from);
            for source in &copy.sources {
                assert!(
                    stage.all("RUN").any(|r| r.args.contains(source.as_str())),
                    "COPY --from={from} {source}: no RUN in {from} makes it"
                );
            }
        }
    }
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check_that_matches_its_config() {
    let docker = Dockerfile::read();
    let runtime = docker.runtime();

    // Non-root, by number (Kubernetes' runAsNonRoot cannot check a name).
    let user = &runtime.one("USER").args;
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric USER");
    assert_ne!(uid, 0, "the image runs as root");
    assert_eq!(runtime.one("STOPSIGNAL").args, "SIGTERM");

    // The binary is where ENTRYPOINT and HEALTHCHECK look for it.
    let entrypoint = exec_form(&runtime.one("ENTRYPOINT").args, "ENTRYPOINT");
    let binary = &entrypoint[0];
    assert!(runtime.all("COPY").map(Copy::parse).any(|c| &c.dest == binary), "nothing is copied to {binary}");
    let cmd = exec_form(&runtime.one("CMD").args, "CMD");
    assert_cli(&cmd, "CMD");

    // The default CMD's config is in the image and passes check.
    let config_in_image = flag(&cmd, "--config").expect("CMD names its --config");
    let config =
        image_path_to_host(&docker, config_in_image).expect("the CMD's config is not copied into the image");
    let snapshot = load(&config);

    // HEALTHCHECK: the healthcheck subcommand against the config's admin port.
    let healthcheck = &runtime.one("HEALTHCHECK").args;
    let test = &healthcheck[healthcheck.find("CMD").expect("HEALTHCHECK CMD") + 3..];
    let test = exec_form(test.trim(), "HEALTHCHECK");
    assert_eq!(&test[0], binary);
    assert_cli(&test[1..], "HEALTHCHECK");
    assert_eq!(test[1], "healthcheck");
    let url = flag(&test, "--url").expect("HEALTHCHECK names its --url");
    let admin =
        snapshot.listen.admin.expect("the image's default config needs [admin] listen for HEALTHCHECK");
    assert_eq!(port_of(url), admin.port(), "HEALTHCHECK {url} vs admin {admin}");
    assert!(url.contains("/healthz"));
    // Inside the container the check connects to loopback.
    assert!(
        admin.ip().is_loopback() || admin.ip().is_unspecified(),
        "admin on {admin} is not reachable at {url}"
    );
    // The check's own timeout fits in Docker's.
    let docker_timeout = healthcheck
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--timeout="))
        .map_or(Duration::from_secs(30), |t| humantime::parse_duration(t).unwrap());
    let own_timeout =
        flag(&test, "--timeout").map_or(Duration::from_secs(3), |t| humantime::parse_duration(t).unwrap());
    assert!(own_timeout < docker_timeout);

    // Every port of the default config is exposed.
    let exposed: BTreeSet<u16> = runtime
        .all("EXPOSE")
        .flat_map(|e| e.args.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    for addr in [snapshot.listen.http, snapshot.listen.https, snapshot.listen.admin].into_iter().flatten() {
        assert!(exposed.contains(&addr.port()), "port {} is not exposed", addr.port());
    }

    // Config, certificates and data are volumes; data is writable by USER.
    let volumes = exec_form(&runtime.one("VOLUME").args, "VOLUME");
    let config_dir = Path::new(config_in_image).parent().unwrap().to_str().unwrap();
    for needed in [config_dir, "/etc/ssl/consentry", "/var/lib/consentry"] {
        assert!(volumes.iter().any(|v| v == needed), "VOLUME lacks {needed}");
    }
    let data = runtime
        .all("COPY")
        .map(Copy::parse)
        .find(|c| c.dest.trim_end_matches('/') == "/var/lib/consentry")
        .expect("the data directory is made by a COPY");
    let owner = data.flags.get("chown").expect("--chown on the data directory");
    assert_eq!(owner.split(':').next().unwrap(), uid.to_string(), "the data directory is not the user's");
}

// ---------------------------------------------------------------------------
// docker-compose.yml

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(value: &Value, context: &str) -> Vec<String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{context}: not a string: {other:?}"),
            })
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => panic!("{context}: expected a list, got {other:?}"),
    }
}

/// A published port: `[IP:]HOST:CONTAINER[/PROTO]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    host_ip: Option<String>,
    host: u16,
    container: u16,
}

fn published(text: &str) -> Published {
    let text = text.split('/').next().unwrap();
    let parts: Vec<&str> = text.rsplitn(3, ':').collect();
    match parts.as_slice() {
        [container, host, ip] => Published {
            host_ip: Some((*ip).to_string()),
            host: host.parse().unwrap(),
            container: container.parse().unwrap(),
        },
        [container, host] => {
            Published { host_ip: None, host: host.parse().unwrap(), container: container.parse().unwrap() }
        }
        _ => panic!("port {text:?}: publish as HOST:CONTAINER so the documented URLs hold"),
    }
}

struct Compose {
    doc: Value,
}

impl Compose {
    fn read() -> Compose {
        Compose { doc: yaml(&root().join("docker-compose.yml")) }
    }

    fn services(&self) -> &serde_yaml::Mapping {
        self.doc["services"].as_mapping().expect("services")
    }

    fn service(&self, name: &str) -> &Value {
        self.doc["services"].get(name).unwrap_or_else(|| panic!("no service {name}"))
    }

    fn command(&self, name: &str) -> Vec<String> {
        strings(&self.service(name)["command"], name)
    }

    fn ports(&self, name: &str) -> Vec<Published> {
        self.service(name)
            .get("ports")
            .map(|p| strings(p, name).iter().map(|s| published(s)).collect())
            .unwrap_or_default()
    }

    /// `(host side, container path, read_only)` of each volume.
    fn volumes(&self, name: &str) -> Vec<(String, String, bool)> {
        let Some(volumes) = self.service(name).get("volumes") else { return Vec::new() };
        strings(volumes, name)
            .iter()
            .map(|v| {
                let parts: Vec<&str> = v.split(':').collect();
                assert!(parts.len() >= 2, "{name}: volume {v:?} needs SOURCE:TARGET");
                (parts[0].to_string(), parts[1].to_string(), parts.get(2) == Some(&"ro"))
            })
            .collect()
    }

    /// The host file behind a path in a service's container.
    fn host_path(&self, name: &str, container_path: &str) -> Option<PathBuf> {
        self.volumes(name).into_iter().find_map(|(host, target, _)| {
            let rest = container_path.strip_prefix(target.trim_end_matches('/'))?;
            host.starts_with('.').then(|| root().join(&host).join(rest.trim_start_matches('/')))
        })
    }

    /// The service's health check command (after `CMD`), its own or the image's.
    fn healthcheck(&self, name: &str, docker: &Dockerfile) -> Vec<String> {
        match self.service(name).get("healthcheck") {
            Some(check) => {
                let test = strings(&check["test"], name);
                assert_eq!(test[0], "CMD", "{name}: exec-form health check expected");
                test[1..].to_vec()
            }
            None => {
                let healthcheck = &docker.runtime().one("HEALTHCHECK").args;
                exec_form(healthcheck[healthcheck.find("CMD").unwrap() + 3..].trim(), "HEALTHCHECK")
            }
        }
    }
}

/// The config the compose `consentry` service runs, as a host path.
fn compose_config(compose: &Compose) -> PathBuf {
    let command = compose.command("consentry");
    let in_container = flag(&command, "--config").expect("consentry runs with --config");
    compose.host_path("consentry", in_container).expect("the --config path is not under a bind mount")
}

#[test]
fn compose_services_use_the_image_s_binary_and_real_subcommands() {
    let compose = Compose::read();
    let docker = Dockerfile::read();
    let binary = &exec_form(&docker.runtime().one("ENTRYPOINT").args, "ENTRYPOINT")[0];
    let names: Vec<&str> = compose.services().keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, ["consentry", "demo-origin", "demo-tracker"]);
    let mut images = BTreeSet::new();
    for name in &names {
        let service = compose.service(name);
        // One image, built from this repository's Dockerfile.
        let build = &service["build"];
        let context = build.get("context").and_then(Value::as_str).or_else(|| build.as_str()).unwrap();
        assert!(root().join(context).join("Dockerfile").is_file(), "{name}: no Dockerfile in {context}");
        images.insert(service["image"].as_str().unwrap().to_string());
        assert_cli(&compose.command(name), &format!("service {name}"));
        let check = compose.healthcheck(name, &docker);
        assert_eq!(&check[0], binary, "{name}: the health check runs another binary");
        assert_cli(&check[1..], &format!("service {name} healthcheck"));
        if let Some(depends) = service.get("depends_on").and_then(Value::as_mapping) {
            for (other, how) in depends {
                let other = other.as_str().unwrap();
                assert!(names.contains(&other), "{name} depends on unknown {other}");
                if how["condition"] == "service_healthy" {
                    assert!(!compose.healthcheck(other, &docker).is_empty());
                }
            }
        }
    }
    assert_eq!(images.len(), 1, "{images:?}");
}

#[test]
fn compose_mounts_exist_and_the_mounted_config_passes_check() {
    let compose = Compose::read();
    let declared: BTreeSet<String> = compose.doc["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    for name in compose.services().keys().map(|k| k.as_str().unwrap()) {
        for (host, _, _) in compose.volumes(name) {
            if host.starts_with('.') || host.starts_with('/') {
                assert!(root().join(&host).exists(), "{name}: mounts {host}, which does not exist");
            } else {
                assert!(declared.contains(&host), "{name}: named volume {host} is not declared");
            }
        }
    }
    // The config directory, not a file, is mounted: editors and the reload
    // watcher replace files, which a single-file bind mount would not see.
    let config = compose_config(&compose);
    let mount = compose.volumes("consentry").into_iter().find(|(host, _, _)| host.starts_with('.')).unwrap();
    assert!(root().join(&mount.0).is_dir(), "mount the config directory, not a file");
    let snapshot = load(&config);
    // What consentry writes goes to a writable named volume.
    if let Some(receipts) = &snapshot.receipts.path {
        let receipts = receipts.to_str().unwrap();
        let volume = compose
            .volumes("consentry")
            .into_iter()
            .find(|(_, target, _)| receipts.starts_with(target.as_str()))
            .unwrap_or_else(|| panic!("receipts {receipts} are not on a volume"));
        assert!(!volume.2 && declared.contains(&volume.0), "receipts go to a writable named volume");
    }
}

#[test]
fn compose_ports_agree_with_the_config_and_the_demo_services() {
    let compose = Compose::read();
    let docker = Dockerfile::read();
    let snapshot = load(&compose_config(&compose));
    let http = snapshot.listen.http.expect("[listen] http");
    let admin = snapshot.listen.admin.expect("[admin] listen");
    // Docker forwards published ports to the container's interface, not
    // to its loopback.
    for addr in [http, admin] {
        assert!(addr.ip().is_unspecified(), "{addr}: listen on 0.0.0.0 in a container");
    }
    let ports = compose.ports("consentry");
    let container_ports: BTreeSet<u16> = ports.iter().map(|p| p.container).collect();
    assert_eq!(container_ports, BTreeSet::from([http.port(), admin.port()]));
    // The URL consentry logs (its bound port) is the one to open.
    let proxy = ports.iter().find(|p| p.container == http.port()).unwrap();
    assert_eq!(proxy.host, http.port(), "publish the proxy on the same port it logs");
    // The admin API is for this machine only.
    let admin_published = ports.iter().find(|p| p.container == admin.port()).unwrap();
    assert_eq!(admin_published.host_ip.as_deref(), Some("127.0.0.1"));
    // The image's health check probes the admin port.
    let check = compose.healthcheck("consentry", &docker);
    assert_eq!(port_of(flag(&check, "--url").unwrap()), admin.port());

    // The site's origin is the demo-origin service on its --listen port.
    let origin_cmd = compose.command("demo-origin");
    let origin_listen: SocketAddr = flag(&origin_cmd, "--listen").unwrap().parse().unwrap();
    assert!(origin_listen.ip().is_unspecified());
    let site = &snapshot.router.sites()[0];
    let origin_uri = &site.origin.uri;
    assert_eq!(origin_uri.host(), Some("demo-origin"), "the origin is the service name");
    assert_eq!(origin_uri.port_u16().unwrap_or(80), origin_listen.port());
    assert_eq!(compose.ports("demo-origin")[0].container, origin_listen.port());
    let origin_check = compose.healthcheck("demo-origin", &docker);
    assert_eq!(port_of(flag(&origin_check, "--url").unwrap()), origin_listen.port());

    // The page loads the tracker from the tracker service's published port.
    let tracker_cmd = compose.command("demo-tracker");
    let tracker_listen: SocketAddr = flag(&tracker_cmd, "--listen").unwrap().parse().unwrap();
    assert!(tracker_listen.ip().is_unspecified());
    let tracker_published = compose.ports("demo-tracker");
    assert_eq!(tracker_published[0].container, tracker_listen.port());
    let tracker_url = flag(&origin_cmd, "--tracker-url").expect("demo-origin loads the tracker");
    consentry::demo::tracker_url(tracker_url).unwrap();
    assert_eq!(port_of(tracker_url), tracker_published[0].host);
    let tracker_check = compose.healthcheck("demo-tracker", &docker);
    assert_eq!(port_of(flag(&tracker_check, "--url").unwrap()), tracker_listen.port());
}

#[test]
fn the_compose_policy_blocks_the_tracker_until_analytics_is_granted() {
    use consentry::category::CategorySet;
    let compose = Compose::read();
    let snapshot = load(&compose_config(&compose));
    let site = &snapshot.router.sites()[0];
    let policy = &site.policy;
    let tracker = url::Url::parse(flag(&compose.command("demo-origin"), "--tracker-url").unwrap()).unwrap();
    let host = tracker.host_str().unwrap();
    // Another host than the site's: a third party.
    assert!(!site.is_first_party(host), "{host} is first party: the tracker would pass");
    let rule = policy.resources.classify_url(host, tracker.path()).expect("no rule for the tracker");
    assert!(!policy.resource_allowed(Some(rule.category), CategorySet::NECESSARY_ONLY));
    let granted = CategorySet::NECESSARY_ONLY.union(CategorySet::only(rule.category));
    assert!(policy.resource_allowed(Some(rule.category), granted));
    // So is the cookie its script sets.
    let host_of_site = &site.hosts[0];
    let (category, _) = policy.classify_cookie(consentry::demo::TRACKER_COOKIE, host_of_site);
    assert!(!policy.cookie_allowed(category, CategorySet::NECESSARY_ONLY));
    // The demo site's cookies are classified as in config/demo.toml.
    for cookie in consentry::demo::COOKIES {
        let name = cookie.split('=').next().unwrap();
        let (category, _) = policy.classify_cookie(name, host_of_site);
        assert_eq!(category.is_none(), name == "legacy_visitor", "{name}");
    }
    assert!(policy.banner.enabled, "the demo shows the banner");
}

/// The compose topology on loopback: the real `config/compose.toml` (its
/// container addresses swapped for free local ones), the demo origin
/// loading the demo tracker, and consentry in front. What the header stages
/// do with the demo's cookies and the tracker's cookie, and the consent
/// loop with a receipt, as a visitor of `docker compose up` gets them.
#[tokio::test]
async fn the_compose_demo_enforces_its_policy_on_loopback() {
    within(async {
        let compose = Compose::read();
        let config_path = compose_config(&compose);
        let original = std::fs::read_to_string(&config_path).unwrap();
        let snapshot = load(&config_path);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (tracker, _tracker) = consentry::demo::spawn_tracker(any).await.unwrap();
        let compose_tracker =
            url::Url::parse(flag(&compose.command("demo-origin"), "--tracker-url").unwrap()).unwrap();
        let mut tracker_url = compose_tracker.clone();
        tracker_url.set_port(Some(tracker.port())).unwrap();
        let (origin, _origin) =
            consentry::demo::spawn_origin_with(any, Some(tracker_url.to_string())).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let receipts = dir.path().join("receipts.jsonl");
        let replacements = [
            (snapshot.listen.http.unwrap().to_string(), "127.0.0.1:0".to_string()),
            (snapshot.listen.admin.unwrap().to_string(), "127.0.0.1:0".to_string()),
            (
                snapshot.router.sites()[0].origin.uri.to_string().trim_end_matches('/').to_string(),
                format!("http://{origin}"),
            ),
            (snapshot.receipts.path.as_ref().unwrap().display().to_string(), receipts.display().to_string()),
        ];
        let mut text = original.clone();
        for (from, to) in &replacements {
            assert!(text.contains(from.as_str()), "{from} is not in {}", config_path.display());
            text = text.replace(from.as_str(), to);
        }
        let path = dir.path().join("compose.toml");
        std::fs::write(&path, text).unwrap();
        let running = consentry::server::start(&path).await.unwrap();
        let proxy = running.http_addr.unwrap();
        let host = &snapshot.router.sites()[0].hosts[0];

        // Without consent: only necessary cookies are set, the tracker's
        // cookie never reaches the origin and is deleted in the browser.
        let mut client = Client::http1(proxy, host).await;
        let page = client.get("/").await;
        assert_eq!(page.status, http::StatusCode::OK);
        let set: Vec<String> =
            page.header_all("set-cookie").iter().map(|c| c.split('=').next().unwrap().to_string()).collect();
        assert_eq!(set, ["sessionid", "csrftoken"]);
        assert!(page.text().trim_end().ends_with("</html>"), "the page arrives whole");
        let cookie = format!("{}=abc; sessionid=1; legacy_visitor=42", consentry::demo::TRACKER_COOKIE);
        let request = client
            .request(http::Method::GET, "/echo")
            .header("cookie", &cookie)
            .body(consentry::body::empty())
            .unwrap();
        let echo = client.fetch(request).await;
        assert_eq!(echo.echo().all("cookie"), ["sessionid=1"]);
        let deletions = echo.header_all("set-cookie");
        assert!(
            deletions.iter().any(|d| d.starts_with(&format!("{}=;", consentry::demo::TRACKER_COOKIE))
                && d.contains("Max-Age=0")),
            "{deletions:?}"
        );

        // The banner's form grants analytics: a signed-off receipt, a consent
        // cookie, and from then on the tracker's cookie passes.
        let form = client
            .request(http::Method::POST, "/.consentry/consent")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(consentry::body::full("choice=custom&category=analytics&return_to=/"))
            .unwrap();
        let chosen = client.fetch(form).await;
        assert!(chosen.status.is_redirection() || chosen.status.is_success(), "{:?}", chosen.status);
        let consent = chosen
            .header_all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("consentry="))
            .expect("the consent cookie");
        let consent = consent.split(';').next().unwrap().to_string();
        assert_eq!(std::fs::read_to_string(&receipts).unwrap().lines().count(), 1, "one receipt");
        let cookie = format!("{consent}; {}=abc", consentry::demo::TRACKER_COOKIE);
        let request = client
            .request(http::Method::GET, "/echo")
            .header("cookie", &cookie)
            .body(consentry::body::empty())
            .unwrap();
        let echo = client.fetch(request).await;
        assert_eq!(echo.echo().all("cookie"), [cookie.as_str()]);

        // The tracker the page names answers where the page says.
        let mut tracker_client = Client::http1(tracker, compose_tracker.host_str().unwrap()).await;
        let script = tracker_client.get(tracker_url.path()).await;
        assert!(script.text().contains(consentry::demo::TRACKER_COOKIE));
        running.shutdown().await;
    })
    .await;
}

#[test]
fn compose_waits_longer_than_the_drain() {
    let compose = Compose::read();
    let snapshot = load(&compose_config(&compose));
    let stop = compose.service("consentry")["stop_grace_period"].as_str().expect("stop_grace_period");
    let stop = humantime::parse_duration(stop).unwrap();
    assert!(stop > snapshot.limits.shutdown_grace, "{stop:?} <= shutdown_grace");
}

// ---------------------------------------------------------------------------
// deploy/kubernetes

fn kubernetes() -> Vec<(String, Value)> {
    let dir = root().join("deploy/kubernetes");
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.ends_with(".yaml"), "{name}: only .yaml files here");
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                value["kind"].is_string() && value["apiVersion"].is_string(),
                "{name}: kind and apiVersion"
            );
            docs.push((name.clone(), value));
        }
    }
    docs
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|(_, d)| d["kind"] == kind).map(|(_, d)| d).collect()
}

/// Writes each `*.toml` key of the ConfigMap into a directory (as the
/// kubelet does) and loads the one named.
fn configmap_snapshot(configmap: &Value, key: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in configmap["data"].as_mapping().unwrap() {
        std::fs::write(dir.path().join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
    }
    let snapshot = load(&dir.path().join(key));
    (dir, snapshot)
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().unwrap().iter().all(|(k, v)| labels.get(k.as_str().unwrap()) == Some(v))
}

#[test]
fn kubernetes_manifests_parse_and_kustomize_lists_them_all() {
    let docs = kubernetes();
    let kustomization = docs.iter().find(|(_, d)| d["kind"] == "Kustomization").expect("kustomization.yaml");
    let listed: BTreeSet<String> = strings(&kustomization.1["resources"], "resources").into_iter().collect();
    let files: BTreeSet<String> =
        docs.iter().map(|(f, _)| f.clone()).filter(|f| f != "kustomization.yaml").collect();
    assert_eq!(listed, files);
    for kind_name in ["ConfigMap", "Deployment", "Service"] {
        assert_eq!(kind(&docs, kind_name).len(), 1, "one {kind_name}");
    }
}

#[test]
fn the_deployment_probes_serves_and_stops_as_its_config_says() {
    let docs = kubernetes();
    let deployment = kind(&docs, "Deployment")[0];
    let spec = &deployment["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 2, "several replicas");
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(labels_match(&spec["selector"]["matchLabels"], pod_labels));
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let args = strings(&container["args"], "args");
    assert_cli(&args, "Deployment args");
    for env in container["env"].as_sequence().into_iter().flatten() {
        let name = env["name"].as_str().unwrap();
        let help = String::from_utf8_lossy(&consentry(&[&args[0], "--help"]).stdout).into_owned();
        assert!(help.contains(&format!("[env: {name}=")), "consentry does not read {name}");
    }

    // The config: the ConfigMap mounted as a directory (a subPath mount is
    // never updated, so hot reload would never see a change).
    let config_path = flag(&args, "--config").expect("--config");
    let (mount_dir, key) = config_path.rsplit_once('/').unwrap();
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let mount = mounts.iter().find(|m| m["mountPath"] == mount_dir).expect("the config directory is mounted");
    assert!(mount.get("subPath").is_none(), "subPath mounts never receive ConfigMap updates");
    let volume = pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    let configmap_name = volume["configMap"]["name"].as_str().expect("a configMap volume");
    let configmap =
        kind(&docs, "ConfigMap").into_iter().find(|c| c["metadata"]["name"] == configmap_name).unwrap();
    let (_dir, snapshot) = configmap_snapshot(configmap, key);

    // Ports: named container ports ↔ the config's addresses.
    let port_named = |name: &Value| -> u16 {
        if let Some(n) = name.as_u64() {
            return u16::try_from(n).unwrap();
        }
        let ports = container["ports"].as_sequence().unwrap();
        let port = ports.iter().find(|p| &p["name"] == name).unwrap_or_else(|| panic!("no port {name:?}"));
        u16::try_from(port["containerPort"].as_u64().unwrap()).unwrap()
    };
    let http = snapshot.listen.http.unwrap();
    let admin = snapshot.listen.admin.expect("probes need [admin] listen");
    assert!(http.ip().is_unspecified() && admin.ip().is_unspecified(), "the kubelet probes the pod IP");
    let container_ports: BTreeSet<u16> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| u16::try_from(p["containerPort"].as_u64().unwrap()).unwrap())
        .collect();
    assert_eq!(container_ports, BTreeSet::from([http.port(), admin.port()]));
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(port_named(&get["port"]), admin.port(), "{probe} port");
    }
    let service = kind(&docs, "Service")[0];
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        assert_eq!(port_named(&port["targetPort"]), http.port(), "the Service balances the proxy port only");
    }
    for pdb in kind(&docs, "PodDisruptionBudget") {
        assert!(labels_match(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
    }

    // Resources, and an unprivileged, read-only container.
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(!container["resources"][bound][resource].is_null(), "resources.{bound}.{resource}");
        }
    }
    let security = |key: &str| -> Value {
        let own = &container["securityContext"][key];
        if own.is_null() { pod["securityContext"][key].clone() } else { own.clone() }
    };
    assert_eq!(security("runAsNonRoot"), Value::Bool(true));
    assert_ne!(security("runAsUser").as_u64(), Some(0));
    assert_eq!(security("readOnlyRootFilesystem"), Value::Bool(true));
    assert_eq!(security("allowPrivilegeEscalation"), Value::Bool(false));
    // With a read-only root, whatever the config writes needs a volume.
    let writable: Vec<&str> = mounts
        .iter()
        .filter(|m| m["readOnly"] != Value::Bool(true))
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    let receipts = snapshot.receipts.path.as_ref().expect("the example writes receipts");
    let receipts = receipts.to_str().unwrap();
    let mount = mounts
        .iter()
        .filter(|m| m["readOnly"] != Value::Bool(true))
        .find(|m| receipts.starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("receipts {receipts} on a read-only root ({writable:?})"));
    // Rotation must fit the volume with margin: a full volume evicts the
    // pod (emptyDir) or fails every consent POST with 503.
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the receipts volume");
    if let Some(limit) = volume["emptyDir"]["sizeLimit"].as_str() {
        let bytes = quantity_bytes(limit);
        let rotate = snapshot.receipts.max_bytes;
        assert!(
            bytes >= rotate.saturating_mul(4),
            "emptyDir sizeLimit {limit} ({bytes} B) holds fewer than 4 receipt files of max_bytes {rotate} B"
        );
    }

    // Termination: preStop pause + drain fit in the grace period.
    let grace = Duration::from_secs(
        pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds"),
    );
    let pause =
        Duration::from_secs(container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0));
    assert!(
        grace > pause + snapshot.limits.shutdown_grace,
        "terminationGracePeriodSeconds {grace:?} <= preStop {pause:?} + shutdown_grace {:?}",
        snapshot.limits.shutdown_grace
    );
}

/// A Kubernetes quantity in bytes (`256Mi`, `1Gi`, `500M`, `1000`).
fn quantity_bytes(q: &str) -> u64 {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap_or_else(|_| panic!("quantity {q}")) * factor;
        }
    }
    q.parse().unwrap_or_else(|_| panic!("quantity {q}"))
}

#[test]
fn quantities_parse() {
    assert_eq!(quantity_bytes("256Mi"), 256 << 20);
    assert_eq!(quantity_bytes("1Gi"), 1 << 30);
    assert_eq!(quantity_bytes("500M"), 500_000_000);
    assert_eq!(quantity_bytes("1000"), 1000);
}

#[test]
fn every_configmap_config_passes_check() {
    let docs = kubernetes();
    let mut checked = 0;
    for configmap in kind(&docs, "ConfigMap") {
        for key in configmap["data"].as_mapping().unwrap().keys() {
            let key = key.as_str().unwrap();
            if key.ends_with(".toml") {
                let _ = configmap_snapshot(configmap, key);
                checked += 1;
            }
        }
    }
    assert!(checked >= 1);
}

// ---------------------------------------------------------------------------
// The binary: healthcheck and --version

fn healthcheck(url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["healthcheck", "--url", url];
    args.extend_from_slice(extra);
    consentry(&args)
}

#[tokio::test]
async fn healthcheck_passes_on_a_healthy_admin_api() {
    within(async {
        let proxy = proxy().toml("[admin]\nlisten = \"127.0.0.1:0\"\n").run().await;
        let admin = proxy.running().admin_addr.unwrap();
        for path in ["/healthz", "/readyz"] {
            let url = format!("http://{admin}{path}");
            let output = tokio::task::spawn_blocking(move || healthcheck(&url, &[])).await.unwrap();
            assert!(output.status.success(), "{path}: {}", String::from_utf8_lossy(&output.stderr));
            assert!(String::from_utf8_lossy(&output.stdout).contains("200 OK"));
        }
        // An unknown admin path is 404: unhealthy.
        let url = format!("http://{admin}/nope");
        let output = tokio::task::spawn_blocking(move || healthcheck(&url, &[])).await.unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stdout).contains("404"));
    })
    .await;
}

#[tokio::test]
async fn healthcheck_fails_on_errors_refusals_and_silence() {
    within(async {
        let unavailable = origin()
            .route_fn("/healthz", |_| async {
                let mut response = http::Response::new(consentry::body::full("draining"));
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                response
            })
            .run()
            .await;
        // Accepts, reads, never answers.
        let silent = raw_origin(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let closed = closed_port().await;
        let cases = [
            (format!("http://{}/healthz", unavailable.addr), "503"),
            (format!("http://{closed}/healthz"), "cannot connect"),
            (format!("http://{}/healthz", silent.addr), "no answer within"),
            ("https://127.0.0.1:1/healthz".to_string(), "only http://"),
            ("not a url".to_string(), "not a URL"),
        ];
        for (url, why) in cases {
            let shown = url.clone();
            let output = tokio::task::spawn_blocking(move || healthcheck(&url, &["--timeout", "300ms"]))
                .await
                .unwrap();
            assert_eq!(output.status.code(), Some(1), "{shown}");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(text.contains(why), "{shown}: {text}");
        }
    })
    .await;
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let output = consentry(&["--version"]);
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let built = env!("CONSENTRY_GIT_REV");
    assert_eq!(text, format!("consentry {} ({built})", env!("CARGO_PKG_VERSION")));
    // In a git checkout, and unless the revision was injected, it is HEAD.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match (head, std::env::var("CONSENTRY_GIT_REV").ok().filter(|v| !v.trim().is_empty())) {
        (Some(head), None) => assert_eq!(built, head),
        (None, None) => assert_eq!(built, "unknown"),
        (_, Some(injected)) => assert_eq!(built, injected.trim()),
    }
}

// ---------------------------------------------------------------------------
// docs/configuration.md

/// The config keys `src/config.rs` accepts: each `pub` field of the file's
/// serde structs, under its serde name.
fn config_keys() -> BTreeSet<String> {
    let source = std::fs::read_to_string(root().join("src/config.rs")).unwrap();
    let mut keys = BTreeSet::new();
    let mut in_file_struct = false;
    let mut rename: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            // ConfigError and Source describe errors and loaded text, not keys.
            let name = rest.split_whitespace().next().unwrap();
            in_file_struct = !matches!(name, "ConfigError" | "Source");
        } else if line.starts_with("#[cfg(test)]") {
            break;
        } else if let Some(r) = line.strip_prefix("#[serde(rename = \"") {
            rename = Some(r.split('"').next().unwrap().to_string());
        } else if in_file_struct
            && let Some(field) = line.strip_prefix("pub ").and_then(|f| f.split_once(':')).map(|(n, _)| n)
            && field.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.insert(rename.take().unwrap_or_else(|| field.to_string()));
        }
    }
    keys
}

#[test]
fn the_configuration_reference_names_every_key() {
    let docs = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let keys = config_keys();
    assert!(keys.len() > 60 && keys.contains("match") && keys.contains("shutdown_grace"), "{keys:?}");
    // A key (`shutdown_grace`), a table (`[admin]`, `[[listen.certificate]]`)
    // or a table of tables (`texts.LANG.KEY`).
    let documented = |k: &String| {
        [format!("`{k}`"), format!("[{k}]"), format!(".{k}]"), format!("`{k}.")]
            .iter()
            .any(|f| docs.contains(f))
    };
    let missing: Vec<&String> = keys.iter().filter(|k| !documented(k)).collect();
    assert!(missing.is_empty(), "docs/configuration.md does not document {missing:?}");
}

#[test]
fn every_toml_example_in_the_docs_is_valid() {
    let docs = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let mut blocks = 0;
    let mut complete = 0;
    for (i, block) in docs.split("```toml\n").skip(1).enumerate() {
        let text = block.split("\n```").next().unwrap();
        let source = consentry::config::Source {
            path: PathBuf::from(format!("docs-example-{i}.toml")),
            text: text.into(),
        };
        // Every key and type as the config parser accepts them...
        source.parse().unwrap_or_else(|e| panic!("docs example {i}: {e}\n{text}"));
        // ...and a complete example passes `consentry check` as a whole.
        if text.contains("[listen]") && text.contains("[[site]]") {
            Snapshot::compile(&source, 1).unwrap_or_else(|e| panic!("docs example {i}: {e:?}\n{text}"));
            complete += 1;
        }
        blocks += 1;
    }
    assert!(blocks >= 10 && complete >= 1, "{blocks} examples, {complete} complete");
}

/// The vendored, patched crates (vendor/*/README.consentry.md) are the
/// ones built: each lock file has the crate once, from its path (no
/// registry `source`). A `[patch.crates-io]` whose version no longer
/// matches the lock is silently unused, which would drop the patch.
#[test]
fn the_vendored_crates_are_the_ones_locked() {
    for lock in ["Cargo.lock", "fuzz/Cargo.lock"] {
        let text = std::fs::read_to_string(root().join(lock)).unwrap();
        for name in ["h2", "hyper"] {
            let entries: Vec<&str> = text
                .split("[[package]]")
                .filter(|p| p.trim_start().starts_with(&format!("name = \"{name}\"\n")))
                .collect();
            assert_eq!(entries.len(), 1, "{lock}: {name} locked {} times: {entries:?}", entries.len());
            assert!(
                !entries[0].contains("source ="),
                "{lock}: {name} comes from a registry, not vendor/{name}: {}",
                entries[0]
            );
            let manifest =
                std::fs::read_to_string(root().join("vendor").join(name).join("Cargo.toml")).unwrap();
            let version = entries[0].lines().find_map(|l| l.strip_prefix("version = ")).unwrap();
            assert!(
                manifest.contains(&format!("\nversion = {version}\n")),
                "{lock}: {name} {version} is not vendor/{name}'s version"
            );
        }
    }
}
