//! `rtool pubkey` against keys made by the real ssh-keygen, fingerprints compared with
//! `ssh-keygen -lf`, sources served by a real nginx over TLS with a test CA, fake roots with
//! their own `/etc/passwd`, and hostile inputs that must leave authorized_keys untouched.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::server::{tls, Nginx};
use common::{bin, rtool, Cmd, Done, FakeRoot, NetNs};

/// Every key type, made once per test process: `NAME` (private) and `NAME.pub`, comment
/// `NAME@rtool-test`. The security-key types need a FIDO device to generate, so their lines
/// are built from the wire format (PROTOCOL.u2f) around real ed25519 and P-256 keys.
fn keys() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::Builder::new()
            .prefix("pubkey-keys-")
            .tempdir()
            .unwrap();
        for (name, ty, bits) in [
            ("ed25519", "ed25519", ""),
            ("ed25519-b", "ed25519", ""),
            ("ed25519-c", "ed25519", ""),
            ("rsa2048", "rsa", "2048"),
            ("rsa4096", "rsa", "4096"),
            ("rsa1024", "rsa", "1024"),
            ("ecdsa256", "ecdsa", "256"),
            ("ecdsa384", "ecdsa", "384"),
            ("ecdsa521", "ecdsa", "521"),
        ] {
            let mut c = Cmd::new("ssh-keygen").args(["-q", "-N", "", "-t", ty]);
            if !bits.is_empty() {
                c = c.args(["-b", bits]);
            }
            c.arg("-C")
                .arg(format!("{name}@rtool-test"))
                .arg("-f")
                .arg(d.path().join(name))
                .run()
                .success();
        }
        Cmd::new("python3")
            .args(["-c", SK_LINES])
            .arg(d.path())
            .run()
            .success();
        d
    })
    .path()
}

const SK_LINES: &str = r#"
import base64, struct, sys
d = sys.argv[1]
def s(b): return struct.pack('>I', len(b)) + b
def fields(path):
    blob = base64.b64decode(open(path).read().split()[1])
    out = []
    while blob:
        n = struct.unpack('>I', blob[:4])[0]
        out.append(blob[4:4 + n])
        blob = blob[4 + n:]
    return out
ed = fields(d + '/ed25519.pub')
ec = fields(d + '/ecdsa256.pub')
for name, t, body in [
    ('sk-ed25519', b'sk-ssh-ed25519@openssh.com', s(ed[1]) + s(b'ssh:')),
    ('sk-ecdsa', b'sk-ecdsa-sha2-nistp256@openssh.com', s(b'nistp256') + s(ec[2]) + s(b'ssh:')),
]:
    line = '%s %s %s@rtool-test\n' % (t.decode(), base64.b64encode(s(t) + body).decode(), name)
    open('%s/%s.pub' % (d, name), 'w').write(line)
# A real ECDSA key whose point is moved off the curve (the last byte of y changed).
q = bytearray(ec[2]); q[-1] ^= 1
t = b'ecdsa-sha2-nistp256'
line = 'ecdsa-sha2-nistp256 %s offcurve\n' % base64.b64encode(s(t) + s(b'nistp256') + s(bytes(q))).decode()
open(d + '/offcurve.txt', 'w').write(line)
# A real key with one byte too many after its fields.
t = b'ssh-ed25519'
line = 'ssh-ed25519 %s trailing\n' % base64.b64encode(s(t) + s(ed[1]) + b'\0').decode()
open(d + '/trailing.txt', 'w').write(line)
"#;

fn key(name: &str) -> PathBuf {
    keys().join(format!("{name}.pub"))
}

/// The one line of `name.pub`, without its newline.
fn key_line(name: &str) -> String {
    fs::read_to_string(key(name))
        .unwrap()
        .trim_end()
        .to_string()
}

/// What `ssh-keygen -lf` prints for `path`, line by line.
fn keygen_l(path: &Path) -> Vec<String> {
    let out = Cmd::new("ssh-keygen").arg("-lf").arg(path).run().success();
    out.stdout().lines().map(String::from).collect()
}

/// A system root with root (home /root) and alice (1234:1235, home /home/alice).
fn target() -> FakeRoot {
    let r = FakeRoot::new();
    r.write(
        "/etc/passwd",
        "root:x:0:0::/root:/bin/bash\nalice:x:1234:1235:Alice:/home/alice:/bin/bash\n",
    )
    .mkdir("/root")
    .mkdir("/home/alice");
    r
}

