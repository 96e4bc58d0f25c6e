//! Add, list and remove ssh public keys in a user's authorized_keys, from files, URLs or GitHub

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::net::http::{self, Client};
use rtool::ssh::authorized::KeysFile;
use rtool::ssh::key::PublicKey;
use rtool::ssh::source::{self, Source};
use rtool::sys::{self, net};
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("pubkey")
        .long_about(
            "Lets you in over ssh: authorizes public keys for a user of the running system (or \
             of the one at --root), taking the user, uid, gid and home from that system's \
             /etc/passwd. Every line of a source must be an OpenSSH public key (ed25519, RSA of \
             2048 bits or more, ECDSA, FIDO security keys), checked down to its key data; if \
             one is not, nothing is written (--skip-bad adds the good ones). Keys already there \
             are not added twice. authorized_keys is replaced atomically, everything in it \
             kept, with ~/.ssh 0700 and the file 0600, both owned by the user. Fingerprints \
             print as `ssh-keygen -l` prints them.",
        )
        .subcommand_required(true)
        .subcommand(
            Command::new("add")
                .about("Authorize the keys of each SOURCE")
                .arg(Arg::new("sources").value_name("SOURCE").required(true).num_args(1..)
                    .value_parser(clap::value_parser!(OsString))
                    .help("An https:// URL, a file, - (standard input), or github:USER"))
                .arg(Arg::new("skip_bad").long("skip-bad").action(ArgAction::SetTrue)
                    .help("Add the good keys even when other lines are bad (they are listed)"))
                .arg(Arg::new("insecure").long("insecure").action(ArgAction::SetTrue)
                    .help("Accept plain http:// URLs (anyone on the way could slip in a key)"))
                .arg(Arg::new("ca_file").long("ca-file").value_name("PEM").value_parser(clap::value_parser!(PathBuf))
                    .help("Trust only the certificates in PEM instead of the built-in roots")),
        )
        .subcommand(
            Command::new("list")
                .about("Fingerprints of the authorized keys, as `ssh-keygen -lf` prints them")
                .arg(ctx::arg_json()),
        )
        .subcommand(
            Command::new("remove")
                .about("Remove the keys with these fingerprints")
                .arg(Arg::new("fingerprints").value_name("FINGERPRINT").required(true).num_args(1..)
                    .help("SHA256:… as `rtool pubkey list` or `ssh-keygen -l` prints it")),
        )
        .arg(Arg::new("user").long("user").short('u').value_name("USER").default_value("root").global(true)
            .help("Whose authorized_keys"))
        .arg(ctx::arg_root().global(true))
        .arg(ctx::arg_dry_run().global(true))
        .after_help(
            "Examples:
  rtool pubkey add github:alice                 # alice's keys on GitHub, for root
  rtool pubkey add https://example.org/me.keys ~/id_ed25519.pub
  curl -s https://example.org/k | rtool pubkey add -
  rtool pubkey add --user alice --root /mnt ./alice.pub   # into the installed system
  rtool pubkey add -n github:alice              # show what would be added
  rtool pubkey list
  rtool pubkey list --json | jq -r '.keys[].fingerprint'
  rtool pubkey remove SHA256:hWPKS4xk1vGNenXA5xfrB0zuoMUMSRa/pZKPcbm/hK0

Exit status: 0 done (also when every key was there already); 2 usage, http:// without
--insecure; 3 a bad line, a private key or a web page as source (nothing written);
6 network failure; 7 no such user, home or fingerprint.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let user = m.get_one::<String>("user").map_or("root", String::as_str);
    match m.subcommand() {
        Some(("add", a)) => add(ctx, user, a),
        Some(("list", _)) => list(ctx, user),
        Some(("remove", a)) => remove(ctx, user, a),
        _ => Err(Error::usage("expected add, list or remove")),
    }
}

