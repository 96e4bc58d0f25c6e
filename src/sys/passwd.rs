//! `/etc/passwd` of the system being repaired: who a user is, without NSS or the host's own
//! user database (the live system's uids mean nothing for the installed one).

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The home directory as the system itself sees it (`/home/alice`): below its root.
    pub home: PathBuf,
}

/// The entry for `name` in the text of a passwd file. Malformed lines are skipped, as
/// glibc does; `+`/`-` NIS compat lines name no local user.
pub fn find(text: &str, name: &str) -> Option<User> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 || f[0] != name || name.starts_with(['+', '-']) {
            return None;
        }
        Some(User {
            name: f[0].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: PathBuf::from(f[5]),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/bash\n\
        broken:x:12\n\
        alice:x:1000:1000:Alice A,,,:/home/alice:/usr/bin/zsh\n\
        bob:x:notanumber:1001::/home/bob:/bin/sh\n\
        +nis::::::\n";

    #[test]
    fn finds_by_exact_name() {
        let a = find(PASSWD, "alice").unwrap();
        assert_eq!((a.uid, a.gid), (1000, 1000));
        assert_eq!(a.home, PathBuf::from("/home/alice"));
        assert_eq!(find(PASSWD, "root").unwrap().home, PathBuf::from("/root"));
        assert_eq!(find(PASSWD, "ali"), None);
        assert_eq!(find(PASSWD, "broken"), None);
        assert_eq!(find(PASSWD, "bob"), None);
        assert_eq!(find(PASSWD, "+nis"), None);
    }
}