/// `rtool pubkey --root R --user alice ARGS…` (the common options before the subcommand).
fn pubkey(r: &FakeRoot, args: &[&str]) -> Cmd {
    rtool(["pubkey", "--root"])
        .arg(r.path())
        .args(["--user", "alice"])
        .args(args)
}

fn add(r: &FakeRoot, sources: &[&OsStr]) -> Done {
    pubkey(r, &["add"]).args(sources).run()
}

fn alice_keys(r: &FakeRoot) -> PathBuf {
    r.at("/home/alice/.ssh/authorized_keys")
}

/// stdout lines `STATUS: FINGERPRINT-LINE`, split.
fn reported(d: &Done) -> Vec<(String, String)> {
    d.stdout()
        .lines()
        .map(|l| {
            let (s, rest) = l.split_once(": ").unwrap_or_else(|| panic!("{l}"));
            (s.to_string(), rest.to_string())
        })
        .collect()
}

/// Runs bash with `$RTOOL` set, for pipes into rtool.
fn sh(script: &str) -> Done {
    Cmd::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("RTOOL", bin())
        .run()
}

const ALL_TYPES: [&str; 8] = [
    "ed25519",
    "rsa2048",
    "rsa4096",
    "ecdsa256",
    "ecdsa384",
    "ecdsa521",
    "sk-ed25519",
    "sk-ecdsa",
];

