//! The shipped binary is static: no program interpreter, no shared libraries; and small: within
//! the 4 MiB budget, with no unwind tables (nothing unwinds, see scripts/link-static.sh).

mod common;

use std::path::PathBuf;

const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const DT_NEEDED: u64 = 1;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// (has PT_INTERP, number of DT_NEEDED entries) of a little-endian ELF64 file.
fn inspect(elf: &[u8]) -> (bool, usize) {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not ELF64");
    let phoff = u64_at(elf, 0x20) as usize;
    let phentsize = u16_at(elf, 0x36) as usize;
    let phnum = u16_at(elf, 0x38) as usize;
    let mut interp = false;
    let mut needed = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(elf, ph) {
            PT_INTERP => interp = true,
            PT_DYNAMIC => {
                let off = u64_at(elf, ph + 8) as usize;
                let size = u64_at(elf, ph + 32) as usize;
                for e in (off..off + size).step_by(16) {
                    match u64_at(elf, e) {
                        0 => break,
                        DT_NEEDED => needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (interp, needed)
}

/// The names of an ELF64 file's sections, from its section-name string table.
fn section_names(elf: &[u8]) -> Vec<String> {
    let shoff = u64_at(elf, 0x28) as usize;
    let shentsize = u16_at(elf, 0x3a) as usize;
    let shnum = u16_at(elf, 0x3c) as usize;
    let shstrndx = u16_at(elf, 0x3e) as usize;
    let strtab = u64_at(elf, shoff + shstrndx * shentsize + 0x18) as usize;
    (0..shnum)
        .map(|i| {
            let name = strtab + u32_at(elf, shoff + i * shentsize) as usize;
            let end = elf[name..].iter().position(|&b| b == 0).unwrap() + name;
            String::from_utf8_lossy(&elf[name..end]).into_owned()
        })
        .collect()
}

fn release_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RTOOL_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-musl/release/rtool");
    assert!(
        p.is_file(),
        "{} is missing: build it with `make static` (or run `make test`)",
        p.display()
    );
    p
}

#[test]
fn release_binary_is_static_and_within_budget() {
    let p = release_binary();
    let elf = std::fs::read(&p).unwrap();
    let (interp, needed) = inspect(&elf);
    assert!(
        !interp,
        "{} has a program interpreter (PT_INTERP): not static",
        p.display()
    );
    assert_eq!(
        needed,
        0,
        "{} needs shared libraries (DT_NEEDED)",
        p.display()
    );
    assert!(
        elf.len() <= 4 << 20,
        "{} is {} bytes, over the 4 MiB budget",
        p.display(),
        elf.len()
    );
    let sections = section_names(&elf);
    assert!(
        sections.iter().any(|s| s == ".text"),
        "no .text among {sections:?}: the section table was not read"
    );
    assert!(
        !sections.iter().any(|s| s.starts_with(".eh_frame")),
        "{} keeps unwind tables: {sections:?}",
        p.display()
    );
    // And it runs.
    common::Cmd::new(&p).arg("--version").run().success();
}

#[test]
fn the_check_itself_sees_a_dynamic_binary() {
    // /bin/sh on this machine is dynamically linked: the inspection must say so.
    let elf = std::fs::read(std::fs::canonicalize("/bin/sh").unwrap()).unwrap();
    let (interp, needed) = inspect(&elf);
    assert!(
        interp && needed > 0,
        "expected /bin/sh to be dynamic (interp {interp}, needed {needed})"
    );
    // And it keeps its unwind tables, which the section check must see.
    let sections = section_names(&elf);
    assert!(
        sections.iter().any(|s| s == ".eh_frame"),
        "expected /bin/sh to have .eh_frame: {sections:?}"
    );
}
