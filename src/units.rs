//! Sizes for people: powers of 1024, as `df -h` and the kernel's tmpfs `size=` read them.

/// `268435456` → `256 MiB`, `1288490189` → `1.2 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if (v - v.round()).abs() < 0.05 || v >= 100.0 {
        format!("{:.0} {}", v.round(), UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A size as pacman prints it (`pacman -Qi`): two decimals, in the largest unit that leaves
/// at most 2048 of it (`97095` → `94.82 KiB`).
pub fn pacman_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while i + 1 < UNITS.len() && v > 2048.0 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2} {}", UNITS[i])
}

/// Seconds since the epoch as local time (the `TZ` variable, else /etc/localtime), formatted
/// by strftime; `None` for a time the C library cannot represent.
pub fn local_time(t: i64, format: &std::ffi::CStr) -> Option<String> {
    // SAFETY: localtime_r and strftime write only into the structures and buffer given, which
    // outlive the calls; time_t is 64 bits on x86_64 (musl and glibc alike).
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r((&t as *const i64).cast(), &mut tm).is_null() {
            return None;
        }
        let mut buf = [0u8; 128];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm);
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// A date as pacman prints it (`Build Date`: strftime's `%c` in the C locale), in local time.
pub fn pacman_date(t: i64) -> String {
    local_time(t, c"%a %b %e %H:%M:%S %Y").unwrap_or_else(|| t.to_string())
}

/// `90` → `1:30`, `3725` → `1:02:05`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A size as a person writes it: `4G`, `512M`, `1.5G`, `4GiB`, `2048K`, `1073741824`. Units
/// are powers of 1024, as tmpfs reads them.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') {
        return None;
    }
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    if let Some((whole, frac)) = num.split_once('.') {
        let whole: u64 = whole.parse().ok()?;
        let digits = frac.len().min(6) as u32;
        let frac: u64 = if digits == 0 {
            0
        } else {
            frac[..digits as usize].parse().ok()?
        };
        let unit = 1u64 << shift;
        return whole
            .checked_mul(unit)?
            .checked_add(frac.checked_mul(unit)? / 10u64.pow(digits));
    }
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacman_sizes() {
        assert_eq!(pacman_size(97_095), "94.82 KiB");
        assert_eq!(pacman_size(2048), "2048.00 B");
        assert_eq!(pacman_size(33_362), "32.58 KiB");
        assert_eq!(pacman_size(5 << 30), "5.00 GiB");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(256 << 20), "256 MiB");
        assert_eq!(human(4 << 30), "4 GiB");
        assert_eq!(human(1_288_490_189), "1.2 GiB");
        assert_eq!(human(1536), "1.5 KiB");
    }

    #[test]
    fn sizes_people_write() {
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("2 k"), Some(2048));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("4X"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(90), "1:30");
        assert_eq!(duration(3725), "1:02:05");
    }
}
