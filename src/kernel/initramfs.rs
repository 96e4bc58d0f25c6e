//! What an initramfs image holds for the kernel: the releases of its `lib/modules/KVER`
//! directories and every module file. The image itself is read by `archive::initramfs`.

use std::path::Path;

use crate::archive::extract::EntryKind;
use crate::archive::initramfs::for_each;
use crate::error::Result;
use crate::kernel::{module_name, release_of_path};

/// A module file found in an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleFile {
    /// As the kernel names it (`zfs`, `dm_crypt`).
    pub name: String,
    pub path: String,
    pub segment: usize,
    /// The kernel release of the `lib/modules/KVER` it sits in.
    pub release: Option<String>,
}

/// What an image holds for the kernel: the releases of its `lib/modules/KVER` directories and
/// every module file.
#[derive(Clone, Debug, Default)]
pub struct Contents {
    pub releases: Vec<String>,
    pub modules: Vec<ModuleFile>,
}

impl Contents {
    /// Whether module `name` (`zfs`, `dm-crypt`) is there, for `release` when given.
    pub fn has(&self, name: &str, release: Option<&str>) -> Option<&ModuleFile> {
        let name = name.replace('-', "_");
        self.modules
            .iter()
            .find(|m| m.name == name && release.is_none_or(|r| m.release.as_deref() == Some(r)))
    }
}

pub fn contents(path: &Path) -> Result<Contents> {
    let mut c = Contents::default();
    for_each(path, |e, _| {
        let name = String::from_utf8_lossy(&e.member.raw_name);
        let name = name.trim_start_matches("./");
        let release = release_of_path(name).map(String::from);
        if let Some(r) = &release {
            if !c.releases.contains(r) {
                c.releases.push(r.clone());
            }
        }
        let file = name.rsplit('/').next().unwrap_or(name);
        if let Some(m) = module_name(file).filter(|_| e.member.kind == EntryKind::File) {
            c.modules.push(ModuleFile {
                name: m,
                path: name.to_string(),
                segment: e.segment,
                release,
            });
        }
        Ok(())
    })?;
    c.releases.sort();
    Ok(c)
}
