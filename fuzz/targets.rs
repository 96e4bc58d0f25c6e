//! The fuzz targets: one `pub fn NAME(data: &[u8])` per parser of untrusted input. Each
//! `fuzz/fuzz_targets/NAME.rs` calls its function under libFuzzer (nightly), and
//! `tests/fuzz_corpus.rs` feeds it every file of `fuzz/corpus/NAME/` and
//! `fuzz/regressions/NAME/` on stable. A target returns normally for any input, errors
//! included; a panic, an overflow (debug builds), a hang or a file written outside the
//! scratch root is the finding.
//!
//! Inputs made of several files are one byte string split at `SEP` lines (see `sections`).

#![allow(dead_code)]

use std::cell::RefCell;
use std::cmp::Ordering;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rtool::archive::extract::{Extractor, Options, Package};
use rtool::archive::rooted::Root;

/// What separates the files of a multi-file input: a line of its own.
pub const SEP: &[u8] = b"\n--8<--\n";

/// Bytes a target reads from any one decompressed stream; beyond it the input counts as a
/// bomb and the reader fails, as a short read does.
const CAP: u64 = 16 << 20;

/// `data` cut at the first `N - 1` separators; missing parts are empty.
pub fn sections<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + SEP.len()..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out[N - 1] = rest;
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// A directory of this thread's own, emptied for each input.
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s
            .get_or_insert_with(|| {
                tempfile::Builder::new()
                    .prefix("rtool-fuzz.")
                    .tempdir()
                    .expect("a temporary directory")
            })
            .path()
            .join("case");
        if dir.symlink_metadata().is_ok() {
            remove_all(&dir);
        }
        fs::create_dir(&dir).expect("the scratch directory");
        dir
    })
}

/// Removes `dir` even when an extraction left directories without write or search permission.
fn remove_all(dir: &Path) {
    fn open_up(p: &Path) {
        let Ok(md) = p.symlink_metadata() else { return };
        if md.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    if fs::remove_dir_all(dir).is_err() {
        open_up(dir);
        fs::remove_dir_all(dir).expect("the scratch directory can be removed");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("a scratch directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// A reader that fails once more than `left` bytes went through it.
struct Capped<'a> {
    inner: &'a mut dyn Read,
    left: u64,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!("more than {CAP} bytes: a decompression bomb"))
        })?;
        Ok(n)
    }
}

fn drain(r: &mut dyn Read) -> io::Result<u64> {
    io::copy(
        &mut Capped {
            inner: r,
            left: CAP,
        },
        &mut io::sink(),
    )
}

// ---------------------------------------------------------------------------------------------
// Archives

/// A pacman package: decompression, the tar walk and extraction into a jailed root. Nothing
/// may appear outside that root.
pub fn package(data: &[u8]) {
    let case = scratch();
    let pkg = case.join("pkg");
    fs::write(&pkg, data).expect("the input file");
    let outer = case.join("outer");
    let root_dir = outer.join("root");
    fs::create_dir_all(&root_dir).expect("the root");
    let root = Root::open(&root_dir).expect("the root opens");
    let opts = Options {
        all: true,
        force: true,
        devices: false,
        owners: false,
        // Both ways of writing, chosen by the input.
        stage: data.len() % 2 == 1,
    };
    if let Ok(p) = Package::open(&pkg) {
        let mut ex = Extractor::new(root, opts);
        let mut total = CAP;
        let _ = p.for_each(|m, r| {
            let mut capped = Capped {
                inner: r,
                left: total,
            };
            let res = ex.entry(m, &mut capped);
            total = capped.left;
            res.map(|()| true)
        });
        let _ = ex.finish();
    }
    assert_eq!(names(&case), ["outer", "pkg"], "a member escaped the root");
    assert_eq!(names(&outer), ["root"], "a member escaped the root");
}

/// A sync database (`REPO.db`): any compression, a tar of `desc` files.
pub fn syncdb(data: &[u8]) {
    let _ = rtool::pkg::syncdb::read_db(data);
}

