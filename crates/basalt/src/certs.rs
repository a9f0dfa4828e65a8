//! `basalt certs`: a CA and a node certificate it signs, for node-to-node mutual TLS — what a
//! compose file or a first deployment needs before the nodes start. Existing files are kept,
//! so running it again (a container restarted) changes nothing.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.pem, ca.key, node.pem and node.key into
    #[arg(long)]
    pub dir: PathBuf,
    /// A host name or IP address the node certificate is valid for; repeat for every node
    /// (one certificate for all of them), or run once per node with its own --dir
    #[arg(long = "name", required = true)]
    pub names: Vec<String>,
}

pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    let files = ["ca.pem", "ca.key", "node.pem", "node.key"].map(|f| args.dir.join(f));
    if files.iter().all(|f| f.exists()) {
        println!(
            "{}: certificates already there; nothing changed",
            args.dir.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Basalt cluster CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let node_key = rcgen::KeyPair::generate()?;
    let node = rcgen::CertificateParams::new(args.names.clone())
        .context("the node names")?
        .signed_by(&node_key, &ca, &ca_key)?;
    let [ca_pem, ca_key_path, node_pem, node_key_path] = &files;
    std::fs::write(ca_pem, ca.pem())?;
    std::fs::write(node_pem, node.pem())?;
    crate::server::write_private(ca_key_path, &ca_key.serialize_pem())?;
    crate::server::write_private(node_key_path, &node_key.serialize_pem())?;
    println!(
        "{}: CA and a node certificate for {}; give each node --cluster-tls-cert node.pem --cluster-tls-key node.key --cluster-tls-ca ca.pem",
        args.dir.display(),
        args.names.join(", ")
    );
    Ok(())
}
