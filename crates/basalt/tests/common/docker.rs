//! Docker for the tests that need containers: images built from the test's own binary
//! (there is no registry), and clean-up of what a test created, however it ends.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What the test created in Docker, removed when it ends, however it ends.
pub struct Cleanup {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // A failed test is diagnosed from what the nodes logged, which goes with the container.
        if std::thread::panicking() {
            for c in &self.containers {
                if let Ok(out) = Command::new("docker")
                    .args(["logs", "--tail", "400", c])
                    .output()
                {
                    eprintln!("--- the last lines {c} logged ---");
                    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
                    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
                }
            }
        }
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        for n in &self.networks {
            let _ = Command::new("docker").args(["network", "rm", n]).output();
        }
        if let Some(i) = &self.image {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

/// A root file system with the binary (stripped) and the shared libraries it loads.
pub fn build_image(tag: &str, context: &Path) {
    let binary = env!("CARGO_BIN_EXE_basalt");
    let root = context.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(root.join("basalt"))
        .arg(binary)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(binary, root.join("basalt")).unwrap();
    }
    let ldd = Command::new("ldd").arg(binary).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            let target = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(path, &target).unwrap();
        }
    }
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/basalt\"]\n",
    )
    .unwrap();
    docker(&["build", "-q", "-t", tag, &context.display().to_string()]);
}
