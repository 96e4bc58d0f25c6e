//! Sync databases (`<repo>.db`): a gzip, zstd or xz tar of `NAME-VER/desc` files, one per
//! package a repository offers. The format only; where the files come from is the caller's.

use std::io::Read;

use crate::decompress;
use crate::error::{Error, Result};
use crate::pkg::db::fields;

/// One package of a sync database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbEntry {
    pub filename: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    pub sha256: Option<String>,
    pub csize: Option<u64>,
}

/// The packages of a sync database (`<repo>.db`: a gzip, zstd or xz tar of `NAME-VER/desc`).
pub fn read_db(bytes: &[u8]) -> Result<Vec<DbEntry>> {
    let (_, dec) = decompress::decoder(std::io::Cursor::new(bytes.to_vec()))?;
    let mut ar = tar::Archive::new(dec);
    let mut out = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| Error::invalid("not a repository database").with_source(e))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::invalid("damaged repository database").with_source(e))?;
        let path = entry.path_bytes().into_owned();
        if !path.ends_with(b"/desc") {
            continue;
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::invalid(format!("{}: unreadable", String::from_utf8_lossy(&path)))
                    .with_source(e)
            })?;
        let mut d = DbEntry::default();
        fields(&text, |key, line| match key {
            "%FILENAME%" => d.filename = line.to_string(),
            "%NAME%" => d.name = line.to_string(),
            "%VERSION%" => d.version = line.to_string(),
            "%ARCH%" => d.arch = line.to_string(),
            "%SHA256SUM%" => d.sha256 = Some(line.to_ascii_lowercase()),
            "%CSIZE%" => d.csize = line.parse().ok(),
            _ => {}
        });
        if d.filename.is_empty()
            || d.filename.contains('/')
            || d.filename.starts_with('.')
            || d.name.is_empty()
        {
            return Err(Error::invalid(format!(
                "{}: an entry without a usable %FILENAME%/%NAME%",
                String::from_utf8_lossy(&path)
            )));
        }
        out.push(d);
    }
    Ok(out)
}