#[test]
fn every_key_type_is_fingerprinted_exactly_as_ssh_keygen_does() {
    let r = target();
    let sources: Vec<PathBuf> = ALL_TYPES.iter().map(|n| key(n)).collect();
    let expected: Vec<String> = sources.iter().flat_map(|p| keygen_l(p)).collect();
    // ssh-keygen itself reads the hand-built security-key lines, with the types expected.
    assert!(
        expected[6].starts_with("256 SHA256:")
            && expected[6].ends_with(" sk-ed25519@rtool-test (ED25519-SK)"),
        "{expected:?}"
    );
    assert!(
        expected[7].starts_with("256 SHA256:")
            && expected[7].ends_with(" sk-ecdsa@rtool-test (ECDSA-SK)"),
        "{expected:?}"
    );
    assert!(
        expected[2].starts_with("4096 ") && expected[5].starts_with("521 "),
        "{expected:?}"
    );

    let sources: Vec<&OsStr> = sources.iter().map(|p| p.as_os_str()).collect();
    let done = add(&r, &sources).success();
    let got = reported(&done);
    assert_eq!(
        got.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(got.iter().all(|(s, _)| s == "added"), "{got:?}");

    // The file holds the lines as given, and both tools list it the same way.
    let file = alice_keys(&r);
    let lines: Vec<String> = ALL_TYPES.iter().map(|n| key_line(n)).collect();
    assert_eq!(fs::read_to_string(&file).unwrap(), lines.join("\n") + "\n");
    assert_eq!(keygen_l(&file), expected);
    let listed = pubkey(&r, &["list"]).run().success().stdout();
    assert_eq!(listed, expected.join("\n") + "\n");
}

#[test]
fn weak_rsa_is_refused_and_nothing_is_written_unless_skip_bad() {
    let r = target();
    let before = format!("{}\n", key_line("ed25519-b"));
    r.write("/home/alice/.ssh/authorized_keys", &before);
    let mixed = r.at("/tmp/mixed.pub");
    r.write(
        "/tmp/mixed.pub",
        format!("{}\n\n{}\n", key_line("ed25519"), key_line("rsa1024")),
    );
    add(&r, &[mixed.as_os_str()])
        .status(3)
        .stderr_has(&format!(
            "{} line 3: a 1024-bit RSA key is too weak",
            mixed.display()
        ))
        .stderr_has("nothing written")
        .stderr_has("--skip-bad");
    assert_eq!(fs::read_to_string(alice_keys(&r)).unwrap(), before);

    let done = pubkey(&r, &["add", "--skip-bad"])
        .arg(&mixed)
        .run()
        .success();
    assert!(
        done.stderr().contains("skipped") && done.stderr().contains("line 3"),
        "{}",
        done.stderr()
    );
    assert_eq!(
        reported(&done),
        [("added".to_string(), keygen_l(&key("ed25519"))[0].clone())]
    );
    assert_eq!(
        fs::read_to_string(alice_keys(&r)).unwrap(),
        format!("{before}{}\n", key_line("ed25519"))
    );
}

#[test]
fn https_source_is_fetched_with_verified_tls() {
    let served = tempfile::tempdir().unwrap();
    fs::write(
        served.path().join("me.keys"),
        format!("{}\n{}\n", key_line("ed25519"), key_line("ecdsa384")),
    )
    .unwrap();
    fs::write(
        served.path().join("index.html"),
        "<!DOCTYPE html>\n<html><body>Welcome</body></html>\n",
    )
    .unwrap();
    let n = Nginx::start(served.path(), "");
    let r = target();
    let url = format!("{}/me.keys", n.url());

    // The built-in roots do not know the test CA.
    pubkey(&r, &["add", &url])
        .run()
        .status(6)
        .stderr_has("--ca-file");
    assert!(!r.at("/home/alice/.ssh").exists());

    let done = pubkey(&r, &["add", "--ca-file"])
        .arg(&tls().ca)
        .arg(&url)
        .run()
        .success();
    let want: Vec<String> = [key("ed25519"), key("ecdsa384")]
        .iter()
        .flat_map(|p| keygen_l(p))
        .collect();
    assert_eq!(
        reported(&done)
            .into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(keygen_l(&alice_keys(&r)), want);

    // A web page where keys were expected, and a missing file.
    let before = fs::read(alice_keys(&r)).unwrap();
    pubkey(&r, &["add", "--ca-file"])
        .arg(&tls().ca)
        .arg(format!("{}/", n.url()))
        .run()
        .status(3)
        .stderr_has("line 1: an HTML or XML page");
    pubkey(&r, &["add", "--ca-file"])
        .arg(&tls().ca)
        .arg(format!("{}/nope.keys", n.url()))
        .run()
        .status(6)
        .stderr_has("not found (HTTP 404)");
    assert_eq!(fs::read(alice_keys(&r)).unwrap(), before);
}

#[test]
fn github_user_comes_from_the_overridable_base_url() {
    let served = tempfile::tempdir().unwrap();
    // GitHub serves bare keys, without comments.
    let bare = |n: &str| key_line(n).rsplit_once(' ').unwrap().0.to_string();
    fs::write(
        served.path().join("octo-cat.keys"),
        format!("{}\n{}\n", bare("ed25519-c"), bare("rsa2048")),
    )
    .unwrap();
    fs::write(served.path().join("empty.keys"), "").unwrap();
    let n = Nginx::start(served.path(), "");
    let r = target();
    let gh = |user: &str| {
        pubkey(&r, &["add", "--ca-file"])
            .arg(&tls().ca)
            .arg(format!("github:{user}"))
            .env("RTOOL_GITHUB_URL", format!("{}/", n.url()))
            .run()
    };
    let done = gh("octo-cat").success();
    let got: Vec<String> = reported(&done).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].ends_with(" no comment (ED25519)") && got[1].ends_with(" no comment (RSA)"),
        "{got:?}"
    );
    assert_eq!(keygen_l(&alice_keys(&r)), got);
    assert!(n
        .wait_access_log("octo-cat.keys")
        .contains("\"GET /octo-cat.keys HTTP/1.1\" 200"));

    gh("nobody")
        .status(6)
        .stderr_has("github:nobody: no GitHub user \"nobody\"");
    gh("empty")
        .status(3)
        .stderr_has("github:empty: no public key in it");
    gh("../etc/passwd")
        .status(2)
        .stderr_has("not a GitHub user name");
}

#[test]
fn plain_http_is_refused_without_insecure_and_loud_with_it() {
    let served = tempfile::tempdir().unwrap();
    fs::write(served.path().join("k.pub"), key_line("ed25519")).unwrap();
    let n = Nginx::start(served.path(), "");
    let r = target();
    let url = format!("{}/k.pub", n.http_url());
    pubkey(&r, &["add", &url])
        .run()
        .status(2)
        .stderr_has("plain http")
        .stderr_has("--insecure");
    assert!(
        !n.access_log().contains("k.pub"),
        "fetched before refusing:\n{}",
        n.access_log()
    );
    assert!(!r.at("/home/alice/.ssh").exists());

    let done = pubkey(&r, &["add", "--insecure", &url]).run().success();
    assert!(
        done.stderr().contains("warning: INSECURE"),
        "{}",
        done.stderr()
    );
    assert_eq!(keygen_l(&alice_keys(&r)), keygen_l(&key("ed25519")));
}

