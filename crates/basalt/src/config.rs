//! Configuration: flags, then `BASALT_*` environment variables, then a TOML file, then
//! defaults — the first that sets a value wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address of the S3 listener [default: 127.0.0.1:9000]
    #[arg(long, env = "BASALT_ADDRESS")]
    pub address: Option<SocketAddr>,
    /// Data directory [default: ./basalt-data]
    #[arg(long, env = "BASALT_DATA")]
    pub data: Option<PathBuf>,
    /// Region reported to clients and used in signatures [default: us-east-1]
    #[arg(long, env = "BASALT_REGION")]
    pub region: Option<String>,
    /// Base domain for virtual-hosted-style requests (bucket.DOMAIN); repeatable
    #[arg(long = "domain", env = "BASALT_DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,
    /// TOML configuration file
    #[arg(long, env = "BASALT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chunk size in bytes [default: 4194304]
    #[arg(long, env = "BASALT_CHUNK_SIZE")]
    pub chunk_size: Option<usize>,
    /// Objects up to this many bytes are stored inline in metadata [default: 32768]
    #[arg(long, env = "BASALT_INLINE_THRESHOLD")]
    pub inline_threshold: Option<usize>,
    /// Smallest multipart part but the last, in bytes [default: 5242880, as AWS]; lower it
    /// only to test
    #[arg(long, env = "BASALT_MIN_PART_SIZE")]
    pub min_part_size: Option<u64>,
    /// Metadata page cache in bytes [default: 67108864]
    #[arg(long, env = "BASALT_META_CACHE")]
    pub meta_cache: Option<usize>,
}

/// The TOML file: the same keys as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    address: Option<SocketAddr>,
    data: Option<PathBuf>,
    region: Option<String>,
    domains: Option<Vec<String>>,
    chunk_size: Option<usize>,
    inline_threshold: Option<usize>,
    min_part_size: Option<u64>,
    meta_cache: Option<usize>,
    root_user: Option<String>,
    root_password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    pub data: PathBuf,
    pub region: String,
    pub domains: Vec<String>,
    pub chunk_size: usize,
    pub inline_threshold: usize,
    pub min_part_size: u64,
    pub meta_cache: usize,
    pub root_user: Option<String>,
    pub root_password: Option<String>,
}

impl ServerConfig {
    pub fn resolve(args: ServerArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config = Self {
            address: args
                .address
                .or(file.address)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000))),
            data: args
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from("basalt-data")),
            region: args
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            domains: if args.domains.is_empty() {
                file.domains.unwrap_or_default()
            } else {
                args.domains
            },
            chunk_size: args.chunk_size.or(file.chunk_size).unwrap_or(4 << 20),
            inline_threshold: args
                .inline_threshold
                .or(file.inline_threshold)
                .unwrap_or(32 << 10),
            min_part_size: args.min_part_size.or(file.min_part_size).unwrap_or(5 << 20),
            meta_cache: args.meta_cache.or(file.meta_cache).unwrap_or(64 << 20),
            root_user: env("BASALT_ROOT_USER").or(file.root_user),
            root_password: env("BASALT_ROOT_PASSWORD").or(file.root_password),
        };
        if config.chunk_size < 64 << 10 || config.chunk_size > 64 << 20 {
            bail!("chunk size must be between 64 KiB and 64 MiB");
        }
        if config.inline_threshold > 1 << 20 {
            bail!("the inline threshold must be at most 1 MiB");
        }
        Ok(config)
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            address: None,
            data: None,
            region: None,
            domains: vec![],
            config: None,
            chunk_size: None,
            inline_threshold: None,
            min_part_size: None,
            meta_cache: None,
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(
            &path,
            "region = \"eu-west-1\"\naddress = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.address = Some("127.0.0.1:9200".parse().unwrap());
        let c = ServerConfig::resolve(a).unwrap();
        assert_eq!(c.address.port(), 9200);
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.data, PathBuf::from("basalt-data"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(&path, "regoin = \"x\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        assert!(ServerConfig::resolve(a).is_err());
    }
}
