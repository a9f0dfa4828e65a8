//! `basalt admin`: calls the admin API of a running node, signed with the root credentials.

use std::time::Duration;

use anyhow::{Context, bail};
use basalt_bench::S3Client;
use basalt_object::{MaintenanceStatus, SweepReport};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, StatusCode};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The node's S3 endpoint: http://host:port, or https://host:port (verified against
    /// --ca-file, else the system's trusted certificates)
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:9000",
        global = true
    )]
    pub endpoint: String,
    /// PEM certificates to trust for an https:// endpoint (a self-signed node's cert.pem, or
    /// the CA that signed its certificate)
    #[arg(long, env = "AWS_CA_BUNDLE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Root user [env: BASALT_ROOT_USER or AWS_ACCESS_KEY_ID]
    #[arg(long, global = true)]
    pub access_key: Option<String>,
    /// Root password [env: BASALT_ROOT_PASSWORD or AWS_SECRET_ACCESS_KEY]
    #[arg(long, global = true)]
    pub secret_key: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", global = true)]
    pub region: String,
    /// Print JSON instead of text (tables for lists)
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Drives, redundancy policy, background healer, and the running and last heal or scrub.
    Status,
    /// Re-read every shard, rebuild what is missing or corrupt (refilling replaced drives),
    /// and report what was fixed. Waits for the end, showing progress.
    Heal {
        /// Start the heal and return without waiting
        #[arg(long)]
        no_wait: bool,
    },
    /// Users: add, list, disable, enable, remove.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Access keys: create (prints the secret, once), list, revoke.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Set a user's identity policies: canned names (readonly, readwrite, writeonly, admin) or
    /// policy documents as @file.json; none removes them all.
    Policy { user: String, policies: Vec<String> },
    /// Apply every bucket's lifecycle rules now and report what expired.
    Lifecycle {
        /// Evaluate the rules as if the clock read this instant (RFC 3339, e.g.
        /// 2030-01-01T00:00:00Z), to rehearse what a configuration will do; object lock
        /// still holds by the real clock
        #[arg(long, value_parser = parse_instant)]
        at: Option<i64>,
    },
    /// SSE-KMS keys of the built-in key store: create, list, rotate, disable, enable.
    Kms {
        #[command(subcommand)]
        command: KmsCommand,
    },
    /// Server access logs: `flush` delivers what this node has buffered now, instead of at
    /// the next minute.
    AccessLogs {
        #[command(subcommand)]
        command: AccessLogsCommand,
    },
    /// The cluster: `status` lists every node (up or down, zone, addresses, drives), the Raft
    /// leader, term, log, applied and snapshot indices, and the layout epoch.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    Status,
}

