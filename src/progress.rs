//! Progress for long work: a live bar on a capable terminal, plain periodic lines otherwise.
//!
//! A serial console, an initramfs shell with no `TERM`, a pipe or a log file get one line at
//! every tenth of the work (or every few seconds when the total is unknown), never escape
//! codes. `-q` hides it.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::units::{duration, human};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One line redrawn in place (`\r`), at most ten times a second.
    Bar,
    /// Plain lines, one per tenth of the work or per `LINE_EVERY` without a total.
    Lines,
    Hidden,
}

const LINE_EVERY: Duration = Duration::from_secs(5);
const BAR_EVERY: Duration = Duration::from_millis(100);
/// Work shorter than this that printed no progress line gets no closing line either.
const QUIET_UNDER: f64 = 2.0;

impl Mode {
    /// The mode for stderr: `RTOOL_PROGRESS=bar|lines|none` wins, then a terminal whose `TERM`
    /// is set and not `dumb` gets the bar.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            return Mode::Hidden;
        }
        match std::env::var("RTOOL_PROGRESS").as_deref() {
            Ok("bar") => return Mode::Bar,
            Ok("lines") => return Mode::Lines,
            Ok("none") => return Mode::Hidden,
            _ => {}
        }
        let term_ok = std::env::var_os("TERM").is_some_and(|t| !t.is_empty() && t != "dumb");
        if io::stderr().is_terminal() && term_ok {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    bytes: bool,
    mode: Mode,
    start: Instant,
    last_draw: Option<Instant>,
    /// Lines mode: the last tenth printed.
    last_tenth: u64,
    /// Lines mode: whether any line was printed (a closing line alone is noise for quick work).
    printed: bool,
    out: Box<dyn Write>,
    finished: bool,
}

impl Progress {
    /// Progress over `total` bytes (or an unknown amount) on stderr.
    pub fn bytes(label: impl Into<String>, total: Option<u64>, mode: Mode) -> Progress {
        Self::with_writer(label, total, true, mode, Box::new(io::stderr()))
    }

    /// Progress over `total` items (files, modules) on stderr.
    pub fn items(label: impl Into<String>, total: Option<u64>, mode: Mode) -> Progress {
        Self::with_writer(label, total, false, mode, Box::new(io::stderr()))
    }

    pub fn with_writer(
        label: impl Into<String>,
        total: Option<u64>,
        bytes: bool,
        mode: Mode,
        out: Box<dyn Write>,
    ) -> Progress {
        Progress {
            label: label.into(),
            total,
            done: 0,
            bytes,
            mode,
            start: Instant::now(),
            last_draw: None,
            last_tenth: 0,
            printed: false,
            out,
            finished: false,
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        self.tick(Instant::now());
    }

    fn tick(&mut self, now: Instant) {
        match self.mode {
            Mode::Hidden => {}
            Mode::Bar => {
                if self
                    .last_draw
                    .is_none_or(|t| now.duration_since(t) >= BAR_EVERY)
                {
                    self.last_draw = Some(now);
                    let line = self.line(now, true);
                    let _ = write!(self.out, "\r\x1b[K{line}");
                    let _ = self.out.flush();
                }
            }
            Mode::Lines => {
                let due = match self.total {
                    Some(t) if t > 0 => {
                        let tenth = self.done.min(t).saturating_mul(10) / t;
                        if tenth > self.last_tenth {
                            self.last_tenth = tenth;
                            tenth < 10
                        } else {
                            false
                        }
                    }
                    _ => self
                        .last_draw
                        .map_or(now.duration_since(self.start) >= LINE_EVERY, |t| {
                            now.duration_since(t) >= LINE_EVERY
                        }),
                };
                if due {
                    self.last_draw = Some(now);
                    self.printed = true;
                    let line = self.line(now, false);
                    let _ = writeln!(self.out, "{line}");
                }
            }
        }
    }

    fn amount(&self, n: u64) -> String {
        if self.bytes {
            human(n)
        } else {
            n.to_string()
        }
    }

    /// `label  45% [=========>          ] 61.2 MiB/136 MiB  12.3 MiB/s  ETA 0:07`
    fn line(&self, now: Instant, bar: bool) -> String {
        let secs = now.duration_since(self.start).as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let mut s = format!("{}:", self.label);
        if let Some(t) = self.total.filter(|t| *t > 0) {
            let pct = (self.done.min(t) as f64 * 100.0 / t as f64) as u64;
            s.push_str(&format!(" {pct:3}%"));
            if bar {
                const W: usize = 24;
                let filled = (self.done.min(t) as f64 / t as f64 * W as f64) as usize;
                let mut b = "=".repeat(filled);
                if filled < W {
                    b.push('>');
                    b.push_str(&" ".repeat(W - filled - 1));
                }
                s.push_str(&format!(" [{b}]"));
            }
            s.push_str(&format!(" {}/{}", self.amount(self.done), self.amount(t)));
            if self.bytes && rate > 0.0 {
                s.push_str(&format!("  {}/s", human(rate as u64)));
                let left = t.saturating_sub(self.done) as f64 / rate;
                s.push_str(&format!("  ETA {}", duration(left as u64)));
            }
        } else {
            s.push_str(&format!(" {}", self.amount(self.done)));
            if self.bytes && rate > 0.0 {
                s.push_str(&format!("  {}/s", human(rate as u64)));
            }
        }
        s
    }

    /// The closing line: how much, how long.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let secs = self.start.elapsed().as_secs_f64();
        let mut msg = format!("{}: done, {}", self.label, self.amount(self.done));
        if !self.bytes {
            msg.push_str(" items");
        }
        msg.push_str(&format!(" in {secs:.1} s"));
        if self.bytes && secs > 0.0 {
            msg.push_str(&format!(" ({}/s)", human((self.done as f64 / secs) as u64)));
        }
        match self.mode {
            Mode::Hidden => {}
            Mode::Bar => {
                let _ = writeln!(self.out, "\r\x1b[K{msg}");
            }
            Mode::Lines if self.printed || secs >= QUIET_UNDER => {
                let _ = writeln!(self.out, "{msg}");
            }
            Mode::Lines => {}
        }
        let _ = self.out.flush();
    }

