//! The `basalt` binary: command line, configuration and wiring. The layers live in the
//! library crates; this file only puts them together.

mod admin;
mod admin_table;
mod bench;
mod certs;
mod cluster;
mod config;
mod fsck;
mod idle_io;
mod metrics_listener;
mod node;
mod server;
mod tls;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "basalt",
    version,
    about = "Basalt: a distributed, S3-compatible object store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: S3 on --address, data under --data.
    Server(Box<config::ServerArgs>),
    /// Load-test any S3 endpoint: ops/s, MB/s and latency percentiles per operation.
    Bench(bench::BenchArgs),
    /// Administer a running node: status, heal.
    Admin(admin::AdminArgs),
    /// Check a stopped node's drives and metadata; --repair fixes what can be fixed.
    Fsck(fsck::FsckArgs),
    /// Serve this node's drives to the node that coordinates them (node-to-node, signed with
    /// the cluster secret, mutual TLS when configured).
    DriveServer(cluster::DriveServerArgs),
    /// Make a CA and a node certificate for node-to-node mutual TLS (kept if already there).
    Certs(certs::CertsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Server(args) => {
            let config = config::ServerConfig::resolve(*args)?;
            // Blocking threads do the disk I/O and hashing; a cap bounds thread stacks and
            // allocator arenas under a burst of writes. Shard I/O and metadata reads each have
            // a lane within it, so a slow drive or node cannot take the threads HEAD and LIST
            // need; a few more are left for everything else.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(
                    basalt_data::io_lane::DATA_LANE_THREADS + basalt_meta::META_READ_THREADS + 8,
                )
                .build()?;
            runtime.block_on(server::run(config))
        }
        Command::Bench(args) => client_runtime()?.block_on(bench::run(args)),
        Command::DriveServer(args) => client_runtime()?.block_on(cluster::run_drive_server(args)),
        Command::Admin(args) => client_runtime()?.block_on(admin::run(args)),
        Command::Certs(args) => certs::run(&args),
        Command::Fsck(args) => {
            if client_runtime()?.block_on(fsck::run(args))? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

fn client_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BASALT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