/// `.ssh` 0700 and `authorized_keys` 0600, both alice's (1234:1235).
#[track_caller]
fn assert_alice_owns_her_keys(r: &FakeRoot) {
    let ssh = fs::metadata(r.at("/home/alice/.ssh")).unwrap();
    let file = fs::metadata(alice_keys(r)).unwrap();
    assert_eq!(
        (ssh.mode() & 0o7777, ssh.uid(), ssh.gid()),
        (0o700, 1234, 1235)
    );
    assert_eq!(
        (file.mode() & 0o7777, file.uid(), file.gid()),
        (0o600, 1234, 1235)
    );
}

#[test]
fn modes_and_owner_follow_the_targets_passwd() {
    let r = target();
    fs::set_permissions(r.at("/home/alice"), fs::Permissions::from_mode(0o755)).unwrap();
    add(&r, &[key("ed25519").as_os_str()]).success();
    assert_alice_owns_her_keys(&r);
    // The home itself is left alone.
    let home = fs::metadata(r.at("/home/alice")).unwrap();
    assert_eq!((home.uid(), home.mode() & 0o777), (0, 0o755));

    // An existing .ssh with the wrong mode and owner is put right.
    let r = target();
    r.mkdir("/home/alice/.ssh");
    fs::set_permissions(r.at("/home/alice/.ssh"), fs::Permissions::from_mode(0o775)).unwrap();
    r.write("/home/alice/.ssh/authorized_keys", "");
    fs::set_permissions(alice_keys(&r), fs::Permissions::from_mode(0o644)).unwrap();
    add(&r, &[key("ed25519").as_os_str()]).success();
    assert_alice_owns_her_keys(&r);

    // The default user is root, whose home is /root.
    rtool(["pubkey", "add", "--root"])
        .arg(r.path())
        .arg(key("rsa2048"))
        .run()
        .success();
    let f = fs::metadata(r.at("/root/.ssh/authorized_keys")).unwrap();
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o600, 0, 0));

    // A group-writable home makes sshd ignore the keys: said, not silently accepted.
    fs::set_permissions(r.at("/home/alice"), fs::Permissions::from_mode(0o775)).unwrap();
    add(&r, &[key("ecdsa256").as_os_str()])
        .success()
        .stderr_has("writable by group or others");
}

#[test]
fn unknown_user_or_missing_home_stop_before_anything() {
    let r = target();
    rtool(["pubkey", "add", "--user", "bob", "--root"])
        .arg(r.path())
        .arg(key("ed25519"))
        .run()
        .status(7)
        .stderr_has("no user \"bob\" in");
    fs::remove_dir(r.at("/home/alice")).unwrap();
    add(&r, &[key("ed25519").as_os_str()])
        .status(7)
        .stderr_has("alice's home directory")
        .stderr_has("mkdir -m 700");
    assert!(!r.at("/home/alice").exists());
}

#[test]
fn a_key_already_there_is_not_added_twice_whatever_its_text() {
    let r = target();
    // The same key with options and another comment, and lines rtool does not understand.
    let ed = key_line("ed25519");
    let body = ed.split(' ').nth(1).unwrap();
    let before = format!(
        "# my keys\r\nno-pty ssh-ed25519 {body} old comment\n\nssh-dss AAAAB3NzaC1kc3MAAACBAP== dsa\n{}",
        key_line("rsa2048")
    );
    r.write("/home/alice/.ssh/authorized_keys", &before);
    let twice = r.at("/tmp/twice.pub");
    r.write(
        "/tmp/twice.pub",
        format!("{ed}\n{}\n{}\n", key_line("ecdsa256"), key_line("ecdsa256")),
    );
    let done = add(&r, &[twice.as_os_str(), key("rsa2048").as_os_str()]).success();
    let status: Vec<String> = reported(&done).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        status,
        ["already there", "added", "listed twice", "already there"]
    );
    // What was there is kept byte for byte; the missing final newline is supplied.
    assert_eq!(
        fs::read_to_string(alice_keys(&r)).unwrap(),
        format!("{before}\n{}\n", key_line("ecdsa256"))
    );
    let again = add(&r, &[twice.as_os_str()]).success();
    assert!(reported(&again).iter().all(|(s, _)| s != "added"));
    assert!(
        again.stderr().contains("nothing to add"),
        "{}",
        again.stderr()
    );
}