/// An initramfs image: every cpio segment, compressed or not, each member's data read.
pub fn initramfs(data: &[u8]) {
    let case = scratch();
    let img = case.join("initramfs.img");
    fs::write(&img, data).expect("the input file");
    let mut total = CAP;
    let _ = rtool::archive::initramfs::for_each(&img, |e, r| {
        let _ = e.member.name();
        let n = drain(r).map_err(|e| rtool::Error::io(e, "reading a member"))?;
        total = total
            .checked_sub(n)
            .ok_or_else(|| rtool::Error::invalid("a decompression bomb"))?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Package metadata

/// `.PKGINFO` and `.BUILDINFO`.
pub fn pkginfo(data: &[u8]) {
    if let Ok(info) = rtool::pkg::pkginfo::parse(data) {
        let _ = info.validate_pkginfo();
        let _ = info.to_json();
        let _ = info.get("pkgname");
        let _ = info.all("depend").count();
    }
}

/// `.MTREE`, gzip-compressed as in a package or already plain.
pub fn mtree(data: &[u8]) {
    let plain: Vec<u8> = if data.starts_with(&[0x1f, 0x8b]) {
        let Ok((_, dec)) = rtool::decompress::decoder(io::Cursor::new(data.to_vec())) else {
            return;
        };
        let mut v = Vec::new();
        if dec.take(CAP).read_to_end(&mut v).is_err() {
            return;
        }
        v
    } else {
        data.to_vec()
    };
    if let Ok(entries) = rtool::pkg::mtree::parse(&plain) {
        let _ = rtool::pkg::local::file_list(&entries);
    }
}

/// A local database entry: `desc` and `files` of `local/NAME-VER-REL/`, as read by the entry
/// reader and by the directory scan. Parts: desc, files.
pub fn localdb(data: &[u8]) {
    let [desc, files] = sections::<2>(data);
    let case = scratch();
    let entry = case.join("local/pkg-1.0-1");
    fs::create_dir_all(&entry).expect("the entry directory");
    fs::write(entry.join("desc"), desc).expect("desc");
    fs::write(entry.join("files"), files).expect("files");
    if let Ok(p) = rtool::pkg::local::Installed::read(&entry) {
        let _ = p.id();
        let _ = p.backup_hash(b"etc/pacman.conf");
    }
    let _ = rtool::pkg::local::read_all(&case.join("local"));
    let _ = rtool::pkg::db::installed(&case, |_| true);
}

/// `pacman.conf`.
pub fn pacman_conf(data: &[u8]) {
    let _ = rtool::pkg::db::Conf::parse(&text(data));
}

/// An alpm hook file, then whether a few changes trigger it.
pub fn alpmhook(data: &[u8]) {
    use rtool::pkg::alpmhook::{parse, Changes, Op};
    let Ok(hook) = parse(
        "fuzz.hook",
        Path::new("/etc/pacman.d/hooks/fuzz.hook"),
        &text(data),
    ) else {
        return;
    };
    let changes = Changes {
        paths: vec![
            (b"usr/lib/modules/6.1.0/vmlinuz".to_vec(), Op::Install),
            (b"etc/".to_vec(), Op::Upgrade),
            (b"usr/share/\xff/x".to_vec(), Op::Remove),
        ],
        packages: vec![
            ("linux".into(), Op::Upgrade),
            ("zfs-dkms".into(), Op::Remove),
        ],
    };
    let _ = hook.triggered(&changes);
}

/// vercmp is reflexive and antisymmetric on any bytes, and transitive where pacman's order is
/// a total order. Parts: three versions, one a line.
///
/// pacman's own order is not transitive everywhere, and rtool follows pacman: a version
/// without a pkgrel equals the same version with any pkgrel (`1.0-1` < `1.0-1.1`, both equal
/// `1.0`), and separator runs compare by length, so multi-byte and repeated separators break
/// the chain (`1.0é` < `1.0.1` < `1.0éa`, yet `1.0é` > `1.0éa`). Transitivity is checked for
/// versions of ASCII letters and digits with single `.`/`_`/`+` between them, an optional
/// numeric epoch and an optional pkgrel present in all three or in none.
pub fn vercmp(data: &[u8]) {
    use rtool::pkg::vercmp::vercmp_bytes as cmp;
    let mut it = data.splitn(3, |b| *b == b'\n');
    let v = [
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    ];
    for a in v {
        assert_eq!(cmp(a, a), Ordering::Equal, "not reflexive: {:?}", text(a));
        for b in v {
            assert_eq!(
                cmp(a, b),
                cmp(b, a).reverse(),
                "not antisymmetric: {:?} vs {:?}",
                text(a),
                text(b)
            );
        }
    }
    let rels: Vec<Option<bool>> = v.iter().map(|x| total_order_form(x)).collect();
    if rels.iter().any(Option::is_none) || rels.windows(2).any(|w| w[0] != w[1]) {
        return;
    }
    for a in v {
        for b in v {
            for c in v {
                let (ab, bc, ac) = (cmp(a, b), cmp(b, c), cmp(a, c));
                if ab != Ordering::Greater && bc != Ordering::Greater {
                    let want = if ab == Ordering::Equal {
                        bc
                    } else {
                        Ordering::Less
                    };
                    assert_eq!(
                        ac,
                        want,
                        "not transitive: {:?} {ab:?} {:?} {bc:?} {:?}, but {ac:?}",
                        text(a),
                        text(b),
                        text(c)
                    );
                }
            }
        }
    }
}

/// `Some(has a pkgrel)` for `[EPOCH:]PKGVER[-PKGREL]` whose parts are runs of ASCII letters and
/// digits joined by single separators; `None` for anything else.
fn total_order_form(v: &[u8]) -> Option<bool> {
    let plain = |s: &[u8]| {
        !s.is_empty()
            && s.split(|b| matches!(b, b'.' | b'_' | b'+'))
                .all(|seg| !seg.is_empty() && seg.iter().all(u8::is_ascii_alphanumeric))
    };
    let rest = match v.iter().position(|b| *b == b':') {
        Some(at) if v[..at].iter().all(u8::is_ascii_digit) && at > 0 => &v[at + 1..],
        Some(_) => return None,
        None => v,
    };
    match rest.iter().position(|b| *b == b'-') {
        Some(at) if plain(&rest[..at]) && plain(&rest[at + 1..]) => Some(true),
        Some(_) => None,
        None if plain(rest) => Some(false),
        None => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures and keys

/// The Arch keyring (keys, trusted list, revoked list), then a detached signature over the
/// data checked with pacman's trust model. Parts: archlinux.gpg, archlinux-trusted,
/// archlinux-revoked, the signature, the signed data.
pub fn signature(data: &[u8]) {
    let [gpg, trusted, revoked, sig, signed] = sections::<5>(data);
    let case = scratch();
    fs::write(case.join("archlinux.gpg"), gpg).expect("keyring");
    fs::write(case.join("archlinux-trusted"), trusted).expect("trusted");
    fs::write(case.join("archlinux-revoked"), revoked).expect("revoked");
    let Ok(keyring) = rtool::sig::Keyring::load(&case) else {
        return;
    };
    let _ = keyring.key_count();
    let _ = keyring.main_key_count();
    let _ = rtool::sig::verify_reader(&keyring, &mut &signed[..], sig);
}

/// OpenSSH public key lines (authorized_keys, `.pub`). A parsed key's own text parses again
/// to the same key.
pub fn ssh_key(data: &[u8]) {
    use rtool::ssh::key::parse_line;
    for line in text(data).lines() {
        let Ok(Some(k)) = parse_line(line) else {
            continue;
        };
        let _ = k.fingerprint();
        let _ = k.keygen_line();
        let _ = k.refusal();
        match parse_line(&k.text) {
            Ok(Some(again)) => assert_eq!(again.blob, k.blob, "{:?} reads differently", k.text),
            other => panic!("{:?} parsed once, then {other:?}", k.text),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel

/// `dkms.conf` through the built-in reader (never bash), `META`, and a
/// `BUILD_EXCLUSIVE_KERNEL` pattern. Parts: dkms.conf, META, pattern, kernel release.
pub fn dkms(data: &[u8]) {
    use rtool::kernel::dkms::{
        exclusive_kernel_matches, meta_range_check, parse, parse_meta, Vars,
    };
    let [conf, meta, pattern, kver] = sections::<4>(data);
    let kver = match text(kver).trim() {
        "" => "6.1.0-57-amd64".to_string(),
        k => k.to_string(),
    };
    let vars = Vars::for_kernel(&kver, "x86_64");
    for dir in [None, Some("zfs-2.1.9")] {
        if let Ok(c) = parse(&text(conf), &vars, dir) {
            let _ = c.make_command(&vars, 2);
            let _ = c.build_excluded(&vars);
            for m in &c.modules {
                let _ = m.built_path();
            }
        }
    }
    if let Ok(m) = parse_meta(&text(meta)) {
        let _ = meta_range_check(&m, &kver);
    }
    let _ = exclusive_kernel_matches(&text(pattern), &kver);
}

/// `modules.dep`, `modules.alias`, `modules.builtin`, `modules.softdep` and a modprobe.d
/// file, then what loading a few of the named modules would do. Parts: in that order, then a
/// kernel command line.
pub fn modules(data: &[u8]) {
    use rtool::kernel::modload::{param_string, Config, ModuleDb};
    let [dep, alias, builtin, softdep, conf, cmdline] = sections::<6>(data);
    let case = scratch();
    fs::write(case.join("modules.dep"), dep).expect("modules.dep");
    fs::write(case.join("modules.alias"), alias).expect("modules.alias");
    fs::write(case.join("modules.builtin"), builtin).expect("modules.builtin");
    let mut c = Config::default();
    c.parse(&text(softdep));
    c.parse(&text(conf));
    c.add_cmdline(&text(cmdline));
    let Ok(db) = ModuleDb::open(&case) else {
        return;
    };
    let mut wanted: Vec<String> = Vec::new();
    for line in text(dep).lines().take(8) {
        if let Some(name) = line
            .split(':')
            .next()
            .and_then(|p| p.rsplit('/').next())
            .and_then(|f| f.split('.').next())
        {
            wanted.push(name.to_string());
        }
    }
    for line in text(alias).lines().take(4) {
        if let Some(a) = line.split_whitespace().nth(1) {
            wanted.push(a.replace('*', "x"));
        }
    }
    for name in wanted {
        for m in db.resolve(&name, &c) {
            let _ = db.plan(&m);
            let _ = param_string(&c.options_for(&m));
        }
    }
}

/// A bzImage's boot header: the kernel release it names.
pub fn bzimage(data: &[u8]) {
    let case = scratch();
    let img = case.join("vmlinuz");
    fs::write(&img, data).expect("the input file");
    let _ = rtool::kernel::bzimage::release(&img);
}

// ---------------------------------------------------------------------------------------------
// The running system

/// `/etc/fstab`.
pub fn fstab(data: &[u8]) {
    if let Ok(entries) = rtool::sys::fstab::parse(data) {
        let _ = rtool::sys::fstab::boot_entries(&entries);
        for e in &entries {
            let _ = e.has_option("noauto");
        }
    }
}

/// `/proc/self/mountinfo`.
pub fn mountinfo(data: &[u8]) {
    use rtool::sys::mountinfo::{at, containing, parse};
    if let Ok(mounts) = parse(data) {
        let _ = at(&mounts, Path::new("/boot"));
        let _ = containing(&mounts, Path::new("/usr/lib/modules"));
    }
}

// ---------------------------------------------------------------------------------------------
// The network

/// An nginx autoindex page. Every name it yields is a plain name, and encoding it for a URL
/// and decoding it again gives it back.
pub fn listing(data: &[u8]) {
    use rtool::net::listing::{parse, percent_decode, percent_encode};
    for item in parse(&text(data)) {
        assert!(
            !item.name.is_empty() && !item.name.contains('/') && item.name != "..",
            "{:?} is not a plain name",
            item.name
        );
        assert_eq!(
            percent_decode(&percent_encode(&item.name)).as_deref(),
            Some(item.name.as_str())
        );
    }
}

/// A target: takes any bytes, returns normally.
pub type Target = fn(&[u8]);

/// Every target, by name, for the corpus test.
pub const TARGETS: &[(&str, Target)] = &[
    ("alpmhook", alpmhook),
    ("bzimage", bzimage),
    ("dkms", dkms),
    ("fstab", fstab),
    ("initramfs", initramfs),
    ("listing", listing),
    ("localdb", localdb),
    ("modules", modules),
    ("mountinfo", mountinfo),
    ("mtree", mtree),
    ("package", package),
    ("pacman_conf", pacman_conf),
    ("pkginfo", pkginfo),
    ("signature", signature),
    ("ssh_key", ssh_key),
    ("syncdb", syncdb),
    ("vercmp", vercmp),
];