#[derive(Debug, Subcommand)]
pub enum AccessLogsCommand {
    Flush,
}

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// A new key (version 1): its id is random unless given.
    Create {
        /// Also name it `alias/NAME`
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Use this key id (letters, digits, _ and -) instead of a random one
        #[arg(long)]
        id: Option<String>,
    },
    List,
    /// Give the key a new version, which wraps new objects' data keys; older versions keep
    /// opening what they wrapped.
    Rotate {
        /// Key id, alias/NAME or ARN
        key: String,
    },
    /// Refuse the key: writes and reads of objects under it fail until it is enabled again.
    Disable {
        key: String,
    },
    Enable {
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    Add {
        name: String,
    },
    List,
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    /// Remove the user and every access key it has.
    Remove {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    Create {
        user: String,
    },
    List {
        user: Option<String>,
    },
    /// Revoke an access key (by its id).
    Revoke {
        key: String,
    },
}

/// Percent-encodes a query value (user names and access keys are plain, but be safe).
fn encode_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn call(
    client: &S3Client,
    method: Method,
    action: &str,
    query: &str,
    body: Bytes,
) -> anyhow::Result<serde_json::Value> {
    let (code, body) = client
        .signed_request(method, &format!("/basalt-admin/v1/{action}"), query, body)
        .await?;
    if code != StatusCode::OK {
        bail!("{action}: {code}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).context("the node's answer is not JSON")
}

async fn identity(client: &S3Client, command: AdminCommand) -> anyhow::Result<serde_json::Value> {
    let q = |name: &str, v: &str| format!("{name}={}", encode_value(v));
    match command {
        AdminCommand::User { command } => match command {
            UserCommand::Add { name } => {
                call(
                    client,
                    Method::POST,
                    "users",
                    &q("name", &name),
                    Bytes::new(),
                )
                .await
            }
            UserCommand::List => call(client, Method::GET, "users", "", Bytes::new()).await,
            UserCommand::Disable { name } => {
                let query = q("name", &name);
                call(client, Method::POST, "users/disable", &query, Bytes::new()).await
            }
            UserCommand::Enable { name } => {
                let query = q("name", &name);
                call(client, Method::POST, "users/enable", &query, Bytes::new()).await
            }
            UserCommand::Remove { name } => {
                call(
                    client,
                    Method::DELETE,
                    "users",
                    &q("name", &name),
                    Bytes::new(),
                )
                .await
            }
        },
        AdminCommand::Key { command } => match command {
            KeyCommand::Create { user } => {
                call(
                    client,
                    Method::POST,
                    "keys",
                    &q("user", &user),
                    Bytes::new(),
                )
                .await
            }
            KeyCommand::List { user } => {
                let query = user.map(|u| q("user", &u)).unwrap_or_default();
                call(client, Method::GET, "keys", &query, Bytes::new()).await
            }
            KeyCommand::Revoke { key } => {
                let query = q("id", &key);
                call(client, Method::DELETE, "keys", &query, Bytes::new()).await
            }
        },
        AdminCommand::Policy { user, policies } => {
            let mut docs = Vec::new();
            for p in policies {
                match p.strip_prefix('@') {
                    Some(path) => docs.push(
                        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
                    ),
                    None => docs.push(p),
                }
            }
            let body = Bytes::from(serde_json::to_vec(&docs)?);
            call(
                client,
                Method::PUT,
                "users/policies",
                &q("name", &user),
                body,
            )
            .await
        }
        AdminCommand::Kms { command } => match command {
            KmsCommand::Create {
                alias,
                description,
                id,
            } => {
                let query: Vec<String> =
                    [("alias", alias), ("description", description), ("id", id)]
                        .into_iter()
                        .filter_map(|(name, v)| v.map(|v| q(name, &v)))
                        .collect();
                call(
                    client,
                    Method::POST,
                    "kms/keys",
                    &query.join("&"),
                    Bytes::new(),
                )
                .await
            }
            KmsCommand::List => call(client, Method::GET, "kms/keys", "", Bytes::new()).await,
            KmsCommand::Rotate { key } => {
                let query = q("key", &key);
                call(
                    client,
                    Method::POST,
                    "kms/keys/rotate",
                    &query,
                    Bytes::new(),
                )
                .await
            }
            KmsCommand::Disable { key } => {
                let query = q("key", &key);
                call(
                    client,
                    Method::POST,
                    "kms/keys/disable",
                    &query,
                    Bytes::new(),
                )
                .await
            }
            KmsCommand::Enable { key } => {
                let query = q("key", &key);
                call(
                    client,
                    Method::POST,
                    "kms/keys/enable",
                    &query,
                    Bytes::new(),
                )
                .await
            }
        },
        _ => bail!("not an identity command"),
    }
}

fn parse_instant(text: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant: {e}"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn credential(flag: Option<String>, names: &[&str]) -> anyhow::Result<String> {
    flag.or_else(|| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    })
    .with_context(|| {
        format!(
            "no credentials: pass them as flags or set {}",
            names.join(" or ")
        )
    })
}

async fn status(client: &S3Client) -> anyhow::Result<MaintenanceStatus> {
    let (code, body) = client
        .signed_request(Method::GET, "/basalt-admin/v1/status", "", Bytes::new())
        .await?;
    if code != StatusCode::OK {
        bail!("status: {code}: {}", String::from_utf8_lossy(&body));
    }
    parse(&body)
}

fn parse(body: &[u8]) -> anyhow::Result<MaintenanceStatus> {
    serde_json::from_slice(body).context("the node's answer is not a status")
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let access = credential(args.access_key, &["BASALT_ROOT_USER", "AWS_ACCESS_KEY_ID"])?;
    let secret = credential(
        args.secret_key,
        &["BASALT_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"],
    )?;
    let client = S3Client::trusting(
        &args.endpoint,
        &access,
        &secret,
        &args.region,
        args.ca_file.as_deref(),
    )?;
    match args.command {
        AdminCommand::Cluster {
            command: ClusterCommand::Status,
        } => {
            let status = call(&client, Method::GET, "cluster/status", "", Bytes::new()).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_cluster(&status);
            }
        }
        AdminCommand::AccessLogs {
            command: AccessLogsCommand::Flush,
        } => {
            let answer = call(&client, Method::POST, "access-logs/flush", "", Bytes::new()).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print!("{}", crate::admin_table::render(&answer));
            }
        }
        AdminCommand::Status => {
            let s = status(&client).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s);
            }
        }
        command @ (AdminCommand::User { .. }
        | AdminCommand::Key { .. }
        | AdminCommand::Kms { .. }
        | AdminCommand::Policy { .. }) => {
            let answer = identity(&client, command).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print!("{}", crate::admin_table::render(&answer));
            }
        }
        AdminCommand::Lifecycle { at } => {
            let query = at.map(|ms| format!("at_ms={ms}")).unwrap_or_default();
            let (code, body) = client
                .signed_request(
                    Method::POST,
                    "/basalt-admin/v1/lifecycle",
                    &query,
                    Bytes::new(),
                )
                .await?;
            if code != StatusCode::OK {
                bail!("lifecycle: {code}: {}", String::from_utf8_lossy(&body));
            }
            let report: basalt_object::LifecycleReport =
                serde_json::from_slice(&body).context("the node's answer is not a report")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_lifecycle(&report);
            }
        }
        AdminCommand::Heal { no_wait } => {
            let (code, body) = client
                .signed_request(Method::POST, "/basalt-admin/v1/heal", "", Bytes::new())
                .await?;
            match code {
                StatusCode::ACCEPTED => eprintln!("heal started"),
                StatusCode::CONFLICT => {
                    eprintln!("a heal or scrub is already running; following it")
                }
                other => bail!("heal: {other}: {}", String::from_utf8_lossy(&body)),
            }
            if no_wait {
                return Ok(());
            }
            // Drawn only on a terminal: scripts and logs see the report alone.
            let progress = indicatif::ProgressBar::new_spinner();
            progress.enable_steady_tick(Duration::from_millis(120));
            let report = loop {
                let s = status(&client).await?;
                match s.running {
                    Some(r) => progress.set_message(format!(
                        "{}: {} records, {} stripes, {} shards checked, {} rebuilt",
                        r.kind, r.records, r.stripes, r.shards_checked, r.shards_rebuilt
                    )),
                    None => break s.last.context("the node reports no finished heal")?,
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            };
            progress.finish_and_clear();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_sweep(&report);
            }
            if !report.unrecoverable.is_empty() || report.shards_unwritable > 0 {
                bail!("the heal left damage it could not repair");
            }
        }
    }
    Ok(())
}