#[test]
fn options_prefix_with_quoted_spaces_and_commas() {
    let r = target();
    let ed = key_line("ed25519");
    let line =
        format!(r#"from="10.0.0.1,192.168.0.0/16",command="echo \"hi, there\"",no-pty {ed}"#);
    r.write("/tmp/opts.pub", format!("{line}\n"));
    let done = add(&r, &[r.at("/tmp/opts.pub").as_os_str()]).success();
    assert_eq!(reported(&done)[0].1, keygen_l(&r.at("/tmp/opts.pub"))[0]);
    assert_eq!(
        fs::read_to_string(alice_keys(&r)).unwrap(),
        format!("{line}\n")
    );
    assert_eq!(
        pubkey(&r, &["list"]).run().success().stdout().trim_end(),
        keygen_l(&alice_keys(&r))[0]
    );

    // Without a comment, ssh-keygen shows the options in its place.
    let bare = key_line("ecdsa256").rsplit_once(' ').unwrap().0.to_string();
    r.write("/tmp/bare.pub", format!("restrict,pty {bare}\n"));
    let done = add(&r, &[r.at("/tmp/bare.pub").as_os_str()]).success();
    let want = keygen_l(&r.at("/tmp/bare.pub"));
    assert!(want[0].ends_with(" restrict,pty (ECDSA)"), "{want:?}");
    assert_eq!(reported(&done)[0].1, want[0]);

    // An option sshd does not know would make it ignore the key: refused with the reason.
    r.write(
        "/tmp/typo.pub",
        format!("no-ptyy {}\n", key_line("ed25519-b")),
    );
    add(&r, &[r.at("/tmp/typo.pub").as_os_str()])
        .status(3)
        .stderr_has("line 1: unknown option \"no-ptyy\"");
}

#[test]
fn remove_by_fingerprint_and_list() {
    let r = target();
    // No file yet: an empty list, not an error.
    let empty = pubkey(&r, &["list"]).run().success();
    assert_eq!(empty.stdout(), "");
    assert!(
        empty.stderr().contains("no authorized key"),
        "{}",
        empty.stderr()
    );

    let before = format!("# keep me\n{}\n", key_line("ed25519-b"));
    r.write("/home/alice/.ssh/authorized_keys", &before);
    add(
        &r,
        &[
            key("ed25519").as_os_str(),
            key("rsa4096").as_os_str(),
            key("ecdsa521").as_os_str(),
        ],
    )
    .success();
    let listed = pubkey(&r, &["list"]).run().success().stdout();
    assert_eq!(listed, keygen_l(&alice_keys(&r)).join("\n") + "\n");
    assert_eq!(listed.lines().count(), 4);

    let fp = |n: &str| keygen_l(&key(n))[0].split(' ').nth(1).unwrap().to_string();
    let snapshot = fs::read(alice_keys(&r)).unwrap();
    pubkey(&r, &["remove", &fp("rsa4096"), "-n"])
        .run()
        .success()
        .stdout_has("would remove: 4096 ");
    assert_eq!(fs::read(alice_keys(&r)).unwrap(), snapshot);
    pubkey(&r, &["remove", &fp("ecdsa384")])
        .run()
        .status(7)
        .stderr_has(&format!("no key with fingerprint {}", fp("ecdsa384")))
        .stderr_has("rtool pubkey list --user alice --root");
    pubkey(&r, &["remove", "SHA256:short"])
        .run()
        .status(2)
        .stderr_has("not a SHA256 fingerprint");
    assert_eq!(fs::read(alice_keys(&r)).unwrap(), snapshot);

    let done = pubkey(&r, &["remove", &fp("rsa4096")]).run().success();
    assert_eq!(
        done.stdout(),
        format!("removed: {}\n", keygen_l(&key("rsa4096"))[0])
    );
    // Without the SHA256: prefix too.
    pubkey(
        &r,
        &["remove", fp("ecdsa521").trim_start_matches("SHA256:")],
    )
    .run()
    .success();
    assert_eq!(
        fs::read_to_string(alice_keys(&r)).unwrap(),
        format!("{before}{}\n", key_line("ed25519"))
    );
    let m = fs::metadata(alice_keys(&r)).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 1234));
}

