//! `--config FILE`: the command-line settings in a YAML file (same names as the flags, without
//! `--`); flags given on the command line override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use marked_yaml::Spanned;
use serde::Deserialize;

use crate::Cli;

/// The config file as written: every value kept as text with its position, parsed afterwards.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    spool: Option<Spanned<String>>,
    duration: Option<Spanned<String>>,
    chunk_interval: Option<Spanned<String>>,
    live: Option<Spanned<String>>,
    chunk_events: Option<Spanned<String>>,
    segment_bytes: Option<Spanned<String>>,
    segment_age: Option<Spanned<String>>,
    retain_bytes: Option<Spanned<String>>,
    retain_age: Option<Spanned<String>>,
    zstd_level: Option<Spanned<String>>,
    metrics_addr: Option<Spanned<String>>,
    syscalls: Option<Spanned<String>>,
    k8s_api: Option<Spanned<String>>,
    k8s_node: Option<Spanned<String>>,
    container_socket: Option<OneOrMany>,
    resolve: Option<OneOrMany>,
    ship: Option<Spanned<String>>,
    cluster: Option<Spanned<String>>,
    ship_endpoint: Option<Spanned<String>>,
    ship_path_style: Option<Spanned<String>>,
    ship_may_delete_unshipped: Option<Spanned<String>>,
}

/// A key that takes one value or a list of them (kept without positions: any text is valid).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Settings read from a config file; `None` where the file does not set them.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    spool: Option<PathBuf>,
    duration: Option<Duration>,
    chunk_interval: Option<Duration>,
    live: Option<bool>,
    chunk_events: Option<usize>,
    segment_bytes: Option<u64>,
    segment_age: Option<Duration>,
    retain_bytes: Option<u64>,
    retain_age: Option<Duration>,
    zstd_level: Option<i32>,
    metrics_addr: Option<SocketAddr>,
    syscalls: Option<crate::SyscallSet>,
    k8s_api: Option<String>,
    k8s_node: Option<String>,
    container_socket: Option<Vec<PathBuf>>,
    resolve: Option<Vec<String>>,
    ship: Option<String>,
    cluster: Option<String>,
    ship_endpoint: Option<String>,
    ship_path_style: Option<bool>,
    ship_may_delete_unshipped: Option<bool>,
}

/// Parses a size in bytes: a number, optionally followed by `K`/`M`/`G`/`T` (powers of 1000)
/// or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size (examples: 1048576, 512MiB, 10G)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        u => return Err(format!("`{s}`: unknown size unit `{u}` (use K, M, G, T, KiB, MiB, GiB or TiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

/// Reads and checks a config file; errors name the file, line and column.
pub fn load(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

fn at(file: &str, v: &Spanned<String>) -> String {
    match v.span().start() {
        Some(m) => format!("{file}:{}:{}", m.line(), m.column()),
        None => file.to_owned(),
    }
}

fn value<T>(
    file: &str,
    key: &str,
    v: &Option<Spanned<String>>,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>> {
    match v {
        None => Ok(None),
        Some(v) => match f(v.as_str()) {
            Ok(x) => Ok(Some(x)),
            Err(e) => bail!("{}: {key}: {e}", at(file, v)),
        },
    }
}

fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

fn http_url(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not an http:// or https:// URL"))
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration ({e}; examples: 30s, 1h, 7days)"))
}

/// Parses config text; `file` names it in errors.
fn parse(file: &str, text: &str) -> Result<FileConfig> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(FileConfig::default());
    }
    let node = marked_yaml::parse_yaml(0, text).map_err(|e| anyhow::anyhow!("{file}{}", located(&e.to_string())))?;
    let raw: RawConfig = marked_yaml::from_node(&node).map_err(|e| {
        let pos = e.start_mark().map_or(String::new(), |m| format!(":{}:{}", m.line(), m.column()));
        let what = match &*e {
            marked_yaml::Error::UnknownFieldError(key, expected, _) => {
                format!("unknown key `{key}` (known keys: {})", expected.join(", "))
            }
            other => other.to_string(),
        };
        anyhow::anyhow!("{file}{pos}: {what}")
    })?;
    let f = file;
    Ok(FileConfig {
        spool: value(f, "spool", &raw.spool, |s| Ok(PathBuf::from(s)))?,
        duration: value(f, "duration", &raw.duration, duration)?,
        chunk_interval: value(f, "chunk-interval", &raw.chunk_interval, duration)?,
        live: value(f, "live", &raw.live, boolean)?,
        chunk_events: value(f, "chunk-events", &raw.chunk_events, |s| {
            s.parse().map_err(|_| format!("`{s}` is not a positive number of events"))
        })?,
        segment_bytes: value(f, "segment-bytes", &raw.segment_bytes, parse_bytes)?,
        segment_age: value(f, "segment-age", &raw.segment_age, duration)?,
        retain_bytes: value(f, "retain-bytes", &raw.retain_bytes, parse_bytes)?,
        retain_age: value(f, "retain-age", &raw.retain_age, duration)?,
        zstd_level: value(f, "zstd-level", &raw.zstd_level, |s| {
            s.parse().map_err(|_| format!("`{s}` is not a zstd level (an integer, e.g. 3)"))
        })?,
        metrics_addr: value(f, "metrics-addr", &raw.metrics_addr, |s| {
            s.parse().map_err(|e| format!("`{s}` is not an address:port such as 127.0.0.1:9464 ({e})"))
        })?,
        syscalls: value(f, "syscalls", &raw.syscalls, |s| match s {
            "forensic" => Ok(crate::SyscallSet::Forensic),
            "all" => Ok(crate::SyscallSet::All),
            _ => Err(format!("`{s}` is not a syscall set (forensic or all)")),
        })?,
        k8s_api: value(f, "k8s-api", &raw.k8s_api, http_url)?,
        k8s_node: value(f, "k8s-node", &raw.k8s_node, |s| Ok(s.to_owned()))?,
        container_socket: raw.container_socket.map(|v| match v {
            OneOrMany::One(s) => vec![PathBuf::from(s)],
            OneOrMany::Many(l) => l.into_iter().map(PathBuf::from).collect(),
        }),
        resolve: raw.resolve.map(|v| match v {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(l) => l,
        }),
        ship: value(f, "ship", &raw.ship, |s| {
            lanner_objectstore::StoreUrl::parse(s).map(|_| s.to_owned()).map_err(|e| e.to_string())
        })?,
        cluster: value(f, "cluster", &raw.cluster, |s| Ok(s.to_owned()))?,
        ship_endpoint: value(f, "ship-endpoint", &raw.ship_endpoint, http_url)?,
        ship_path_style: value(f, "ship-path-style", &raw.ship_path_style, boolean)?,
        ship_may_delete_unshipped: value(f, "ship-may-delete-unshipped", &raw.ship_may_delete_unshipped, boolean)?,
    })
}