fn add(ctx: &Ctx, user: &str, a: &ArgMatches) -> Result<u8> {
    ctx.require_root(&format!("it writes the authorized_keys of {user} below {}", ctx.root.display()))?;
    let sources = a
        .get_many::<OsString>("sources")
        .unwrap_or_default()
        .map(|s| Source::parse(s))
        .collect::<Result<Vec<_>>>()?;
    if sources.iter().filter(|s| **s == Source::Stdin).count() > 1 {
        return Err(Error::usage("standard input (-) can be read only once"));
    }
    for s in sources.iter().filter(|s| s.is_plain_http()) {
        if !a.get_flag("insecure") {
            return Err(Error::usage(format!("{s}: plain http: anyone on the way could hand over their own key"))
                .hint("use https://, or pass --insecure to take that risk"));
        }
        ctx.warn(format!(
            "INSECURE: {s} is plain http, so the keys may not be the ones published: check the fingerprints below"
        ));
    }
    // The user, home and links are checked before anything is fetched.
    let file = KeysFile::open(&ctx.root, user, true)?;
    let client = match sources.iter().any(|s| s.url().is_some()) {
        true => Some(
            Client::new(http::Options {
                ca_file: a.get_one::<PathBuf>("ca_file").cloned(),
                read_timeout: Duration::from_secs(30),
                retries: 2,
                ..http::Options::default()
            })?
            .on_retry(|msg| eprintln!("pubkey: {msg}")),
        ),
        false => None,
    };

    let mut keys: Vec<PublicKey> = Vec::new();
    let mut bad = Vec::new();
    for s in &sources {
        let lines = source::read(s, client.as_ref())?;
        if lines.is_empty() {
            let e = Error::invalid(format!("{s}: no public key in it"));
            return Err(match s {
                Source::GitHub(u) => e.hint(format!("{u} has published no key: see https://github.com/settings/keys")),
                _ => e,
            });
        }
        for l in lines {
            match l.key {
                Ok(k) => keys.push(k),
                Err(why) => bad.push(format!("{s} line {}: {why}", l.number)),
            }
        }
    }
    if !bad.is_empty() {
        if !a.get_flag("skip_bad") {
            let more = match bad.len() {
                1..=3 => String::new(),
                n => format!("; and {} more", n - 3),
            };
            return Err(Error::invalid(format!("{}{more}", bad[..bad.len().min(3)].join("; ")))
                .context("nothing written")
                .hint("fix or remove the bad lines, or add only the good keys with --skip-bad"));
        }
        for b in &bad {
            ctx.warn(format!("skipped {b}"));
        }
    }

    // Compared by key data: the same key with another comment or options is still there.
    // (A list, not a hash set: files hold a handful of keys, and the binary stays smaller.)
    let entries = file.entries();
    let present: Vec<&[u8]> = entries.iter().filter_map(|e| e.key.as_ref().ok()).map(|k| &k.blob[..]).collect();
    let verb = if ctx.dry_run { "would add" } else { "added" };
    let mut report = Vec::new(); // what became of each key, in the order given
    let mut new: Vec<&PublicKey> = Vec::new();
    for k in &keys {
        let status = if present.contains(&&k.blob[..]) {
            "already there"
        } else if new.iter().any(|n| n.blob == k.blob) {
            "listed twice"
        } else {
            new.push(k);
            verb
        };
        report.push((status, k));
    }
    let shown = file.path.display();
    if !new.is_empty() && !ctx.dry_run {
        for f in file.replace(&file.appended(new.iter().map(|k| k.text.as_str())))? {
            ctx.debug(f);
        }
    }
    let mut out = ctx.out();
    for (status, k) in report {
        writeln!(out, "{status}: {}", k.keygen_line())?;
    }
    ctx.note(match (new.len(), ctx.dry_run) {
        (0, _) => format!("{shown}: nothing to add"),
        (n, true) => format!("{shown}: {n} key(s) would be added (dry run: nothing written)"),
        (n, false) => format!("{shown}: {n} key(s) added for {}", file.user.name),
    });
    drop(out);
    if let Some(p) = file.home_problem() {
        ctx.warn(p);
    }
    how_to_connect(ctx, &file.user.name);
    Ok(exit::OK)
}

