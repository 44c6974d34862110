//! Capabilities kept by container processes: the default set of OCI runtimes
//! (runc, Docker), everything else dropped from all five sets.

use super::sys::{self, Ctx, StageError};

/// Capability numbers from `linux/capability.h`.
const CHOWN: u32 = 0;
const DAC_OVERRIDE: u32 = 1;
const FOWNER: u32 = 3;
const FSETID: u32 = 4;
const KILL: u32 = 5;
const SETGID: u32 = 6;
const SETUID: u32 = 7;
const SETPCAP: u32 = 8;
const NET_BIND_SERVICE: u32 = 10;
const NET_RAW: u32 = 13;
const SYS_CHROOT: u32 = 18;
const MKNOD: u32 = 27;
const AUDIT_WRITE: u32 = 29;
const SETFCAP: u32 = 31;

/// The default set: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID,
/// SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE
/// (`CapEff` `00000000a80425fb` for root).
pub(crate) const DEFAULT_CAPS: u64 = (1 << CHOWN)
    | (1 << DAC_OVERRIDE)
    | (1 << FOWNER)
    | (1 << FSETID)
    | (1 << KILL)
    | (1 << SETGID)
    | (1 << SETUID)
    | (1 << SETPCAP)
    | (1 << NET_BIND_SERVICE)
    | (1 << NET_RAW)
    | (1 << SYS_CHROOT)
    | (1 << MKNOD)
    | (1 << AUDIT_WRITE)
    | (1 << SETFCAP);

/// Highest capability number this code knows the kernel may have; dropping an
/// unknown number is a no-op.
const LAST_CAP: u32 = 63;

/// Drops from the bounding set every capability not in `keep`. Runs while the
/// process still has CAP_SETPCAP, before the user is switched.
pub(crate) fn limit_bounding(keep: u64) -> Result<(), StageError> {
    for cap in 0..=LAST_CAP {
        if keep & (1 << cap) == 0 {
            sys::capbset_drop(cap)
                .ctx(|| format!("drop capability {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable to `keep` for uid 0 and to nothing
/// for other users (as OCI runtimes do for non-root users without explicit
/// capabilities), and clears the ambient set. Runs after `setuid`.
pub(crate) fn apply(keep: u64, uid: u32) -> Result<(), StageError> {
    let mask = if uid == 0 { keep } else { 0 };
    sys::capset(mask).ctx(|| "set capabilities".to_string())?;
    sys::clear_ambient().ctx(|| "clear ambient capabilities".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_matches_the_oci_default_mask() {
        assert_eq!(DEFAULT_CAPS, 0xa804_25fb);
    }
}
