//! Findings: a status, what was found, and the next step. Shared by `doctor` and `preflight`.

use std::io::Write;

use crate::json::Json;
use crate::text;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Info,
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Info => "INFO",
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Status::Info => "\x1b[36m",
            Status::Ok => "\x1b[32m",
            Status::Warn => "\x1b[33m",
            Status::Fail => "\x1b[1;31m",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Finding {
    /// A stable identifier for scripts (`cowspace`, `boot-mount`).
    pub id: &'static str,
    pub status: Status,
    /// What was found, one line.
    pub summary: String,
    /// Further lines: details, lists.
    pub details: Vec<String>,
    /// What to do next, naming the rtool applet where there is one.
    pub next: Option<String>,
    /// Facts for `--json`.
    pub data: Json,
}

impl Finding {
    pub fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            id,
            status,
            summary: summary.into(),
            details: Vec::new(),
            next: None,
            data: Json::obj(),
        }
    }

    pub fn next(mut self, step: impl Into<String>) -> Finding {
        self.next = Some(step.into());
        self
    }

    pub fn detail(mut self, line: impl Into<String>) -> Finding {
        self.details.push(line.into());
        self
    }

    pub fn data(mut self, key: &str, value: impl Into<Json>) -> Finding {
        self.data.push(key, value);
        self
    }
}

/// The worst status among the findings (`Info` when there are none).
pub fn worst(findings: &[Finding]) -> Status {
    findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Info)
}

/// One block per finding: `[ OK ] summary`, indented details, `-> next step`, wrapped to the
/// terminal (80 columns at most) with each continuation under the text it continues.
pub fn write_text(out: &mut dyn Write, findings: &[Finding], color: bool) -> std::io::Result<()> {
    write_text_to(out, findings, color, text::stdout_width())
}

/// The column the text of a finding starts at, after `[WARN] `.
const INDENT: usize = 9;

fn write_text_to(
    out: &mut dyn Write,
    findings: &[Finding],
    color: bool,
    width: Option<usize>,
) -> std::io::Result<()> {
    let pad = " ".repeat(INDENT);
    for f in findings {
        let word = f.status.word();
        // The colour codes take no columns: the line is wrapped as if they were not there.
        let tag = format!("[{word:^4}] ");
        let line = text::hang(&tag, &format!("{}: {}", f.id, f.summary), INDENT, width);
        if color {
            let painted = format!("[{}{word:^4}\x1b[0m] ", f.status.color());
            writeln!(out, "{painted}{}", &line[tag.len()..])?;
        } else {
            writeln!(out, "{line}")?;
        }
        for d in &f.details {
            writeln!(out, "{}", text::hang(&pad, d, INDENT, width))?;
        }
        if let Some(n) = &f.next {
            let arrow = format!("{pad}-> ");
            writeln!(out, "{}", text::hang(&arrow, n, INDENT + 3, width))?;
        }
    }
    Ok(())
}

pub fn to_json(findings: &[Finding]) -> Json {
    Json::Arr(
        findings
            .iter()
            .map(|f| {
                Json::obj()
                    .with("id", f.id)
                    .with("status", f.status.word())
                    .with("summary", &f.summary)
                    .with("details", f.details.clone())
                    .with("next", f.next.clone())
                    .with("data", f.data.clone())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_blocks() {
        let f = vec![
            Finding::new("a", Status::Ok, "fine"),
            Finding::new("b", Status::Fail, "broken")
                .detail("why")
                .next("rtool fix"),
        ];
        let mut out = Vec::new();
        write_text_to(&mut out, &f, false, None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[ OK ] a: fine\n[FAIL] b: broken\n         why\n         -> rtool fix\n"
        );
        assert_eq!(worst(&f), Status::Fail);
    }

    #[test]
    fn long_findings_wrap_under_their_text() {
        let f = vec![Finding::new("fallback", Status::Warn, "only one kernel is installed: nothing to fall back to if it fails")
            .next("`rtool kernel-keep` keeps the current kernel bootable across an upgrade, or install linux-lts")];
        let mut out = Vec::new();
        write_text_to(&mut out, &f, false, Some(80)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "[WARN] fallback: only one kernel is installed: nothing to fall back to if it\n         \
             fails\n         -> `rtool kernel-keep` keeps the current kernel bootable across an\n            \
             upgrade, or install linux-lts\n"
        );
        assert!(text.lines().all(|l| l.len() <= 80));
    }
}
