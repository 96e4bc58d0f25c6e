//! Check pacman package signatures against the Arch keyring, without gpg or pacman

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Command};
use rtool::json::Json;
use rtool::sig::{self, Keyring, Verified};
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("verify")
        .long_about(
            "Checks each package's detached signature (PKG.sig beside it, binary or armoured) \
             the way pacman does with its default SigLevel, but with no gpg and no pacman: the \
             signing key must be in the Arch keyring, not revoked, valid when it signed (a key \
             that expired since is fine), and either a main key or certified by 3 of them; the \
             signature must use SHA-256 or stronger. The package is read once, streamed. \
             The keyring is --keyring, else the target's /usr/share/pacman/keyrings, else the \
             running system's (Arch's, or Debian's archlinux-keyring in /usr/share/keyrings).",
        )
        .arg(
            Arg::new("packages")
                .value_name("PKG")
                .required(true)
                .num_args(1..)
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .arg(ctx::arg_keyring())
        .arg(ctx::arg_root())
        .arg(ctx::arg_json())
        .after_help(
            "Examples:
  rtool verify linux-6.2.7.arch1-1-x86_64.pkg.tar.zst          # uses linux-….pkg.tar.zst.sig
  rtool verify --root /mnt /mnt/var/cache/pacman/pkg/*.pkg.tar.zst  # the target's keyring
  rtool verify --keyring /mnt/usr/share/pacman/keyrings cmatrix-2.0-3-x86_64.pkg.tar.zst
  rtool verify --keyring /usr/share/keyrings/archlinux.gpg *.pkg.tar.zst   # Debian's copy
  rtool verify --json zfs-utils-*.pkg.tar.zst

Exit status: 0 every signature is good; 5 a signature is bad, untrusted, revoked or weak;
7 a .sig file or the keyring is missing; 3 a .sig file is malformed.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let pkgs: Vec<PathBuf> = m
        .get_many::<PathBuf>("packages")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let keyrings = Keyring::find_all(&ctx.root, &ctx.host, &ctx::paths(m, "keyring"))?;
    let keys: Vec<&Keyring> = keyrings.iter().collect();
    for keyring in &keyrings {
        ctx.debug(format!(
            "keyring {}: {} keys, {} main keys{}",
            keyring.source().display(),
            keyring.key_count(),
            keyring.main_key_count(),
            match keyring.skipped() {
                0 => String::new(),
                n => format!(", {n} unreadable skipped"),
            }
        ));
    }

    let mut out = ctx.out();
    let mut docs = Vec::new();
    let mut code = exit::OK;
    for pkg in &pkgs {
        let sig_path = sig_path_of(pkg);
        // The package first: a mistyped name is a missing package, not a missing signature.
        let result = if std::fs::symlink_metadata(pkg).is_err() {
            Err(Error::missing(format!("no such package file {}", pkg.display())).hint(
                match pkg.file_name().and_then(|f| f.to_str()).and_then(|f| rtool::pkg::name::parse(f).ok()) {
                    Some(p) => format!("check the path; `rtool fetch-pkg {}={}` downloads it with its signature", p.name, p.version()),
                    None => "check the path; `rtool fetch-pkg` downloads a package with its signature".to_string(),
                },
            ))
        } else {
            sig::verify_file_any(&keys, pkg, &sig_path)
        };
        if let Err(e) = &result {
            code = worse(code, e);
        }
        if ctx.json {
            docs.push(to_json(pkg, &sig_path, &result));
            continue;
        }
        match result {
            Ok(v) => writeln!(out, "{}: {}", pkg.display(), good_line(&v))?,
            // A failure is an error, said as every error is: on stderr, named.
            Err(e) => {
                out.flush()?;
                rtool::cli::print_error(ctx.applet, &e.context(pkg.display().to_string()));
            }
        }
    }
    if ctx.json {
        let doc = Json::obj()
            .with("keyring", keys[0].source().display().to_string())
            .with("keyrings", Json::Arr(keys.iter().map(|k| Json::from(k.source().display().to_string())).collect()))
            .with("ok", code == exit::OK)
            .with("packages", Json::Arr(docs));
        writeln!(out, "{doc:#}")?;
    }
    Ok(code)
}

/// `PKG.sig`, beside the package.
fn sig_path_of(pkg: &Path) -> PathBuf {
    let mut s = OsString::from(pkg.as_os_str());
    s.push(".sig");
    PathBuf::from(s)
}

fn good_line(v: &Verified) -> String {
    let who = match &v.user_id {
        Some(u) => format!("{u} ({})", v.fingerprint),
        None => v.fingerprint.clone(),
    };
    format!("good signature by {who}, made {}", sig::date(v.created))
}

/// The exit code for several packages: a failed verification outranks a missing file, which
/// outranks the rest; the first of a rank is kept.
fn worse(code: u8, e: &Error) -> u8 {
    let rank = |c: u8| match c {
        exit::OK => 0,
        exit::VERIFY => 3,
        exit::MISSING => 2,
        _ => 1,
    };
    let new = e.exit_code();
    if rank(new) > rank(code) {
        new
    } else {
        code
    }
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Verify => "verify",
        Kind::Missing => "missing",
        Kind::Invalid => "invalid",
        Kind::System => "system",
        _ => "other",
    }
}

fn to_json(pkg: &Path, sig_path: &Path, result: &Result<Verified>) -> Json {
    let doc = Json::obj()
        .with("package", pkg.display().to_string())
        .with("signature", sig_path.display().to_string())
        .with("ok", result.is_ok());
    match result {
        Ok(v) => doc
            .with("fingerprint", &v.fingerprint)
            .with("signer_key", &v.signer_key)
            .with("user_id", v.user_id.clone())
            .with("created", v.created)
            .with("date", sig::date(v.created)),
        Err(e) => doc
            .with("error", e.to_string())
            .with("kind", kind_word(e.kind()))
            .with("hint", e.hint_text().map(String::from)),
    }
}
