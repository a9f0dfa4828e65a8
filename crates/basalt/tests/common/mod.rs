//! A spawned `basalt` binary on a free loopback port, and an AWS SDK client for it.
#![allow(dead_code)]

pub mod docker;
pub mod nodes;

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

/// A port for a server to listen on, free now. Drawn below the kernel's ephemeral range
/// (32768 and up by default): a port the kernel hands out (bind to port 0, or the local end of
/// any outgoing connection) could be taken again by a connection before the server binds it,
/// and the server would exit at start-up. A port is handed out once per test process.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..1000 {
        let port = rand::rng().random_range(20_000..32_000);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut s = Self {
            child: None,
            port: free_port(),
            data,
            _dir: Some(dir),
        };
        s.spawn(extra);
        s
    }

    /// Starts (again) on an existing data directory.
    pub fn start_on(data: &Path, port: u16) -> Self {
        Self::start_on_with(data, port, &[])
    }

    /// Starts (again) on an existing data directory (the first drive), with more flags.
    pub fn start_on_with(data: &Path, port: u16, extra: &[&str]) -> Self {
        let mut s = Self {
            child: None,
            port,
            data: data.to_owned(),
            _dir: None,
        };
        s.spawn(extra);
        s
    }

    /// Starts on `data` without root credentials in the environment; returns the process's
    /// stdout, where first-start credentials are printed.
    pub fn start_without_credentials(data: &Path, port: u16) -> (Self, std::process::ChildStdout) {
        let mut s = Self {
            child: None,
            port,
            data: data.to_owned(),
            _dir: None,
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .arg("server")
            .arg("--address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data)
            .env_remove("BASALT_ROOT_USER")
            .env_remove("BASALT_ROOT_PASSWORD")
            .env("BASALT_LOG", "warn,s3s=off")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn basalt");
        let stdout = child.stdout.take().expect("stdout");
        s.child = Some(child);
        s.wait_ready();
        (s, stdout)
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
            .env(
                "BASALT_LOG",
                std::env::var("BASALT_TEST_LOG").unwrap_or_else(|_| "warn,s3s=off".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn basalt");
        self.child = Some(child);
        if extra.iter().any(|a| a.starts_with("--tls")) {
            // Plain HTTP gets no answer from a TLS listener: wait for the port instead.
            self.wait_listening();
        } else {
            self.wait_ready();
        }
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("basalt exited during start-up: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("basalt did not start listening");
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
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().expect("wait")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Runs `basalt admin ARGS` as the root user and returns its JSON answer; fails the test
    /// if the command fails.
    pub fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        admin_json_at(&self.endpoint(), args)
    }

    /// A new user with `policies` attached (canned names or documents) and a client signing
    /// with its first key.
    pub fn user_client(&self, name: &str, policies: &[&str]) -> aws_sdk_s3::Client {
        self.admin_json(&["user", "add", name]);
        if !policies.is_empty() {
            let mut args = vec!["policy", name];
            args.extend_from_slice(policies);
            self.admin_json(&args);
        }
        let key = self.admin_json(&["key", "create", name]);
        client_for(
            &self.endpoint(),
            key["access_key"].as_str().expect("an access key"),
            key["secret_key"].as_str().expect("a secret key"),
        )
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

/// `basalt admin --json ARGS` against `endpoint`, as the root user.
pub fn admin_json_at(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["admin", "--json", "--endpoint", endpoint])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .args(args)
        .output()
        .expect("basalt admin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("basalt admin answers JSON")
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

/// A raw HTTP/1.1 exchange (send `Connection: close`): returns the whole response as text.
pub fn http_raw(port: u16, request: &[u8]) -> std::io::Result<String> {
    exchange(port, request, false)
}

/// Sends `request`, then closes the sending side: a body shorter than its Content-Length
/// ends there. Returns whatever the server answered (often nothing).
pub fn http_raw_cut_off(port: u16, request: &[u8]) -> std::io::Result<String> {
    exchange(port, request, true)
}

fn exchange(port: u16, request: &[u8], half_close: bool) -> std::io::Result<String> {
    exchange_at("127.0.0.1", port, request, half_close)
}

pub fn exchange_at(
    ip: &str,
    port: u16,
    request: &[u8],
    half_close: bool,
) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The server may answer and close before the whole request is written.
    let _ = s.write_all(request);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after `deadline`.
/// Milliseconds since the Unix epoch, as the server's status reports times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {deadline:?}");
}

/// Reads what the server answers on `stream` until `needle` appears, the server closes, or
/// `timeout` passes without a byte.
pub fn read_until(stream: &mut std::net::TcpStream, needle: &str, timeout: Duration) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(needle) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Deterministic pseudo-random bytes.
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
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

/// A SigV4-signed raw HTTP/1.1 request, for inputs the SDK refuses to send. `path` is sent and
/// signed exactly as given (already percent-encoded). `declared_len` overrides Content-Length.
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub headers: Vec<(&'a str, String)>,
    pub secret: &'a str,
    pub time: std::time::SystemTime,
    pub declared_len: Option<usize>,
    /// Close the sending side after the body (for bodies shorter than declared).
    pub cut_off: bool,
    /// The Host header, when not the loopback address (virtual-hosted-style requests).
    pub host: Option<String>,
    /// The credential scope's region and service.
    pub region: &'a str,
    pub service: &'a str,
    /// Headers sent but left out of the signature.
    pub unsigned_headers: Vec<(&'a str, String)>,
    /// Headers signed but then not sent.
    pub signed_not_sent: Vec<(&'a str, String)>,
}

impl<'a> RawRequest<'a> {
    pub fn new(method: &'a str, path: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            path,
            body,
            headers: Vec::new(),
            secret: SECRET_KEY,
            time: std::time::SystemTime::now(),
            declared_len: None,
            cut_off: false,
            host: None,
            region: "us-east-1",
            service: "s3",
            unsigned_headers: Vec::new(),
            signed_not_sent: Vec::new(),
        }
    }

    pub fn send(&self, port: u16) -> String {
        let mut raw = self.head(port, false).into_bytes();
        raw.extend_from_slice(self.body);
        exchange(port, &raw, self.cut_off).expect("raw request")
    }

    /// The request line and signed headers. With `unsigned_payload` the body is not part of
    /// the signature, so it can be streamed after the head.
    pub fn head(&self, port: u16, unsigned_payload: bool) -> String {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, sign};
        use aws_sigv4::sign::v4;
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{port}"));
        let url = format!("http://{host}{}", self.path);
        let creds =
            aws_credential_types::Credentials::new(ACCESS_KEY, self.secret, None, None, "test");
        let identity = creds.into();
        let settings = s3_signing_settings();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(self.time)
            .settings(settings)
            .build()
            .expect("signing params")
            .into();
        let mut headers: Vec<(String, String)> = vec![("host".into(), host.clone())];
        headers.extend(self.headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let signed: Vec<(String, String)> = headers
            .iter()
            .cloned()
            .chain(
                self.signed_not_sent
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone())),
            )
            .collect();
        headers.extend(
            self.unsigned_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone())),
        );
        let signable = SignableRequest::new(
            self.method,
            url.as_str(),
            signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            if unsigned_payload {
                SignableBody::UnsignedPayload
            } else {
                SignableBody::Bytes(self.body)
            },
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut text = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (k, v) in &headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in instructions.headers() {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            self.declared_len.unwrap_or(self.body.len())
        ));
        text
    }
}

pub fn status_of(response: &str) -> u16 {
    response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// SigV4 settings as S3 uses them: paths signed as sent, payload hash in a header.
pub fn s3_signing_settings() -> aws_sigv4::http_request::SigningSettings {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SigningSettings, UriPathNormalizationMode,
    };
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings
}

/// A fresh server with one bucket, and a client for it.
pub async fn server_with_bucket(bucket: &str) -> (Server, aws_sdk_s3::Client) {
    let server = Server::start();
    let client = server.client();
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    (server, client)
}

/// A CA and one node certificate it signed, for node-to-node mutual TLS.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A new CA (`name`) and a node certificate it signed, valid for `names` (IP addresses or
/// host names), written as PEM files under `dir`.
pub fn make_pki(dir: &Path, name: &str, names: &[&str]) -> Pki {
    std::fs::create_dir_all(dir).expect("pki dir");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let node_key = rcgen::KeyPair::generate().expect("node key");
    let node_params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("node params");
    let node_cert = node_params
        .signed_by(&node_key, &ca_cert, &ca_key)
        .expect("node certificate");
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-node.pem")),
        key: dir.join(format!("{name}-node.key")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&pki.cert, node_cert.pem()).expect("write cert");
    std::fs::write(&pki.key, node_key.serialize_pem()).expect("write key");
    pki
}

/// The `--cluster-tls-*` flags for `pki`, with its files at `root` (a mount point in a
/// container) or where they are.
pub fn tls_flags_at(pki: &Pki, root: Option<&Path>) -> Vec<String> {
    let at = |p: &Path| match root {
        Some(root) => root
            .join(p.file_name().expect("file name"))
            .display()
            .to_string(),
        None => p.display().to_string(),
    };
    vec![
        "--cluster-tls-cert".into(),
        at(&pki.cert),
        "--cluster-tls-key".into(),
        at(&pki.key),
        "--cluster-tls-ca".into(),
        at(&pki.ca),
    ]
}

pub fn tls_flags(pki: &Pki) -> Vec<String> {
    tls_flags_at(pki, None)
}

/// GETs every object of `bucket` in `objects` and checks its bytes; prints how long it took.
pub async fn read_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    objects: &[(String, Vec<u8>)],
    what: &str,
) {
    let started = std::time::Instant::now();
    for (key, body) in objects {
        let got = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: GET {key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{what}: body of {key}: {e:?}"))
            .into_bytes();
        assert_eq!(&got[..], &body[..], "{what}: {key} reads back");
    }
    eprintln!(
        "{what}: {} objects read back in {:.1?}",
        objects.len(),
        started.elapsed()
    );
}

/// Flags of a coordinating node striping `ec:3+2` (64 KiB chunks) over its own drive and the
/// remote drives at `urls`, over mutual TLS with `pki`.
pub fn coordinator_flags(pki: &Pki, urls: &[String], secret: &str) -> Vec<String> {
    let mut flags = tls_flags(pki);
    for url in urls {
        flags.extend(["--data".to_owned(), url.clone()]);
    }
    flags.extend(
        [
            "--cluster-secret",
            secret,
            "--redundancy",
            "ec:3+2",
            "--chunk-size",
            "65536",
        ]
        .map(str::to_owned),
    );
    flags
}
