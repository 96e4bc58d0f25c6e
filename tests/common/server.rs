//! A loopback world for network tests: a local copy of the Arch Linux Archive
//! (tests/fixtures/make-archive.sh), served by a real nginx over HTTPS and plain HTTP with a
//! private CA, and a TCP proxy that cuts or stalls connections on purpose.
//!
//! Everything listens on 127.0.0.1 only. Servers are child processes killed on drop and also
//! tied to the test process (they die with it even if it is killed).

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Cmd;

// ---------------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------------

/// A private CA and a server certificate it signed (EC P-256, made with the `openssl` CLI).
pub struct Tls {
    /// The directory holding every file below.
    pub dir: PathBuf,
    /// The CA certificate (PEM): what `--ca-file` should be given. CA:TRUE, self-signed.
    pub ca: PathBuf,
    /// The CA's private key (PEM), for tests that sign more certificates.
    pub ca_key: PathBuf,
    /// The server certificate (PEM): CA:FALSE, SAN `DNS:localhost, IP:127.0.0.1`, serverAuth.
    pub cert: PathBuf,
    /// The server certificate's private key (PEM).
    pub key: PathBuf,
    /// An unrelated CA certificate (PEM) that did not sign `cert`: the "wrong CA".
    pub other_ca: PathBuf,
}

/// The TLS material, made once per test process in `CARGO_TARGET_TMPDIR/tls-<pid>/` (the
/// directories of test processes that are gone are removed).
pub fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_tls_dirs(&tmp);
        let dir = tmp.join(format!("tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the TLS directory");
        let tls = Tls {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            other_ca: dir.join("other-ca.pem"),
            dir,
        };
        make_ca(&tls.dir, "rtool test CA", &tls.ca, &tls.ca_key);
        make_ca(
            &tls.dir,
            "rtool unrelated CA",
            &tls.other_ca,
            &tls.dir.join("other-ca.key"),
        );
        let csr = tls.dir.join("server.csr");
        openssl(&[
            "req".as_ref(),
            "-new".as_ref(),
            "-newkey".as_ref(),
            "ec".as_ref(),
            "-pkeyopt".as_ref(),
            "ec_paramgen_curve:P-256".as_ref(),
            "-nodes".as_ref(),
            "-subj".as_ref(),
            "/CN=localhost".as_ref(),
            "-keyout".as_ref(),
            tls.key.as_os_str(),
            "-out".as_ref(),
            csr.as_os_str(),
        ]);
        let ext = tls.dir.join("server.ext");
        fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n",
        )
        .expect("write server.ext");
        openssl(&[
            "x509".as_ref(),
            "-req".as_ref(),
            "-in".as_ref(),
            csr.as_os_str(),
            "-CA".as_ref(),
            tls.ca.as_os_str(),
            "-CAkey".as_ref(),
            tls.ca_key.as_os_str(),
            "-set_serial".as_ref(),
            "2".as_ref(),
            "-days".as_ref(),
            "3650".as_ref(),
            "-sha256".as_ref(),
            "-extfile".as_ref(),
            ext.as_os_str(),
            "-out".as_ref(),
            tls.cert.as_os_str(),
        ]);
        tls
    })
}

