//! HTTPS downloads that survive a rescue: verified TLS (built-in Mozilla roots, or a CA file),
//! proxies from the environment, bounded redirects, connect and per-read timeouts but never a
//! total one, retries with backoff, and resume of `NAME.part` with `Range`. A name that does
//! not resolve fails at once: a retry seconds later finds the network just as absent.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::{StatusCode, Uri};
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::error::{Error, Kind, Result};
use crate::hash::Digester;
use crate::progress::{Mode, Progress};

#[derive(Clone, Debug)]
pub struct Options {
    /// Replaces the built-in roots (`--ca-file`).
    pub ca_file: Option<std::path::PathBuf>,
    /// How long a read may wait for data before the transfer counts as stalled.
    pub read_timeout: Duration,
    /// Attempts after the first, with backoff, for failures that may pass.
    pub retries: u32,
    /// The first backoff; it doubles on each retry (capped at 8 s).
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ca_file: None,
            read_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A host name that did not resolve: no network, no DNS server, or a mistyped mirror. None of
/// these passes in the seconds a retry waits, so it is never retried, and a caller can say
/// what to do instead.
#[derive(Debug)]
pub struct Unresolved {
    /// The name asked for (the proxy's, when the request goes through one).
    pub host: String,
    /// The resolver's words ("Name does not resolve").
    detail: String,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Unresolved {}

/// A server's answer that is not a success.
#[derive(Debug)]
pub struct Status(pub StatusCode);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (HTTP {})",
            self.0.canonical_reason().unwrap_or("error"),
            self.0.as_u16()
        )
    }
}

impl std::error::Error for Status {}

/// What a name that did not resolve calls for, wherever the network is used.
pub const UNRESOLVED_HINT: &str = "no name resolution, so probably no network: `rtool doctor` shows the links and their addresses; an Intel X520 refusing a third-party SFP+ comes up with `rtool sfp-unlock`";

pub struct Client {
    agent: ureq::Agent,
    opts: Options,
    /// Told about retries, so the applet can say what is happening.
    notify: Box<dyn Fn(&str) + Send + Sync>,
}

/// The outcome of a download; the digest it was given has seen every byte of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: u64,
    /// Bytes that were already in `.part` and not fetched again.
    pub resumed_from: u64,
}

/// The caller's digest and how many of the file's first bytes it has seen, across attempts:
/// a retry that resumes where the last one broke feeds it nothing twice.
struct Fed<'a> {
    digest: &'a mut dyn Digester,
    len: u64,
}

impl Fed<'_> {
    fn consume(&mut self, bytes: &[u8]) {
        self.digest.consume(bytes);
        self.len += bytes.len() as u64;
    }

    /// Brings the digest to exactly the first `upto` bytes of `file`, reading only what it
    /// has not seen (all of a `.part` left by an earlier run, none after a broken transfer).
    fn catch_up(&mut self, file: &mut File, upto: u64) -> io::Result<()> {
        if self.len > upto {
            self.digest.restart();
            self.len = 0;
        }
        if self.len < upto {
            file.seek(io::SeekFrom::Start(self.len))?;
            let n = crate::hash::update_from(
                self.digest,
                (&*file).take(upto - self.len),
                &mut vec![0u8; CHUNK],
            )?;
            self.len += n;
            if self.len != upto {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the partial download shrank while it was read",
                ));
            }
        }
        Ok(())
    }
}

/// Bytes handed from the network thread to the writing thread at a time.
const CHUNK: usize = 256 << 10;

const USER_AGENT: &str = concat!("rtool/", env!("CARGO_PKG_VERSION"));

fn load_roots(path: &Path) -> Result<RootCerts> {
    let pem =
        std::fs::read(path).map_err(|e| Error::path(e, path).context("reading the CA file"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::invalid(format!(
                    "{}: not a PEM certificate file",
                    path.display()
                ))
                .with_source(e))
            }
        }
    }
    // rustls would skip what it cannot parse and then fail every connection: say it now.
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no certificate in this file",
            path.display()
        )));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

impl Client {
    pub fn new(opts: Options) -> Result<Client> {
        let mut tls = TlsConfig::builder()
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
        if let Some(ca) = &opts.ca_file {
            tls = tls.root_certs(load_roots(ca)?);
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .max_redirects(10)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(opts.read_timeout.max(Duration::from_secs(1))))
            .timeout_per_read(Some(opts.read_timeout))
            .build()
            .new_agent();
        Ok(Client {
            agent,
            opts,
            notify: Box::new(|_| {}),
        })
    }