fn print_cluster(s: &serde_json::Value) {
    if s["mode"] == "single-node" {
        println!("single node (not a cluster)");
        return;
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let number = |v: &serde_json::Value| v.as_u64().map_or("-".to_owned(), |n| n.to_string());
    println!(
        "answered by {}  leader {}  term {}  log {}  applied {}  snapshot {}  layout epoch {}",
        text(&s["node"]),
        text(&s["leader"]),
        number(&s["term"]),
        number(&s["last_log_index"]),
        number(&s["applied_index"]),
        number(&s["snapshot_index"]),
        number(&s["layout_epoch"]),
    );
    for node in s["nodes"].as_array().into_iter().flatten() {
        let gib = |v: &serde_json::Value| {
            v.as_u64().map_or("-".to_owned(), |b| {
                format!("{:.1}", b as f64 / f64::from(1u32 << 30))
            })
        };
        println!(
            "  {:<12} {:<4} zone {:<10} s3 {:<21} rpc {:<21} drives {} used {} of {} GiB",
            text(&node["name"]),
            if node["up"] == true { "up" } else { "DOWN" },
            text(&node["zone"]),
            text(&node["s3"]),
            text(&node["rpc"]),
            number(&node["drives"]),
            gib(&node["used_bytes"]),
            gib(&node["capacity_bytes"]),
        );
    }
}

fn print_status(s: &MaintenanceStatus) {
    println!("redundancy: {}", s.redundancy);
    for d in &s.drives {
        let space = match (d.total_bytes, d.available_bytes) {
            (Some(total), Some(free)) => format!(", {free} of {total} bytes free"),
            _ => String::new(),
        };
        let state = if d.online { "online" } else { "OFFLINE" };
        println!("drive {}: {} ({state}{space})", d.index, d.path);
    }
    let h = &s.healer;
    println!(
        "healer: {} stripes queued, {} healed ({} shards, {} bytes), {} failures, {} dropped",
        h.queued, h.stripes_healed, h.shards_rebuilt, h.bytes_rebuilt, h.failures, h.dropped
    );
    let m = &s.missed_shards;
    println!(
        "missed shards: {} stripes owed a heal ({} waiting for a drive), {} healed since start{}",
        m.owed,
        m.waiting,
        m.stripes_healed,
        m.last_error
            .as_ref()
            .map_or_else(String::new, |e| format!(", last pass failed: {e}"))
    );
    let l = &s.lifecycle;
    println!(
        "lifecycle: every {}, days of {} s{}",
        l.interval_seconds
            .map_or_else(|| "never (off)".to_owned(), |i| format!("{i} s")),
        l.day_seconds,
        if l.running { ", running now" } else { "" }
    );
    if let Some(r) = &l.last {
        print_lifecycle(r);
    }
    if let Some(r) = &s.running {
        println!("running:");
        print_sweep(r);
    }
    if let Some(r) = &s.last {
        println!("last:");
        print_sweep(r);
    }
}

fn print_lifecycle(r: &basalt_object::LifecycleReport) {
    println!(
        "  last lifecycle run: {} buckets, {} versions scanned in {:.1} s",
        r.buckets,
        r.versions_scanned,
        (r.finished_ms - r.started_ms) as f64 / 1000.0
    );
    println!(
        "  expired: {} current, {} noncurrent, {} delete markers; {} uploads aborted; {} locked versions kept; {} errors",
        r.current_expired,
        r.noncurrent_expired,
        r.delete_markers_removed,
        r.uploads_aborted,
        r.skipped_locked,
        r.errors
    );
}

pub fn print_sweep(r: &SweepReport) {
    let seconds = r
        .finished_ms
        .map(|f| (f - r.started_ms) as f64 / 1000.0)
        .unwrap_or_default();
    println!(
        "{}: {} records, {} chunks, {} shards ({} bytes) checked in {seconds:.1} s",
        r.kind, r.records, r.stripes, r.shards_checked, r.bytes_checked
    );
    println!(
        "  shards missing: {}, corrupt: {}, unreadable: {}",
        r.shards_missing, r.shards_corrupt, r.shards_unreadable
    );
    println!(
        "  shards rebuilt: {} ({} bytes), of which moved to spare drives: {}, could not be written back: {}",
        r.shards_rebuilt, r.bytes_rebuilt, r.shards_moved, r.shards_unwritable
    );
    if !r.drives_adopted.is_empty() {
        println!(
            "  blank drives formatted as replacements: {:?}",
            r.drives_adopted
        );
    }
    for u in &r.unrecoverable {
        println!("  UNRECOVERABLE {u}");
    }
    if let Some(e) = &r.error {
        println!("  stopped by an error: {e}");
    }
}