fn make_ca(dir: &Path, cn: &str, cert: &Path, key: &Path) {
    let cnf = dir.join("ca.cnf");
    // A config of our own: the system one would add its own (duplicate) extensions.
    fs::write(
        &cnf,
        "[req]\ndistinguished_name=dn\nx509_extensions=v3_ca\nprompt=no\n[dn]\n\
         [v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\n",
    )
    .expect("write ca.cnf");
    openssl(&[
        "req".as_ref(),
        "-x509".as_ref(),
        "-config".as_ref(),
        cnf.as_os_str(),
        "-newkey".as_ref(),
        "ec".as_ref(),
        "-pkeyopt".as_ref(),
        "ec_paramgen_curve:P-256".as_ref(),
        "-nodes".as_ref(),
        "-days".as_ref(),
        "3650".as_ref(),
        "-subj".as_ref(),
        format!("/CN={cn}").as_ref(),
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
}

fn openssl(args: &[&std::ffi::OsStr]) {
    Cmd::new("openssl").args(args).run().success();
}

fn remove_stale_tls_dirs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("tls-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes tied to the test process
// ---------------------------------------------------------------------------------------------

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that it gets SIGKILL when the test process dies. PR_SET_PDEATHSIG fires
/// when the *thread* that forked exits, so every such child is forked by one thread that lives
/// as long as the process (cargo's test threads come and go).
fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let tx = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnJob>();
            thread::Builder::new()
                .name("rtool-test-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("start the spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.send((cmd, reply_tx)).expect("spawner thread is alive");
    reply_rx.recv().expect("spawner thread answers")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A host name that never resolves (RFC 6761 reserves `.invalid`), and how long this
/// machine's own resolver takes to say so: a client that gives up at the first answer takes
/// about as long, one that retries takes seconds more.
pub fn unresolvable_host() -> (&'static str, Duration) {
    use std::net::ToSocketAddrs;
    let host = "nonexistent.invalid";
    let t = Instant::now();
    let resolved = (host, 443).to_socket_addrs();
    assert!(
        resolved.is_err(),
        "{host} resolved: this machine's resolver answers for any name"
    );
    (host, t.elapsed())
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// A real nginx serving `root` like archive.archlinux.org does (`autoindex on;
/// autoindex_exact_size off;`, HTML listings), over HTTPS (`port`, certificate from [`tls`])
/// and plain HTTP (`http_port`), on 127.0.0.1. Killed on drop.
pub struct Nginx {
    /// The HTTPS port.
    pub port: u16,
    /// The plain-HTTP port.
    pub http_port: u16,
    /// The document root.
    pub root: PathBuf,
    /// The prefix directory: nginx.conf, nginx.pid, error.log, access.log, temp paths.
    pub dir: PathBuf,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on `root`. `extra_locations` is raw nginx configuration inserted into both
    /// server blocks (HTTPS and HTTP), e.g. `location /redir/ { return 302 /packages/…; }` or
    /// `location /slow/ { alias /…/; limit_rate 10k; }`. Redirects are sent with relative
    /// `Location`s (`absolute_redirect off`), so they stay correct behind a [`FaultProxy`].
    /// Panics (with the error log) unless nginx accepts connections within about 5 seconds.
    pub fn start(root: &Path, extra_locations: &str) -> Nginx {
        let tls = tls();
        let root =
            fs::canonicalize(root).unwrap_or_else(|e| panic!("nginx root {}: {e}", root.display()));
        let mut last_log = String::new();
        for _attempt in 0..8 {
            let tmp = tempfile::Builder::new()
                .prefix("rtool-nginx-")
                .tempdir()
                .expect("nginx tempdir");
            let dir = tmp.path().to_path_buf();
            fs::create_dir_all(dir.join("tmp")).expect("nginx temp dir");
            let (port, http_port) = (free_port(), free_port());
            if port == http_port {
                continue;
            }
            let conf = nginx_conf(&dir, &root, tls, port, http_port, extra_locations);
            fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
            let errlog = dir.join("error.log");
            let mut cmd = Command::new(nginx_bin());
            cmd.arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(&errlog)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = spawn_tied(cmd).expect("spawn nginx (apt-get install nginx)");
            match wait_ready(&mut child, &dir, &[port, http_port]) {
                Ok(()) => {
                    return Nginx {
                        port,
                        http_port,
                        root,
                        dir,
                        child,
                        _tmp: tmp,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = format!(
                        "{why}\n--- nginx.conf\n{}\n--- error.log\n{}",
                        fs::read_to_string(dir.join("nginx.conf")).unwrap_or_default(),
                        fs::read_to_string(&errlog).unwrap_or_default()
                    );
                    // Another test took one of our ports between probe and bind: try others.
                    if !last_log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("nginx did not start: {last_log}");
    }

    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:HTTP_PORT` (no trailing slash).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The access log so far, one request per line:
    /// `ADDR [TIME] "REQUEST" STATUS BODY_BYTES range="RANGE" ua="USER_AGENT" scheme=SCHEME`.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// The access log once it contains `needle`, or after about 3 seconds whatever it holds
    /// (nginx writes a request's line after sending the response, so a client can finish
    /// first).
    pub fn wait_access_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.access_log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The error log so far (level `info`).
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

fn nginx_conf(
    dir: &Path,
    root: &Path,
    tls: &Tls,
    port: u16,
    http_port: u16,
    extra: &str,
) -> String {
    let d = dir.display();
    let server = |listen: String, ssl: &str| {
        format!(
            r#"
    server {{
        listen {listen};
        server_name localhost 127.0.0.1;
{ssl}
        root "{root}";
        autoindex on;
        autoindex_exact_size off;

        # --- extra locations
{extra}
        # --- end of extra locations
    }}
"#,
            root = root.display()
        )
    };
    let ssl = format!(
        "        ssl_certificate \"{}\";\n        ssl_certificate_key \"{}\";\n",
        tls.cert.display(),
        tls.key.display()
    );
    format!(
        r#"# generated by tests/common/server.rs
daemon off;
master_process off;
worker_processes 1;
pid "{d}/nginx.pid";
error_log "{d}/error.log" info;

events {{
    worker_connections 512;
}}

http {{
    types {{
        text/html html htm;
        text/plain txt;
    }}
    default_type application/octet-stream;
    log_format rtool '$remote_addr [$time_local] "$request" $status $body_bytes_sent range="$http_range" ua="$http_user_agent" scheme=$scheme';
    access_log "{d}/access.log" rtool;
    client_body_temp_path "{d}/tmp/body";
    proxy_temp_path "{d}/tmp/proxy";
    fastcgi_temp_path "{d}/tmp/fastcgi";
    uwsgi_temp_path "{d}/tmp/uwsgi";
    scgi_temp_path "{d}/tmp/scgi";
    sendfile on;
    keepalive_timeout 30s;
    absolute_redirect off;
{https}{http}}}
"#,
        https = server(format!("127.0.0.1:{port} ssl"), &ssl),
        http = server(format!("127.0.0.1:{http_port}"), ""),
    )
}

/// Ready when nginx wrote its pid file (it does so after binding its sockets) and every port
/// accepts a TCP connection.
fn wait_ready(child: &mut Child, dir: &Path, ports: &[u16]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let pid = child.id().to_string();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Err(format!("nginx exited early ({st})")),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for nginx: {e}")),
        }
        let pid_ok = fs::read_to_string(dir.join("nginx.pid"))
            .map(|s| s.trim() == pid)
            .unwrap_or(false);
        if pid_ok
            && ports.iter().all(|p| {
                TcpStream::connect_timeout(&([127, 0, 0, 1], *p).into(), Duration::from_millis(200))
                    .is_ok()
            })
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("nginx did not accept connections within 5 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Fault-injecting TCP proxy
// ---------------------------------------------------------------------------------------------

/// What a [`FaultProxy`] does to its connections. Byte counts are of the server→client stream,
/// TLS handshake included when the upstream is the HTTPS port: the server's handshake flight
/// is about 0.9 KiB (so `StallAfter(0)` stalls the handshake itself), and nginx sends the
/// response in 16 KiB TLS records, so a client decrypts nothing of a record that is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Forward the first n bytes of every connection, then close both sides.
    CutAfter(usize),
    /// Like `CutAfter(n)` for the first connection only; later ones pass.
    CutFirst(usize),
    /// Forward the first n bytes, then nothing more, keeping the connection open until the
    /// proxy is dropped.
    StallAfter(usize),
}

/// A raw TCP proxy on 127.0.0.1 in front of `127.0.0.1:upstream_port`; TLS passes through
/// unchanged, so `https://127.0.0.1:<proxy port>` still matches the certificate. Stops on drop
/// (every thread it started is joined, within about a second).
pub struct FaultProxy {
    /// The port clients connect to.
    pub port: u16,
    /// The port connections are forwarded to.
    pub upstream_port: u16,
    fault: Arc<Mutex<Fault>>,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const TICK: Duration = Duration::from_millis(50);

impl FaultProxy {
    pub fn start(upstream_port: u16, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let fault = Arc::new(Mutex::new(fault));
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (fault, conns, stop) = (fault.clone(), conns.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || accept_loop(listener, upstream_port, fault, conns, stop))
                .expect("start the proxy thread")
        };
        FaultProxy {
            port,
            upstream_port,
            fault,
            conns,
            stop,
            thread: Some(thread),
        }
    }

    /// Changes the fault for connections accepted from now on (`CutFirst` still counts from
    /// the proxy's first connection).
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// How many client connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// `https://127.0.0.1:PORT` (for an HTTPS upstream).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (for a plain-HTTP upstream).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream_port: u16,
    fault: Arc<Mutex<Fault>>,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let index = conns.fetch_add(1, Ordering::SeqCst);
                let limit = match *fault.lock().unwrap_or_else(|e| e.into_inner()) {
                    Fault::Pass => Limit::None,
                    Fault::CutAfter(n) => Limit::Cut(n),
                    Fault::CutFirst(n) if index == 0 => Limit::Cut(n),
                    Fault::CutFirst(_) => Limit::None,
                    Fault::StallAfter(n) => Limit::Stall(n),
                };
                let stop = stop.clone();
                if let Ok(t) = thread::Builder::new()
                    .name(format!("fault-proxy-conn-{index}"))
                    .spawn(move || relay(client, upstream_port, limit, stop))
                {
                    workers.push(t);
                }
                workers.retain(|t| !t.is_finished());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    for t in workers {
        let _ = t.join();
    }
}

#[derive(Clone, Copy)]
enum Limit {
    None,
    Cut(usize),
    Stall(usize),
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Writes all of `data` unless the peer fails or the proxy stops. Returns false if not.
fn send_all(to: &mut TcpStream, data: &[u8], stop: &AtomicBool) -> bool {
    let mut off = 0;
    while off < data.len() {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match to.write(&data[off..]) {
            Ok(0) => return false,
            Ok(k) => off += k,
            Err(e) if timed_out(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

fn relay(client: TcpStream, upstream_port: u16, limit: Limit, stop: Arc<AtomicBool>) {
    let upstream = match TcpStream::connect_timeout(
        &([127, 0, 0, 1], upstream_port).into(),
        Duration::from_secs(2),
    ) {
        Ok(s) => s,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    for s in [&client, &upstream] {
        let _ = s.set_nonblocking(false);
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(TICK));
        let _ = s.set_write_timeout(Some(TICK));
    }
    let (Ok(mut c_read), Ok(mut u_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    // client → server: always forwarded.
    let up = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                match c_read.read(&mut buf) {
                    Ok(0) => {
                        let _ = u_write.shutdown(Shutdown::Write);
                        return;
                    }
                    Ok(k) => {
                        if !send_all(&mut u_write, &buf[..k], &stop) {
                            return;
                        }
                    }
                    Err(e) if timed_out(&e) => {}
                    Err(_) => return,
                }
            }
        })
    };
    // server → client: forwarded up to the limit.
    let (mut c_write, mut u_read) = (client, upstream);
    let budget = match limit {
        Limit::None => usize::MAX,
        Limit::Cut(n) | Limit::Stall(n) => n,
    };
    let mut sent = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut upstream_eof = false;
    let mut failed = false;
    while !stop.load(Ordering::SeqCst) && sent < budget {
        match u_read.read(&mut buf) {
            Ok(0) => {
                upstream_eof = true;
                break;
            }
            Ok(k) => {
                let k = k.min(budget - sent);
                if !send_all(&mut c_write, &buf[..k], &stop) {
                    failed = true;
                    break;
                }
                sent += k;
            }
            Err(e) if timed_out(&e) => {}
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if upstream_eof {
        // Everything passed: half-close, and let the client close when it likes.
        let _ = c_write.shutdown(Shutdown::Write);
        let _ = up.join();
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = u_read.shutdown(Shutdown::Both);
        return;
    } else if !failed && matches!(limit, Limit::Stall(_)) {
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(TICK);
        }
    }
    // Cut (or stopped, or failed): close both sides at once.
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = u_read.shutdown(Shutdown::Both);
    let _ = up.join();
}

// ---------------------------------------------------------------------------------------------
// The archive
// ---------------------------------------------------------------------------------------------

/// The local archive built by tests/fixtures/make-archive.sh, made once (kept between runs)
/// in `CARGO_TARGET_TMPDIR/archive`. Serve `archive().join("root")`.
pub fn archive() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join("archive");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-archive.sh");
        // Concurrent test binaries build into the same place: one at a time.
        fs::create_dir_all(&tmp).expect("archive dir");
        let lock = super::lock(&tmp.join("archive.lock"));
        if !dir.join(".done").exists() {
            Cmd::new("bash").arg(script).arg(&dir).run().success();
        }
        drop(lock);
        dir
    })
}

/// The served tree: `archive()/root`.
pub fn archive_root() -> PathBuf {
    archive().join("root")
}

/// The sha256 (lower-case hex) of `root/big/blob-1.0-1-x86_64.pkg.tar.zst`.
pub fn big_sha256() -> String {
    let s = fs::read_to_string(archive().join("big.sha256")).expect("read big.sha256");
    s.split_whitespace()
        .next()
        .expect("big.sha256 is empty")
        .to_string()
}

/// The fingerprints (40 upper-case hex digits) of the archive's keys.
pub struct Keys {
    /// The 3 main keys, listed in `keyring/archlinux-trusted`.
    pub main: [String; 3],
    /// "Test Packager <packager@rtool.invalid>", certified by all 3 main keys.
    pub packager: String,
    /// "Untrusted Packager <untrusted@rtool.invalid>", certified by main key 1 only.
    pub untrusted: String,
    /// "Revoked Packager <revoked@rtool.invalid>", certified by all 3 main keys, listed in
    /// `keyring/archlinux-revoked`.
    pub revoked: String,
}

/// The archive's key fingerprints (from `archive()/keys.env`).
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let text = fs::read_to_string(archive().join("keys.env")).expect("read keys.env");
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("keys.env lacks {k}"))
                .to_string()
        };
        Keys {
            main: [get("KEY_MAIN1"), get("KEY_MAIN2"), get("KEY_MAIN3")],
            packager: get("KEY_PACKAGER"),
            untrusted: get("KEY_UNTRUSTED"),
            revoked: get("KEY_REVOKED"),
        }
    })
}