#[test]
fn dry_run_shows_the_plan_and_writes_nothing() {
    let r = target();
    let done = pubkey(&r, &["add", "--dry-run"])
        .arg(key("ed25519"))
        .run()
        .success();
    assert_eq!(
        reported(&done),
        [(
            "would add".to_string(),
            keygen_l(&key("ed25519"))[0].clone()
        )]
    );
    assert!(!r.at("/home/alice/.ssh").exists());
}

#[test]
fn a_name_that_does_not_resolve_fails_at_once() {
    let (host, lookup) = common::server::unresolvable_host();
    let r = target();
    // pubkey retries twice by default: not a name that does not resolve.
    let cmd = pubkey(&r, &["add", &format!("https://{host}/me.keys")]);
    let started = std::time::Instant::now();
    let done = cmd.run();
    let took = started.elapsed();
    let err = done
        .status(6)
        .stderr_has(&format!("cannot resolve the host name {host}"))
        .stderr_has("pubkey: hint: ")
        .stderr_has("rtool doctor")
        .stderr();
    assert!(!err.contains("retrying"), "{err}");
    assert!(
        took < lookup + std::time::Duration::from_secs(2),
        "{took:?} (one lookup takes {lookup:?}):\n{err}"
    );
    assert!(!r.at("/home/alice/.ssh").exists());
}

#[test]
fn hostile_sources_leave_authorized_keys_byte_identical() {
    let r = target();
    let before = format!("{}\n# trailing comment, no newline", key_line("ed25519-b"));
    r.write("/home/alice/.ssh/authorized_keys", &before);
    let ed = key_line("ed25519");
    let body = ed.split(' ').nth(1).unwrap();
    // ssh-keygen refuses the blob with a byte too many as well.
    let trailing = Cmd::new("ssh-keygen")
        .arg("-lf")
        .arg(keys().join("trailing.txt"))
        .run();
    assert_ne!(trailing.code(), 0, "{}", trailing.stdout());
    // ...and the ECDSA point off its curve.
    let offcurve = Cmd::new("ssh-keygen")
        .arg("-lf")
        .arg(keys().join("offcurve.txt"))
        .run();
    assert_ne!(offcurve.code(), 0, "{}", offcurve.stdout());
    let mut broken = body.to_string();
    broken.replace_range(20..21, "!");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "private key",
            fs::read(keys().join("ed25519")).unwrap(),
            "line 1: a PRIVATE key".into(),
        ),
        (
            "web page",
            b"<!DOCTYPE html>\n<html><title>Sign in</title></html>\n".to_vec(),
            "line 1: an HTML or XML page".into(),
        ),
        (
            "huge line",
            format!("ssh-ed25519 {}", "A".repeat(10 << 20)).into_bytes(),
            "line 1: longer than 16 KiB".into(),
        ),
        (
            "bad base64",
            format!("{ed}\nssh-ed25519 {broken} x\n").into_bytes(),
            "line 2: '!' at position 21 is not a base64 character".into(),
        ),
        (
            "wrong inner type",
            format!("ssh-rsa {body} x\n").into_bytes(),
            "line 1: the key data is a \"ssh-ed25519\" key, but the line says ssh-rsa".into(),
        ),
        (
            "cut short",
            format!("ssh-ed25519 {}\n", &body[..40]).into_bytes(),
            "line 1: the key data ends inside".into(),
        ),
        (
            "trailing bytes",
            fs::read(keys().join("trailing.txt")).unwrap(),
            "line 1: 1 stray bytes after the key data".into(),
        ),
        (
            "point off the curve",
            fs::read(keys().join("offcurve.txt")).unwrap(),
            "line 1: the public point does not lie on nistp256".into(),
        ),
        (
            "terminal escapes",
            format!("{ed}\x1b]0;owned\x07\n").into_bytes(),
            "line 1: control characters in the line".into(),
        ),
        (
            "binary",
            vec![0x7f, b'E', b'L', b'F', 0, 0, 1, b'\n'],
            "binary data".into(),
        ),
    ];
    for (what, bytes, says) in cases {
        let p = r.at(&format!("/tmp/{}", what.replace(' ', "-")));
        r.write(&format!("/tmp/{}", what.replace(' ', "-")), &bytes);
        let done = add(&r, &[key("ecdsa256").as_os_str(), p.as_os_str()]);
        assert_eq!(done.code(), 3, "{what}: {}", done.stderr());
        assert!(
            done.stderr().contains(&says),
            "{what}: stderr lacks {says:?}:\n{}",
            done.stderr()
        );
        assert_eq!(
            fs::read_to_string(alice_keys(&r)).unwrap(),
            before,
            "{what}"
        );
        let left: Vec<_> = fs::read_dir(r.at("/home/alice/.ssh"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["authorized_keys"], "{what}");
    }
}