/// Turns marked-yaml's `line:col: message` into `:line:col: message`.
fn located(msg: &str) -> String {
    if msg.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        format!(":{msg}")
    } else {
        format!(" {msg}")
    }
}

/// Fills every setting of `cli` not given on the command line (per `matches`) from `file`.
pub fn merge(cli: &mut Cli, matches: &ArgMatches, file: FileConfig) {
    let from_flag = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    macro_rules! take {
        ($field:ident, option) => {
            if !from_flag(stringify!($field)) && file.$field.is_some() {
                cli.$field = file.$field;
            }
        };
        ($field:ident) => {
            if !from_flag(stringify!($field)) {
                if let Some(v) = file.$field {
                    cli.$field = v;
                }
            }
        };
    }
    take!(spool, option);
    take!(duration, option);
    take!(chunk_interval);
    take!(live);
    take!(chunk_events);
    take!(segment_bytes);
    take!(segment_age, option);
    take!(retain_bytes, option);
    take!(retain_age, option);
    take!(zstd_level);
    take!(metrics_addr, option);
    take!(syscalls);
    take!(k8s_api, option);
    take!(k8s_node, option);
    take!(container_socket, option);
    take!(resolve, option);
    take!(ship, option);
    take!(cluster, option);
    take!(ship_endpoint, option);
    take!(ship_path_style);
    take!(ship_may_delete_unshipped);
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    const GOOD: &str = "# node defaults\nspool: /var/lib/lanner/spool\nlive: true\nsegment-bytes: 64MiB\nsegment-age: 1h\nretain-bytes: 10G\nretain-age: 7days\nzstd-level: 5\nchunk-events: 1000\nmetrics-addr: 127.0.0.1:9464\nk8s-api: https://10.96.0.1:443\nk8s-node: worker-1\ncontainer-socket: [/run/docker.sock, /run/podman/podman.sock]\nresolve: kubernetes.default.svc.cluster.local\nship: s3://evidence/lanner\ncluster: prod-eu\nship-endpoint: http://127.0.0.1:5000\nship-path-style: true\nship-may-delete-unshipped: false\n";

    #[test]
    fn good_file_sets_every_value() {
        let c = parse("node.yaml", GOOD).unwrap();
        assert_eq!(c.spool, Some(PathBuf::from("/var/lib/lanner/spool")));
        assert_eq!(c.live, Some(true));
        assert_eq!(c.segment_bytes, Some(64 << 20));
        assert_eq!(c.segment_age, Some(Duration::from_secs(3600)));
        assert_eq!(c.retain_bytes, Some(10_000_000_000));
        assert_eq!(c.retain_age, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(c.zstd_level, Some(5));
        assert_eq!(c.chunk_events, Some(1000));
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.k8s_api.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(c.k8s_node.as_deref(), Some("worker-1"));
        assert_eq!(
            c.container_socket,
            Some(vec![PathBuf::from("/run/docker.sock"), PathBuf::from("/run/podman/podman.sock")])
        );
        assert_eq!(c.resolve, Some(vec!["kubernetes.default.svc.cluster.local".to_owned()]));
        assert_eq!(c.ship.as_deref(), Some("s3://evidence/lanner"));
        assert_eq!(c.cluster.as_deref(), Some("prod-eu"));
        assert_eq!(c.ship_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!((c.ship_path_style, c.ship_may_delete_unshipped), (Some(true), Some(false)));
        assert_eq!(c.duration, None);
        assert_eq!(parse("empty.yaml", "# nothing\n\n").unwrap(), FileConfig::default());
    }

    #[test]
    fn unknown_key_is_an_error_with_file_line_and_column() {
        let e = parse("node.yaml", "spool: /s\nretain-bytez: 1G\n").unwrap_err().to_string();
        assert!(e.starts_with("node.yaml:2:1: unknown key `retain-bytez`"), "{e}");
        assert!(e.contains("retain-bytes"), "lists the known keys: {e}");
    }

    #[test]
    fn bad_values_and_bad_yaml_name_the_position() {
        let e = parse("n.yaml", "spool: /s\nsegment-age: soon\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:2:14: segment-age: `soon` is not a duration"), "{e}");
        let e = parse("n.yaml", "ship: /tmp/x\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:1:7: ship: `/tmp/x`: not an object storage URL"), "{e}");
        let e = parse("n.yaml", "retain-bytes: 10XB\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:1:15: retain-bytes: `10XB`: unknown size unit `XB`"), "{e}");
        let e = parse("n.yaml", "metrics-addr: localhost\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:1:15: metrics-addr:"), "{e}");
        let e = parse("n.yaml", "spool: [unclosed\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:"), "{e}");
        assert!(e.chars().nth(7).is_some_and(|c| c.is_ascii_digit()), "has a line number: {e}");
        let e = parse("n.yaml", "k8s-api: 10.96.0.1\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:1:10: k8s-api: `10.96.0.1` is not an http"), "{e}");
        let e = parse("n.yaml", "- a list\n").unwrap_err().to_string();
        assert!(e.starts_with("n.yaml:1:1"), "{e}");
    }

    #[test]
    fn the_syscall_set_is_forensic_or_all() {
        assert_eq!(parse("c.yaml", "syscalls: all\n").unwrap().syscalls, Some(crate::SyscallSet::All));
        let e = parse("c.yaml", "syscalls: most\n").unwrap_err().to_string();
        assert!(e.starts_with("c.yaml:1:11: syscalls:") && e.contains("forensic or all"), "{e}");
    }

    #[test]
    fn container_sockets_are_one_path_a_list_or_none() {
        let one = parse("c.yaml", "container-socket: /var/run/docker.sock\n").unwrap();
        assert_eq!(one.container_socket, Some(vec![PathBuf::from("/var/run/docker.sock")]));
        // An empty list turns runtime lookups off.
        assert_eq!(parse("c.yaml", "container-socket: []\n").unwrap().container_socket, Some(vec![]));
        let e = parse("c.yaml", "spool: /s\ncontainer-socket: {a: b}\n").unwrap_err().to_string();
        assert!(e.starts_with("c.yaml:2:"), "{e}");
        // The flag (repeatable) replaces the file's list.
        let args =
            ["lanner-capture", "--spool", "/s", "--container-socket", "/a.sock", "--container-socket", "/b.sock"];
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        merge(&mut cli, &matches, one);
        assert_eq!(cli.container_socket, Some(vec![PathBuf::from("/a.sock"), PathBuf::from("/b.sock")]));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("3MiB"), Ok(3 << 20));
        assert_eq!(parse_bytes("2K"), Ok(2000));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let args = ["lanner-capture", "--config", "x.yaml", "--segment-age", "5m", "--zstd-level", "1"];
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        merge(&mut cli, &matches, parse("x.yaml", GOOD).unwrap());
        // Given as flags: the flag wins.
        assert_eq!(cli.segment_age, Some(Duration::from_secs(300)));
        assert_eq!(cli.zstd_level, 1);
        // Only in the file: the file wins over the default.
        assert_eq!(cli.segment_bytes, 64 << 20);
        assert!(cli.live);
        assert_eq!(cli.spool, Some(PathBuf::from("/var/lib/lanner/spool")));
        assert_eq!(cli.retain_bytes, Some(10_000_000_000));
        assert_eq!(cli.k8s_node.as_deref(), Some("worker-1"));
        assert_eq!(cli.container_socket.as_ref().map(Vec::len), Some(2));
        // In neither: the default stays.
        assert_eq!(cli.chunk_interval, Duration::from_secs(1));
        assert_eq!(cli.duration, None);
    }
}