    /// Where messages about retries go (nowhere by default).
    pub fn on_retry(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Client {
        self.notify = Box::new(f);
        self
    }

    /// A failed request as an error that says what to do; a name that did not resolve names
    /// the host (or the proxy) and carries [`Unresolved`].
    fn net_error(&self, url: &str, e: ureq::Error) -> Error {
        if let Some(detail) = resolver_failure(&e) {
            let uri: Option<Uri> = url.parse().ok();
            let proxy = self
                .agent
                .config()
                .proxy()
                .filter(|p| uri.as_ref().is_some_and(|u| !p.is_no_proxy(u)));
            let (host, what) = match proxy {
                Some(p) => (p.host().to_string(), "the proxy's host name"),
                None => (
                    uri.as_ref().and_then(Uri::host).unwrap_or(url).to_string(),
                    "the host name",
                ),
            };
            return Error::new(
                Kind::Network,
                format!("{url}: cannot resolve {what} {host}"),
            )
            .with_source(Unresolved { host, detail })
            .hint(UNRESOLVED_HINT);
        }
        let text = e.to_string();
        let err = Error::new(Kind::Network, format!("{url}: {text}"));
        if text.contains("certificate") || text.contains("UnknownIssuer") {
            err.hint("the server's certificate is not trusted: for a private mirror, pass its CA with --ca-file PEM")
        } else if matches!(e, ureq::Error::Timeout(_)) {
            err.hint("the server stopped sending: check the network, or raise --timeout")
        } else {
            err
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        (self.opts.backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(8))
    }

    /// A small resource (listing, signature, database) in memory; `None` on 404.
    pub fn get_small(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let mut attempt = 0;
        loop {
            match self.try_get_small(url, limit) {
                Err(e) if retryable(&e) && attempt < self.opts.retries => {
                    (self.notify)(&format!(
                        "{e}; retrying in {} s",
                        self.backoff(attempt).as_secs_f32()
                    ));
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn try_get_small(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let mut resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| self.net_error(url, e))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            s => return Err(status_error(url, s)),
        }
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|e| {
                Error::new(Kind::Network, format!("{url}: the transfer broke")).with_source(e)
            })?;
        if body.len() as u64 > limit {
            return Err(Error::invalid(format!(
                "{url}: larger than the {limit} bytes expected"
            )));
        }
        Ok(Some(body))
    }

    /// Downloads `url` into `part`, resuming what is already there, retrying what may pass.
    /// Every byte of the file goes once, in order, to `digest` (a resumed `.part` is read for
    /// it first). On success `part` holds the whole file (the caller renames it into place)
    /// and `digest` has seen exactly that file.
    pub fn download(
        &self,
        url: &str,
        part: &Path,
        label: &str,
        mode: Mode,
        digest: &mut dyn Digester,
    ) -> Result<Downloaded> {
        let mut attempt = 0;
        let mut restarted = false;
        let mut fed = Fed { digest, len: 0 };
        loop {
            match self.try_download(url, part, label, mode, &mut restarted, &mut fed) {
                Err(e) if retryable(&e) && attempt < self.opts.retries => {
                    eprintln!(
                        "{label}: {e}; retrying in {} s",
                        self.backoff(attempt).as_secs_f32()
                    );
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn try_download(
        &self,
        url: &str,
        part: &Path,
        label: &str,
        mode: Mode,
        restarted: &mut bool,
        fed: &mut Fed<'_>,
    ) -> Result<Downloaded> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(part)
            .map_err(|e| Error::path(e, part))?;
        let have = file.metadata().map_err(|e| Error::path(e, part))?.len();
        let mut req = self.agent.get(url);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let mut resp = req.call().map_err(|e| self.net_error(url, e))?;
        let status = resp.status();
        let content_range = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (start, total) = match status {
            StatusCode::OK => {
                // The server ignored the range (or there was none): start over.
                file.set_len(0).map_err(|e| Error::path(e, part))?;
                (0, resp.body().content_length())
            }
            StatusCode::PARTIAL_CONTENT => {
                let (from, total) =
                    parse_content_range(content_range.as_deref()).ok_or_else(|| {
                        Error::new(
                            Kind::Network,
                            format!("{url}: a partial answer without a usable Content-Range"),
                        )
                    })?;
                if from != have {
                    return Err(Error::new(
                        Kind::Network,
                        format!("{url}: asked to resume at byte {have}, the server answered from byte {from}"),
                    ));
                }
                (have, total)
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let total = content_range
                    .as_deref()
                    .and_then(|c| c.strip_prefix("bytes */"))
                    .and_then(|t| t.trim().parse::<u64>().ok());
                if total == Some(have) {
                    // Already complete.
                    fed.catch_up(&mut file, have)
                        .map_err(|e| Error::path(e, part))?;
                    return Ok(Downloaded {
                        bytes: have,
                        resumed_from: have,
                    });
                }
                if *restarted {
                    return Err(Error::new(
                        Kind::Network,
                        format!("{url}: the server refuses every range"),
                    ));
                }
                *restarted = true;
                file.set_len(0).map_err(|e| Error::path(e, part))?;
                return Err(Error::new(Kind::Network, format!("{url}: the partial download does not fit the file on the server; starting over")));
            }
            s => return Err(status_error(url, s)),
        };
        fed.catch_up(&mut file, start)
            .map_err(|e| Error::path(e, part))?;
        let expected = total.map(|t| {
            if status == StatusCode::PARTIAL_CONTENT {
                t
            } else {
                t + start
            }
        });
        let mut progress = Progress::bytes(label.to_string(), expected, mode);
        progress.set(start);
        let mut reader = resp.body_mut().as_reader();
        // Decryption here, hashing and writing on another core: the two halves cost about
        // the same, and one thread doing both halves the throughput.
        let (done, received, sink) = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(6);
            let file = &mut file;
            let writer = s.spawn(move || -> io::Result<()> {
                for chunk in rx {
                    file.write_all(&chunk)?;
                    fed.consume(&chunk);
                    let _ = back_tx.try_send(chunk);
                }
                Ok(())
            });
            let mut done = start;
            let mut received: io::Result<()> = Ok(());
            loop {
                let mut buf = back_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                buf.resize(CHUNK, 0);
                let mut filled = 0;
                while filled < CHUNK {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            received = Err(e);
                            break;
                        }
                    }
                }
                buf.truncate(filled);
                done += filled as u64;
                progress.set(done);
                let last = filled < CHUNK;
                // A failed send means the writer stopped: its own error says why.
                if (filled > 0 && tx.send(buf).is_err()) || last {
                    break;
                }
            }
            drop(tx);
            let sink = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writing thread failed")));
            (done, received, sink)
        });
        if let Err(e) = sink {
            progress.abandon();
            return Err(crate::sys::write_error(
                e,
                part,
                part,
                "; the partial download is kept for resuming (delete it to free the space)",
            ));
        }
        if let Err(e) = received {
            progress.abandon();
            let _ = file.sync_data();
            return Err(Error::new(
                Kind::Network,
                format!("{url}: the transfer broke after {done} bytes (kept for resuming)"),
            )
            .with_source(e));
        }
        if let Some(t) = expected {
            if done < t {
                progress.abandon();
                return Err(Error::new(
                    Kind::Network,
                    format!(
                        "{url}: the connection closed at byte {done} of {t} (kept for resuming)"
                    ),
                ));
            }
        }
        file.sync_all()
            .map_err(|e| crate::sys::write_error(e, part, part, ""))?;
        progress.finish();
        Ok(Downloaded {
            bytes: done,
            resumed_from: start,
        })
    }
}

/// `bytes 1000-4999/5000` → (1000, Some(5000)); `bytes 1000-4999/*` → (1000, None).
pub fn parse_content_range(v: Option<&str>) -> Option<(u64, Option<u64>)> {
    let rest = v?.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (from, to) = range.split_once('-')?;
    let from: u64 = from.trim().parse().ok()?;
    let to: u64 = to.trim().parse().ok()?;
    if to < from {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    Some((from, total))
}

/// Network failures that may pass on a second try (and only those): a reset or cut
/// connection, a timeout, a 5xx; never a refusal (4xx) nor a name that does not resolve.
fn retryable(e: &Error) -> bool {
    e.kind() == Kind::Network
        && e.cause::<Unresolved>().is_none()
        && !e.cause::<Status>().is_some_and(|s| s.0.is_client_error())
}

fn status_error(url: &str, s: StatusCode) -> Error {
    let e = Error::new(Kind::Network, url).with_source(Status(s));
    if s == StatusCode::NOT_FOUND {
        // A package file's URL names the package: its archived versions are one command away.
        let file = url.rsplit('/').next().unwrap_or_default();
        let file = file.strip_suffix(".sig").unwrap_or(file);
        match crate::pkg::name::parse(file) {
            Ok(p) => e.hint(format!(
                "the file is not on this mirror: check the version (`rtool fetch-pkg --list {}` shows the archived ones)",
                p.name
            )),
            Err(_) => e.hint("the file is not on this mirror: check the name and version"),
        }
    } else {
        e
    }
}

/// The resolver's words when `e` is a name that did not resolve: ureq's own "no address", or
/// the C library's `getaddrinfo` failure as the standard library words it.
fn resolver_failure(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::HostNotFound => Some("no address for this name".into()),
        ureq::Error::Io(io) => io
            .to_string()
            .strip_prefix("failed to lookup address information")
            .map(|d| d.trim_start_matches([':', ' ']).to_string())
            .map(|d| {
                if d.is_empty() {
                    "no address for this name".into()
                } else {
                    d
                }
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_not_on_the_mirror_is_named_in_the_hint() {
        let e = status_error(
            "https://archive.archlinux.org/packages/l/linux/linux-6.2.99.arch1-1-x86_64.pkg.tar.zst.sig",
            StatusCode::NOT_FOUND,
        );
        assert_eq!(
            e.hint_text(),
            Some("the file is not on this mirror: check the version (`rtool fetch-pkg --list linux` shows the archived ones)")
        );
        let e = status_error("https://example.org/listing/", StatusCode::NOT_FOUND);
        assert_eq!(
            e.hint_text(),
            Some("the file is not on this mirror: check the name and version")
        );
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range(Some("bytes 1000-4999999/5000000")),
            Some((1000, Some(5000000)))
        );
        assert_eq!(parse_content_range(Some("bytes 0-9/*")), Some((0, None)));
        assert_eq!(parse_content_range(Some("bytes */5000000")), None);
        assert_eq!(parse_content_range(Some("bytes 9-1/10")), None);
        assert_eq!(parse_content_range(None), None);
    }

    #[test]
    fn only_what_may_pass_is_retried() {
        let url = "https://mirror.example/x";
        assert!(retryable(&status_error(
            url,
            StatusCode::SERVICE_UNAVAILABLE
        )));
        assert!(!retryable(&status_error(url, StatusCode::FORBIDDEN)));
        assert!(retryable(&Error::new(Kind::Network, "connection reset")));
        assert!(!retryable(&Error::invalid("larger than expected")));
        let client = Client::new(Options::default()).unwrap();
        let reset = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(retryable(&client.net_error(url, reset)));
        let unresolved = ureq::Error::Io(io::Error::other(
            "failed to lookup address information: Name does not resolve",
        ));
        let e = client.net_error(url, unresolved);
        assert!(!retryable(&e));
        // Through a proxy from the environment, the name that failed is the proxy's.
        if client.agent.config().proxy().is_none() {
            assert_eq!(
                e.cause::<Unresolved>().map(|u| u.host.as_str()),
                Some("mirror.example")
            );
            assert_eq!(
                e.to_string(),
                "https://mirror.example/x: cannot resolve the host name mirror.example: Name does not resolve"
            );
        }
        assert!(e.hint_text().is_some_and(|h| h.contains("rtool doctor")));
        assert!(!retryable(
            &client.net_error(url, ureq::Error::HostNotFound)
        ));
    }

    #[test]
    fn a_status_reads_as_before() {
        assert_eq!(
            status_error("https://m/x", StatusCode::BAD_GATEWAY).to_string(),
            "https://m/x: Bad Gateway (HTTP 502)"
        );
    }

    /// The SHA-256 of `bytes`, for comparing with what a `Fed` digest saw.
    fn sum(bytes: &[u8]) -> String {
        crate::hash::sha256_hex(bytes).unwrap()
    }

    #[test]
    fn catch_up_reads_only_what_the_digest_has_not_seen() {
        use sha2::{Digest, Sha256};
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let mut h = Sha256::new();
        let mut fed = Fed {
            digest: &mut h,
            len: 0,
        };
        // A .part left by an earlier run: its prefix is read once.
        fed.catch_up(&mut file, 4000).unwrap();
        assert_eq!(fed.len, 4000);
        // A transfer that broke after more bytes arrived: only those are new.
        fed.consume(&bytes[4000..6000]);
        fed.catch_up(&mut file, 6000).unwrap();
        fed.catch_up(&mut file, 10_000).unwrap();
        assert_eq!(fed.len, 10_000);
        assert_eq!(crate::hash::hex(&h.finalize()), sum(&bytes));
    }

    #[test]
    fn catch_up_starts_over_when_the_file_did() {
        use sha2::{Digest, Sha256};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"new contents").unwrap();
        let mut h = Sha256::new();
        let mut fed = Fed {
            digest: &mut h,
            len: 0,
        };
        fed.consume(b"what the first attempt received, longer than the file");
        // The server ignored the range: the file was emptied and comes again from byte 0.
        fed.catch_up(&mut file, 0).unwrap();
        assert_eq!(fed.len, 0);
        fed.consume(b"new contents");
        assert_eq!(crate::hash::hex(&h.finalize()), sum(b"new contents"));
        // A .part shorter than the digest's count is refused, never half-hashed.
        let mut h2 = Sha256::new();
        let mut short = Fed {
            digest: &mut h2,
            len: 0,
        };
        assert!(short.catch_up(&mut file, 100).is_err());
    }
}
