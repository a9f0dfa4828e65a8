//! `basalt bench`: the command line of the load generator in `basalt-bench`.

use std::time::Duration;

use basalt_bench::{BenchConfig, Op, SizeSpec};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// S3 endpoint (plain HTTP)
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    #[arg(long, default_value = "basalt-bench")]
    pub bucket: String,
    /// Key prefix of every object the run writes or reads
    #[arg(long, default_value = "bench/")]
    pub prefix: String,
    /// put, get, mixed, list, multipart or range-get
    #[arg(long, default_value = "put")]
    pub op: Op,
    /// Object size: fixed (4KiB) or a uniform range (1KiB-1MiB)
    #[arg(long, default_value = "4KiB")]
    pub size: SizeSpec,
    /// Requests in flight
    #[arg(long, short = 'c', default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds to run (ignored when --count is given)
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Number of operations to run
    #[arg(long)]
    pub count: Option<u64>,
    /// For --op mixed: share of GETs, the rest are PUTs
    #[arg(long, default_value_t = 0.7)]
    pub get_ratio: f64,
    /// Objects written first for get, mixed, list and range-get runs (0 with list: list what
    /// is already under --prefix)
    #[arg(long, default_value_t = 256)]
    pub objects: usize,
    /// Part size for --op multipart
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Bytes per request for --op range-get
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub range_size: u64,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    basalt_bench::parse_size(s)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let progress = !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let config = BenchConfig {
        endpoint: args.endpoint,
        access_key: args.access_key,
        secret_key: args.secret_key,
        region: args.region,
        bucket: args.bucket,
        prefix: args.prefix,
        op: args.op,
        size: args.size,
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        count: args.count,
        get_ratio: args.get_ratio.clamp(0.0, 1.0),
        objects: args.objects,
        part_size: args.part_size,
        range_size: args.range_size,
        progress,
    };
    let report = basalt_bench::run(config).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}
