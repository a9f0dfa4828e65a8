//! `basalt fsck`: checks (and with --repair fixes) the drives and metadata of a stopped node.

use anyhow::Context;
use basalt_object::{ObjectConfig, ObjectStore};
use clap::Args;

use crate::config::StorageArgs;

#[derive(Debug, Args)]
pub struct FsckArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Rebuild missing and corrupt shards, remove orphan shard files and leftovers of
    /// interrupted writes. Records whose data cannot be rebuilt are reported and kept.
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// Returns whether the node is clean (after repair, if asked).
pub async fn run(args: FsckArgs) -> anyhow::Result<bool> {
    let (drives, meta_dir) = args.storage.resolve(None)?;
    let (d, m) = (args.storage.cluster.locations(&drives)?, meta_dir.clone());
    let store =
        tokio::task::spawn_blocking(move || ObjectStore::open(&d, &m, ObjectConfig::default()))
            .await?
            .with_context(|| {
                format!(
                    "opening the store at {} (a running node holds it: stop it first)",
                    meta_dir.display()
                )
            })?;
    let report = store.fsck(args.repair).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "basalt fsck: {} drives, metadata in {}{}",
            drives.len(),
            meta_dir.display(),
            if args.repair { ", repairing" } else { "" }
        );
        crate::admin::print_sweep(&report.sweep);
        println!(
            "  orphan shard files (no record refers to them): {}, removed: {}",
            report.orphans, report.orphans_removed
        );
        println!(
            "  temporary files of interrupted writes: {}{}",
            report.temporary_files,
            if args.repair && report.temporary_files > 0 {
                " (removed)"
            } else {
                ""
            }
        );
        for d in &report.unreadable_drives {
            println!("  UNREADABLE {d}");
        }
        let clean = report.clean() && (args.repair || report.temporary_files == 0);
        println!(
            "{}",
            if clean {
                "result: clean"
            } else if args.repair {
                "result: damage remains that cannot be repaired without losing data"
            } else {
                "result: problems found; run with --repair to fix what can be fixed"
            }
        );
    }
    Ok(report.clean() && (args.repair || report.temporary_files == 0))
}