#[test]
fn an_oversized_authorized_keys_is_left_alone() {
    let r = target();
    let line = format!("{}\n", key_line("ed25519-b"));
    let before = line.repeat((4 << 20) / line.len() + 1);
    r.write("/home/alice/.ssh/authorized_keys", &before);
    add(&r, &[key("ed25519").as_os_str()])
        .status(3)
        .stderr_has("authorized_keys: larger than 4 MiB: not touching it");
    pubkey(&r, &["list"]).run().status(3);
    assert!(fs::read_to_string(alice_keys(&r)).unwrap() == before);
}

#[test]
fn a_change_made_while_fetching_is_not_lost() {
    let r = target();
    r.write(
        "/home/alice/.ssh/authorized_keys",
        format!("{}\n", key_line("ed25519-b")),
    );
    // The key arrives two seconds late; someone edits the file after one.
    let done = sh(&format!(
        "(sleep 2; cat '{key}') | \"$RTOOL\" pubkey add --root '{root}' --user alice - & sleep 1; \
         echo '# edited meanwhile' >> '{file}'; wait $!",
        key = key("ed25519").display(),
        root = r.path().display(),
        file = alice_keys(&r).display()
    ));
    done.status(4)
        .stderr_has("changed while rtool was working: nothing written");
    assert_eq!(
        fs::read_to_string(alice_keys(&r)).unwrap(),
        format!("{}\n# edited meanwhile\n", key_line("ed25519-b"))
    );
}

#[test]
fn endless_input_is_cut_off_without_reading_it_all() {
    let r = target();
    let root = r.path().display();
    // Without bounds these would run until the timeout (or memory) ran out.
    sh(&format!(
        "yes ssh-ed25519 | tr -d '\\n' | timeout 20 \"$RTOOL\" pubkey add --root '{root}' --user alice -"
    ))
    .status(3)
    .stderr_has("standard input line 1: longer than 16 KiB");
    sh(&format!(
        "yes '# c' | timeout 20 \"$RTOOL\" pubkey add --root '{root}' --user alice -"
    ))
    .status(3)
    .stderr_has("standard input: larger than 1 MiB");
    // And an ordinary pipe works.
    let done = sh(&format!(
        "cat '{}' | \"$RTOOL\" pubkey add --root '{root}' --user alice -",
        key("sk-ecdsa").display()
    ))
    .success();
    assert_eq!(reported(&done)[0].1, keygen_l(&key("sk-ecdsa"))[0]);
    assert_eq!(
        fs::read_to_string(alice_keys(&r)).unwrap(),
        key_line("sk-ecdsa") + "\n"
    );
}

#[test]
fn symlinks_never_lead_out_of_the_root() {
    // A home reached through an absolute symlink resolves inside the root.
    let r = target();
    fs::remove_dir(r.at("/home/alice")).unwrap();
    r.mkdir("/var/home/alice")
        .symlink("/var/home/alice", "/home/alice");
    add(&r, &[key("ed25519").as_os_str()]).success();
    assert!(r.at("/var/home/alice/.ssh/authorized_keys").is_file());

    // .ssh pointing at /etc (the root's, or the host's) is refused, and nothing changes there.
    let r = target();
    r.symlink("/etc", "/home/alice/.ssh");
    let etc_mode = fs::metadata(r.at("/etc")).unwrap().mode();
    add(&r, &[key("ed25519").as_os_str()])
        .status(3)
        .stderr_has(".ssh is a symlink (to /etc): refusing to write through it");
    assert!(!r.at("/etc/authorized_keys").exists());
    assert_eq!(fs::metadata(r.at("/etc")).unwrap().mode(), etc_mode);
    assert_eq!(fs::metadata(r.at("/etc")).unwrap().uid(), 0);

    // So is an authorized_keys that links elsewhere; the file it points at stays as it was.
    let r = target();
    r.write("/etc/shadow-like", "secret\n").symlink(
        "../../../etc/shadow-like",
        "/home/alice/.ssh/authorized_keys",
    );
    add(&r, &[key("ed25519").as_os_str()])
        .status(3)
        .stderr_has("authorized_keys is a symlink");
    assert_eq!(
        fs::read_to_string(r.at("/etc/shadow-like")).unwrap(),
        "secret\n"
    );
    let fp = keygen_l(&key("ed25519"))[0]
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    pubkey(&r, &["remove", &fp]).run().status(3);

    // A home that climbs out of the root is refused.
    let r = target();
    r.write(
        "/etc/passwd",
        "alice:x:1234:1235::/home/../../../tmp:/bin/sh\n",
    );
    add(&r, &[key("ed25519").as_os_str()])
        .status(3)
        .stderr_has("'..'");
}

