//! Sizes as fly.toml writes them: memory (`"512mb"`, `"1gb"`, `1024`), volume
//! sizes (`"10gb"`, `10`), and the named VM size presets (`shared-cpu-1x`, …).

/// Resources of a named VM size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmPreset {
    pub name: &'static str,
    pub cpu_kind: &'static str,
    pub cpus: i64,
    pub memory_mb: i64,
}

const fn preset(name: &'static str, cpu_kind: &'static str, cpus: i64, memory_mb: i64) -> VmPreset {
    VmPreset {
        name,
        cpu_kind,
        cpus,
        memory_mb,
    }
}

/// Fly's CPU sizes: shared sizes start at 256 MB per CPU, performance sizes at
/// 2 GB per CPU.
pub const VM_PRESETS: &[VmPreset] = &[
    preset("shared-cpu-1x", "shared", 1, 256),
    preset("shared-cpu-2x", "shared", 2, 512),
    preset("shared-cpu-4x", "shared", 4, 1024),
    preset("shared-cpu-8x", "shared", 8, 2048),
    preset("performance-1x", "performance", 1, 2048),
    preset("performance-2x", "performance", 2, 4096),
    preset("performance-4x", "performance", 4, 8192),
    preset("performance-8x", "performance", 8, 16384),
    preset("performance-16x", "performance", 16, 32768),
];

pub fn vm_preset(name: &str) -> Option<&'static VmPreset> {
    VM_PRESETS.iter().find(|p| p.name == name)
}

/// Megabytes in a size string with an optional unit (`k`/`kb`, `m`/`mb`/`mib`,
/// `g`/`gb`/`gib`, `t`/`tb`), case-insensitive; a bare number is in
/// `default_unit_mb` megabytes. Fractions are allowed (`"1.5gb"`); the result
/// is rounded up to a whole megabyte.
pub fn parse_size_mb(text: &str, default_unit_mb: f64) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let per = match unit.trim() {
        "" => default_unit_mb,
        "k" | "kb" | "kib" => 1.0 / 1024.0,
        "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        _ => return None,
    };
    let mb = (n * per).ceil();
    if !mb.is_finite() || mb > i64::MAX as f64 / 2.0 {
        return None;
    }
    Some(mb as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mb("1gb", 1.0), Some(1024));
        assert_eq!(parse_size_mb("512mb", 1.0), Some(512));
        assert_eq!(parse_size_mb("512MB", 1.0), Some(512));
        assert_eq!(parse_size_mb("2g", 1.0), Some(2048));
        assert_eq!(parse_size_mb("1.5 GB", 1.0), Some(1536));
        assert_eq!(parse_size_mb("1024", 1.0), Some(1024));
        assert_eq!(parse_size_mb("10", 1024.0), Some(10240));
        assert_eq!(parse_size_mb("lots", 1.0), None);
        assert_eq!(parse_size_mb("10x", 1.0), None);
        assert_eq!(parse_size_mb("", 1.0), None);
    }
}
