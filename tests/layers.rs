//! `scripts/layers.sh`, the layering check of `make lint`: the tree passes it, and a copy of
//! the tree with one bad import fails it, naming the file, the line and the edge.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the check of `dir` (with `dir`'s own script): whether it passed, and what it said.
fn check(dir: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg(dir.join("scripts/layers.sh"))
        .arg(dir)
        .output()
        .expect("bash runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A copy of the sources and the script, to break on purpose.
fn copy_of_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("a temporary directory");
    for d in ["src", "applets", "scripts"] {
        let st = Command::new("cp")
            .arg("-r")
            .arg(repo().join(d))
            .arg(t.path())
            .status()
            .expect("cp runs");
        assert!(st.success(), "cp -r {d}");
    }
    t
}

/// Appends `text` to `rel` in the copy; returns the line number of its first line.
fn append(dir: &Path, rel: &str, text: &str) -> usize {
    let p = dir.join(rel);
    let mut s = std::fs::read_to_string(&p).expect("the file is there");
    if !s.ends_with('\n') {
        s.push('\n');
    }
    let line = s.lines().count() + 1;
    s.push_str(text);
    std::fs::write(&p, s).expect("written");
    line
}

fn problems(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with("  ")).collect()
}

#[test]
fn the_tree_keeps_its_layers() {
    let (ok, text) = check(&repo());
    assert!(ok, "{text}");
    assert!(text.contains("no circle"), "{text}");
}

#[test]
fn a_package_format_importing_the_network_fails_with_the_edge_and_the_circle() {
    let t = copy_of_tree();
    let line = append(
        t.path(),
        "src/pkg/vercmp.rs",
        "use crate::net::http::Client;\n",
    );
    let (ok, text) = check(t.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "src/pkg/vercmp.rs:{line}: pkg -> net: not allowed (pkg may import: error paths"
        )),
        "{text}"
    );
    // net uses pkg, so the same import also closes a circle, reported with both edges.
    assert!(text.contains("circle: "), "{text}");
    assert!(
        text.contains(&format!("  src/pkg/vercmp.rs:{line}: pkg -> net")),
        "{text}"
    );
    assert!(text.contains(": net -> pkg"), "{text}");
}

#[test]
fn grouped_and_inline_paths_count_comments_and_strings_do_not() {
    let t = copy_of_tree();
    let line = append(
        t.path(),
        "src/pkg/name.rs",
        "use crate::{\n    error::Error,\n    sys::mountinfo,\n};\n\
         // crate::kernel::modules_dir in a comment\n\
         const S: &str = \"crate::net::http // not a comment\";\n\
         const Q: char = '\"';\n\
         fn f() { let _ = r#\"crate::sig\"#; crate::install::links(Q); }\n",
    );
    let (ok, text) = check(t.path());
    assert!(!ok, "{text}");
    assert_eq!(
        problems(&text),
        [
            format!("src/pkg/name.rs:{}: pkg -> sys: not allowed (pkg may import: error paths units text json hash decompress progress report)", line + 2),
            format!("src/pkg/name.rs:{}: pkg -> install: not allowed (pkg may import: error paths units text json hash decompress progress report)", line + 7),
            "layers: 2 problem(s)".to_string(),
        ],
        "{text}"
    );
}

#[test]
fn the_library_never_imports_an_applet() {
    let t = copy_of_tree();
    let line = append(
        t.path(),
        "src/kernel/mod.rs",
        "#[path = \"../../applets/modprobe.rs\"]\nmod modprobe_applet;\n",
    );
    let (ok, text) = check(t.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "src/kernel/mod.rs:{line}: kernel -> applets: not allowed"
        )),
        "{text}"
    );
}

#[test]
fn a_circle_fails_even_when_the_table_allows_both_edges() {
    let t = copy_of_tree();
    let script = t.path().join("scripts/layers.sh");
    let s = std::fs::read_to_string(&script).expect("the script is there");
    let widened = s.replacen(
        "\npkg:         @helpers\n",
        "\npkg:         @helpers net\n",
        1,
    );
    assert_ne!(s, widened, "the table has a pkg line");
    std::fs::write(&script, widened).expect("written");
    let line = append(
        t.path(),
        "src/pkg/vercmp.rs",
        "fn f() { let _ = crate::net::ala::DEFAULT_MIRROR; }\n",
    );
    let (ok, text) = check(t.path());
    assert!(!ok, "{text}");
    assert!(!text.contains("not allowed"), "{text}");
    assert!(text.contains("circle: "), "{text}");
    assert!(
        text.contains(&format!("  src/pkg/vercmp.rs:{line}: pkg -> net")),
        "{text}"
    );
}

#[test]
fn a_domain_missing_from_the_table_fails() {
    let t = copy_of_tree();
    std::fs::write(t.path().join("src/cache.rs"), "//! A new domain.\n").expect("written");
    let (ok, text) = check(t.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains("src/cache: the domain `cache` is not in the table of scripts/layers.sh"),
        "{text}"
    );
}

/// The table's lines, comments and blank lines left out, spaces collapsed.
fn table_lines(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn architecture_states_the_table_the_script_enforces() {
    let script = std::fs::read_to_string(repo().join("scripts/layers.sh")).expect("the script");
    let (_, rest) = script.split_once("TABLE='\n").expect("the script's table");
    let (enforced, _) = rest.split_once("\n'\n").expect("the table ends");
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let (_, rest) = doc
        .split_once("## What each domain may import\n")
        .expect("the section");
    let (_, rest) = rest.split_once("```\n").expect("the table opens");
    let (stated, _) = rest.split_once("```\n").expect("the table closes");
    assert_eq!(table_lines(stated), table_lines(enforced));
}