#[test]
fn how_to_connect_and_whether_sshd_runs() {
    let ns = NetNs::new("pubkey");
    ns.sh("ip link add eth0 type veth peer name eth1 && ip link set eth1 up && ip link set eth0 up && ip addr add 192.0.2.10/24 dev eth0");
    // The running system is the target here: no --root.
    let h = target();
    for (f, v) in [("operstate", "up\n"), ("carrier", "1\n"), ("type", "1\n")] {
        h.write(&format!("/sys/class/net/eth0/{f}"), v);
    }
    h.write("/proc/1/comm", "systemd\n");
    let key_path = key("ed25519");
    let vars: [(&str, &OsStr); 2] = [
        ("HOSTDIR", h.path().as_os_str()),
        ("KEY", key_path.as_os_str()),
    ];
    let run = "RTOOL_HOST_ROOT=\"$HOSTDIR\" \"$RTOOL\" pubkey add \"$KEY\"";
    ns.wrap(run, &vars)
        .success()
        .stderr_has("connect with: ssh root@192.0.2.10\n")
        .stderr_has("sshd is not running: start it with `systemctl start sshd`");
    assert_eq!(
        keygen_l(&h.at("/root/.ssh/authorized_keys")),
        keygen_l(&key("ed25519"))
    );

    h.write("/proc/4242/comm", "sshd\n");
    let done = ns.wrap(run, &vars).success().stderr_has("sshd is running");
    assert!(!done.stderr().contains("not running"), "{}", done.stderr());

    // For another system's root the live system's addresses mean nothing.
    let r = target();
    add(&r, &[key("ed25519").as_os_str()])
        .success()
        .stderr_has(&format!(
            "these keys are for the system at {}",
            r.path().display()
        ));
}

#[test]
fn list_json_has_numbers_for_bits_and_lines_and_the_keygen_fingerprints() {
    let r = target();
    r.write(
        "/home/alice/.ssh/authorized_keys",
        format!(
            "# a comment\n{}\nnot a key at all\n{}\n",
            key_line("ed25519"),
            key_line("rsa4096")
        ),
    );
    let j = pubkey(&r, &["list", "--json"]).run().success().json();
    assert_eq!(j["user"], "alice");
    assert_eq!(j["exists"], true);
    assert!(j["file"]
        .as_str()
        .unwrap()
        .ends_with("/home/alice/.ssh/authorized_keys"));
    let keys = j["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{j}");
    for (k, name, bits, line) in [
        (&keys[0], "ed25519", 256, 2),
        (&keys[1], "rsa4096", 4096, 4),
    ] {
        assert_eq!(k["bits"].as_u64(), Some(bits), "bits is a number: {k}");
        assert_eq!(k["line"].as_u64(), Some(line), "line is a number: {k}");
        let fp = keygen_l(&key(name))[0]
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        assert_eq!(k["fingerprint"], fp.as_str());
    }
    assert_eq!(keys[0]["type"], "ssh-ed25519");
    assert_eq!(keys[1]["type"], "ssh-rsa");
    let bad = j["bad_lines"].as_array().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["line"].as_u64(), Some(3));

    // An unknown user: the error as JSON on stdout, the person's line on stderr.
    let err = rtool(["pubkey", "--root"])
        .arg(r.path())
        .args(["--user", "mallory", "list", "--json"])
        .run()
        .status(7);
    let e = &err.json()["error"];
    assert_eq!(e["applet"], "pubkey");
    assert_eq!(e["exit"].as_u64(), Some(7));
    assert!(e["message"].as_str().unwrap().contains("mallory"), "{e}");
    assert!(err.stderr().contains("pubkey: error:"), "{}", err.stderr());
}
