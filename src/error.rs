//! Typed errors with context, and the one table of exit codes.
//!
//! Library code returns [`Error`]; it says what failed (`kind`), where (`context`, outermost
//! first), why (`source`) and, where there is one, what to do next (`hint`). `main` prints the
//! chain once and exits with [`Error::exit_code`].

use std::fmt;
use std::io;
use std::path::Path;

/// Exit codes, documented in the README. Applets return one of these on success paths too.
pub mod exit {
    /// Everything worked, or the check found nothing wrong.
    pub const OK: u8 = 0;
    /// The applet ran, and what it checked has problems (a verify mismatch, a failed preflight).
    pub const PROBLEMS: u8 = 1;
    /// The command line is wrong.
    pub const USAGE: u8 = 2;
    /// An input is invalid: a corrupt or hostile archive, a malformed file.
    pub const INVALID: u8 = 3;
    /// The system refused: permission denied, disk full, a failing system call or mount.
    pub const SYSTEM: u8 = 4;
    /// A signature or checksum did not verify.
    pub const VERIFY: u8 = 5;
    /// The network failed: connection, TLS, HTTP status.
    pub const NETWORK: u8 = 6;
    /// Something needed is missing: a tool, a file, kernel headers, modules, privileges.
    pub const MISSING: u8 = 7;
    /// An external step ran and failed: a module build, a command inside a chroot.
    pub const FAILED: u8 = 8;
    /// The applet named does not exist.
    pub const UNKNOWN_APPLET: u8 = 127;
    /// Interrupted by a signal (SIGINT, SIGTERM, SIGHUP).
    pub const INTERRUPTED: u8 = 130;
}

/// What kind of failure this is; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Usage,
    Invalid,
    System,
    Verify,
    Network,
    Missing,
    Failed,
    Interrupted,
    /// A check refused the change before anything was written (a conflict, a missing
    /// dependency, a held lock): exit 1, as for problems found.
    Refused,
    /// Writing our own output failed because the reader went away: not an error for a person.
    BrokenPipe,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => exit::USAGE,
            Kind::Invalid => exit::INVALID,
            Kind::System => exit::SYSTEM,
            Kind::Verify => exit::VERIFY,
            Kind::Network => exit::NETWORK,
            Kind::Missing => exit::MISSING,
            Kind::Failed => exit::FAILED,
            Kind::Interrupted => exit::INTERRUPTED,
            Kind::Refused => exit::PROBLEMS,
            Kind::BrokenPipe => exit::OK,
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

pub struct Error {
    kind: Kind,
    /// Outermost first: "extracting linux.pkg.tar.zst", "writing usr/lib/modules/…".
    context: Vec<String>,
    message: String,
    source: Option<Source>,
    hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            context: Vec::new(),
            message: message.into(),
            source: None,
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, message)
    }
    pub fn system(message: impl Into<String>) -> Self {
        Self::new(Kind::System, message)
    }
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(Kind::Missing, message)
    }

    /// An I/O error on `path`: the kind follows the errno (ENOENT is `Missing`, EPIPE is a
    /// quiet broken pipe, everything else `System`).
    pub fn io(err: io::Error, what: impl fmt::Display) -> Self {
        let kind = kind_of_io(&err);
        Error {
            kind,
            context: Vec::new(),
            message: what.to_string(),
            source: Some(Box::new(err)),
            hint: None,
        }
    }

    /// [`Error::io`] for a path, the common case.
    pub fn path(err: io::Error, path: &Path) -> Self {
        Self::io(err, path.display())
    }

    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What to do next, printed on its own line after the error.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The first error of type `E` in the source chain: for a caller that acts on one cause
    /// (a name that did not resolve, an HTTP status) without reading the message.
    pub fn cause<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|s| s as _);
        while let Some(s) = source {
            if let Some(e) = s.downcast_ref::<E>() {
                return Some(e);
            }
            source = s.source();
        }
        None
    }

    /// Wraps the error in one more layer of context ("while doing X").
    pub fn context(mut self, what: impl Into<String>) -> Self {
        self.context.insert(0, what.into());
        self
    }
}

fn kind_of_io(err: &io::Error) -> Kind {
    match err.kind() {
        io::ErrorKind::BrokenPipe => Kind::BrokenPipe,
        io::ErrorKind::NotFound => Kind::Missing,
        io::ErrorKind::Interrupted => Kind::Interrupted,
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Kind::Invalid,
        _ => Kind::System,
    }
}

/// The whole chain on one line: `context: context: message: source: source`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.context {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.message)?;
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|s| s as _);
        while let Some(s) = source {
            let text = s.to_string();
            if !text.is_empty() && !self.message.ends_with(&text) {
                write!(f, ": {}", strip_os_error(&text))?;
            }
            source = s.source();
        }
        Ok(())
    }
}

/// "No such file or directory (os error 2)" reads better without the number.
fn strip_os_error(text: &str) -> &str {
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {self}", self.kind)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        let kind = kind_of_io(&err);
        Error {
            kind,
            context: Vec::new(),
            message: strip_os_error(&err.to_string()).to_string(),
            source: None,
            hint: None,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(err: nix::Error) -> Self {
        io::Error::from(err).into()
    }
}

/// `.context("reading /proc/mounts")` on any result whose error converts into [`Error`].
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

/// `.at(path)` turns an `io::Result` into one that names the path.
pub trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::path(e, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_reads_outermost_first_without_errno_numbers() {
        let e = Error::path(
            io::Error::from_raw_os_error(libc::ENOENT),
            Path::new("/mnt/etc/fstab"),
        )
        .context("reading the target's fstab");
        assert_eq!(
            e.to_string(),
            "reading the target's fstab: /mnt/etc/fstab: No such file or directory"
        );
        assert_eq!(e.kind(), Kind::Missing);
        assert_eq!(e.exit_code(), exit::MISSING);
    }

    #[test]
    fn broken_pipe_is_quiet_success() {
        let e: Error = io::Error::from(io::ErrorKind::BrokenPipe).into();
        assert_eq!(e.exit_code(), exit::OK);
    }

    #[test]
    fn a_cause_is_found_anywhere_in_the_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::invalid("x").with_source(Outer(io::Error::other("inner")));
        assert!(e.cause::<Outer>().is_some());
        assert_eq!(
            e.cause::<io::Error>().map(|e| e.to_string()),
            Some("inner".into())
        );
        assert!(Error::invalid("y").cause::<io::Error>().is_none());
    }

    #[test]
    fn full_disk_is_a_system_error() {
        let e = Error::io(io::Error::from_raw_os_error(libc::ENOSPC), "writing x");
        assert_eq!(e.exit_code(), exit::SYSTEM);
        assert!(e.to_string().contains("No space left on device"));
    }
}