    /// Clears a live bar without a closing line (before printing an error).
    pub fn abandon(&mut self) {
        if self.mode == Mode::Bar && !self.finished {
            let _ = write!(self.out, "\r\x1b[K");
            let _ = self.out.flush();
        }
        self.finished = true;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Progress of work with no measurable total (a compiler run): the current step on one
/// redrawn line on a capable terminal, a plain line every `LINE_EVERY` otherwise.
pub struct Activity {
    label: String,
    mode: Mode,
    start: Instant,
    last: Option<Instant>,
    out: Box<dyn Write>,
    spin: usize,
}

impl Activity {
    pub fn new(label: impl Into<String>, mode: Mode) -> Activity {
        Self::with_writer(label, mode, Box::new(io::stderr()))
    }

    pub fn with_writer(label: impl Into<String>, mode: Mode, out: Box<dyn Write>) -> Activity {
        Activity {
            label: label.into(),
            mode,
            start: Instant::now(),
            last: None,
            out,
            spin: 0,
        }
    }

    /// Shows `what` (e.g. the build log's last line).
    pub fn status(&mut self, what: &str) {
        let now = Instant::now();
        let secs = now.duration_since(self.start).as_secs();
        match self.mode {
            Mode::Hidden => {}
            Mode::Bar => {
                if self.last.is_none_or(|t| now.duration_since(t) >= BAR_EVERY) {
                    self.last = Some(now);
                    self.spin = (self.spin + 1) % 4;
                    let what: String = what.chars().take(100).collect();
                    let _ = write!(
                        self.out,
                        "\r\x1b[K{} {} {}: {what}",
                        ["|", "/", "-", "\\"][self.spin],
                        duration(secs),
                        self.label
                    );
                    let _ = self.out.flush();
                }
            }
            Mode::Lines => {
                let due = match self.last {
                    Some(t) => now.duration_since(t) >= LINE_EVERY,
                    None => now.duration_since(self.start) >= LINE_EVERY,
                };
                if due {
                    self.last = Some(now);
                    let what: String = what.chars().take(160).collect();
                    let _ = writeln!(self.out, "{} ({}): {what}", self.label, duration(secs));
                }
            }
        }
    }

    /// Clears the live line (the caller prints the outcome).
    pub fn done(&mut self) {
        if self.mode == Mode::Bar {
            let _ = write!(self.out, "\r\x1b[K");
            let _ = self.out.flush();
        }
        self.mode = Mode::Hidden;
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[test]
    fn plain_lines_once_per_tenth_and_no_escapes() {
        let buf = Buf::default();
        let mut p = Progress::with_writer(
            "fetch",
            Some(1000),
            true,
            Mode::Lines,
            Box::new(buf.clone()),
        );
        for _ in 0..1000 {
            p.inc(1);
        }
        p.finish();
        let text = buf.text();
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
        let lines: Vec<_> = text.lines().collect();
        // 10%..90% plus the closing line (100% is said by the closing line).
        assert_eq!(lines.len(), 10, "{text}");
        assert!(lines[0].starts_with("fetch:  10%"), "{}", lines[0]);
        assert!(
            lines[9].starts_with("fetch: done, 1000 B in"),
            "{}",
            lines[9]
        );
    }

    #[test]
    fn bar_redraws_in_place() {
        let buf = Buf::default();
        let mut p =
            Progress::with_writer("extract", Some(10), false, Mode::Bar, Box::new(buf.clone()));
        p.set(5);
        p.finish();
        let text = buf.text();
        assert!(
            text.starts_with("\r\x1b[Kextract:  50% [============>"),
            "{text:?}"
        );
        assert!(
            text.ends_with("\r\x1b[Kextract: done, 5 items in 0.0 s\n"),
            "{text:?}"
        );
    }

    #[test]
    fn quick_work_prints_no_lone_closing_line() {
        let buf = Buf::default();
        let mut p = Progress::with_writer("x", Some(10), true, Mode::Lines, Box::new(buf.clone()));
        p.set(10); // all at once: no tenth to report on the way
        p.finish();
        assert_eq!(buf.text(), "");
    }

    #[test]
    fn hidden_prints_nothing() {
        let buf = Buf::default();
        let mut p =
            Progress::with_writer("x", Some(10), false, Mode::Hidden, Box::new(buf.clone()));
        p.set(10);
        p.finish();
        assert!(buf.text().is_empty());
    }
}
