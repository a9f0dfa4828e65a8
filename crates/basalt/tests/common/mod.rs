//! A spawned `basalt` binary on a free loopback port, and an AWS SDK client for it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub const ACCESS_KEY: &str = "basalt-test-user";
pub const SECRET_KEY: &str = "basalt-test-secret-0123456789";

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut s = Self { child: None, port: free_port(), data, _dir: Some(dir) };
        s.spawn(extra);
        s
    }

    /// Starts (again) on an existing data directory.
    pub fn start_on(data: &Path, port: u16) -> Self {
        let mut s = Self { child: None, port, data: data.to_owned(), _dir: None };
        s.spawn(&[]);
        s
    }

    fn spawn(&mut self, extra: &[&str]) {
        let child = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .arg("server")
            .arg("--address")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data)
            .args(extra)
            .env("BASALT_ROOT_USER", ACCESS_KEY)
            .env("BASALT_ROOT_PASSWORD", SECRET_KEY)
            .env("BASALT_LOG", std::env::var("BASALT_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn basalt");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(body) = http_get(self.port, "/health/ready")
                && body.starts_with("HTTP/1.1 200")
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("basalt exited during start-up: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("basalt did not become ready");
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait().expect("wait")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        client_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// A client that never retries: a request that fails, fails at once.
    pub fn client_without_retries(&self) -> aws_sdk_s3::Client {
        let config = config_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn config_for(endpoint: &str, access: &str, secret: &str) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
}

pub fn client_for(endpoint: &str, access: &str, secret: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(config_for(endpoint, access, secret).build())
}

/// A raw HTTP/1.1 exchange: returns the whole response as text.
pub fn http_raw(port: u16, request: &[u8]) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_raw(port, format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Deterministic pseudo-random bytes.
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn error_code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(e) => e.err().code().unwrap_or("").to_owned(),
        other => format!("{other:?}"),
    }
}