/// Where to point ssh, and whether anything listens there.
fn how_to_connect(ctx: &Ctx, user: &str) {
    if !ctx.root_is_host() {
        ctx.note(format!(
            "these keys are for the system at {}: they let you in once it runs sshd",
            ctx.root.display()
        ));
        return;
    }
    let mut any = false;
    for i in net::interfaces(&ctx.host_path("/sys/class/net")) {
        if !i.usable() {
            continue;
        }
        for a in i.addresses.iter().filter(|a| net::reachable(a)) {
            ctx.note(format!("connect with: ssh {user}@{a}"));
            any = true;
        }
    }
    if !any {
        ctx.note("no network interface is up with an address yet (`rtool doctor` shows them)");
    }
    if sys::processes_named(&ctx.host_path("/proc"), "sshd").is_empty() {
        ctx.warn("sshd is not running: start it with `systemctl start sshd`");
    } else {
        ctx.note("sshd is running");
    }
}

fn list(ctx: &Ctx, user: &str) -> Result<u8> {
    let file = KeysFile::open(&ctx.root, user, false)?;
    if !file.exists {
        ctx.note(format!("{}: no such file: {user} has no authorized key", file.path.display()));
    }
    let mut out = ctx.out();
    let (mut keys, mut bad) = (Vec::new(), Vec::new());
    for e in file.entries() {
        match e.key {
            Ok(k) if ctx.json => keys.push(
                Json::obj()
                    .with("line", e.line)
                    .with("type", k.algo.name())
                    .with("bits", u64::from(k.bits))
                    .with("fingerprint", k.fingerprint())
                    .with("comment", k.comment.trim_end())
                    .with("options", k.options.clone()),
            ),
            Ok(k) => writeln!(out, "{}", k.keygen_line())?,
            Err(why) => {
                ctx.warn(format!("{} line {}: {why} (not listed)", file.path.display(), e.line));
                bad.push(Json::obj().with("line", e.line).with("reason", why));
            }
        }
    }
    if ctx.json {
        let j = Json::obj()
            .with("user", user)
            .with("file", file.path.display().to_string())
            .with("exists", file.exists)
            .with("keys", Json::Arr(keys))
            .with("bad_lines", Json::Arr(bad));
        writeln!(out, "{j:#}")?;
    }
    Ok(exit::OK)
}

fn remove(ctx: &Ctx, user: &str, a: &ArgMatches) -> Result<u8> {
    ctx.require_root(&format!("it writes the authorized_keys of {user} below {}", ctx.root.display()))?;
    let mut wanted = Vec::new();
    for f in a.get_many::<String>("fingerprints").unwrap_or_default() {
        let b64 = f.strip_prefix("SHA256:").unwrap_or(f);
        if b64.len() != 43 || rtool::ssh::base64::decode(&format!("{b64}=")).is_err() {
            return Err(Error::usage(format!("{f}: not a SHA256 fingerprint"))
                .hint("give it as `rtool pubkey list` prints it: SHA256: and 43 characters"));
        }
        wanted.push(format!("SHA256:{b64}"));
    }
    let file = KeysFile::open(&ctx.root, user, true)?;
    let (content, gone) = file.without(|k| wanted.contains(&k.fingerprint()));
    if let Some(unknown) = wanted.iter().find(|w| !gone.iter().any(|k| k.fingerprint() == **w)) {
        return Err(Error::new(Kind::Missing, format!("{}: no key with fingerprint {unknown}", file.path.display()))
            .context("nothing removed")
            .hint(format!("`rtool pubkey list --user {user}{}` shows the fingerprints", ctx.root_arg())));
    }
    let verb = if ctx.dry_run { "would remove" } else { "removed" };
    if !ctx.dry_run {
        file.replace(&content)?;
    }
    let mut out = ctx.out();
    for k in &gone {
        writeln!(out, "{verb}: {}", k.keygen_line())?;
    }
    Ok(exit::OK)
}
