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
mod telemetry;
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
    match cli.command {
        Command::Server(args) => {
            let config = config::ServerConfig::resolve(*args)?;
            // Declared before the runtime, so dropped after it: spans of the last requests
            // are sent before the process ends.
            let _telemetry = telemetry::init(config.trace_export().as_ref())?;
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
        Command::DriveServer(args) => {
            let _telemetry = telemetry::init(args.trace_export().as_ref())?;
            client_runtime()?.block_on(cluster::run_drive_server(args))
        }
        Command::Bench(args) => {
            let _telemetry = telemetry::init(None)?;
            client_runtime()?.block_on(bench::run(args))
        }
        Command::Admin(args) => {
            let _telemetry = telemetry::init(None)?;
            client_runtime()?.block_on(admin::run(args))
        }
        Command::Certs(args) => {
            let _telemetry = telemetry::init(None)?;
            certs::run(&args)
        }
        Command::Fsck(args) => {
            let _telemetry = telemetry::init(None)?;
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
