//! The seccomp filter of container processes: the syscalls an OCI runtime's
//! default profile keeps from containers fail with `EPERM`.
//!
//! Docker's default profile is an allow-list of ~350 syscalls; this one is the
//! equivalent deny-list, which keeps new harmless syscalls usable and is shorter to
//! evaluate. Denied (`EPERM`): [`DENIED_SYSCALLS`], plus `clone` with any
//! namespace-creating flag. `clone3` fails with `ENOSYS`, as under Docker, so libc
//! falls back to `clone`, whose flags the filter can inspect. Syscalls of other
//! ABIs are refused: 32-bit (`int 0x80`) ones kill the process (architecture
//! check), x32 ones fail with `EPERM`.
//!
//! The programs are compiled once per runtime (in pilot) and handed to each stage
//! as packed instructions ([`PackedFilters`]).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use super::proto::PackedFilters;
use super::sys::{Ctx, StageError};

/// Syscalls that fail with `EPERM` in containers, with why.
pub const DENIED_SYSCALLS: &[(&str, i64)] = &[
    // Kernel, modules and the machine itself.
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    ("ioperm", libc::SYS_ioperm),
    ("iopl", libc::SYS_iopl),
    ("uselib", libc::SYS_uselib),
    ("_sysctl", libc::SYS__sysctl),
    ("sysfs", libc::SYS_sysfs),
    ("ustat", libc::SYS_ustat),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("vhangup", libc::SYS_vhangup),
    // Filesystems and mounts: the container's view is fixed by the runtime.
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("quotactl", libc::SYS_quotactl),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("fanotify_init", libc::SYS_fanotify_init),
    // Namespaces: no new ones, no joining others.
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    // Time is the host's.
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("settimeofday", libc::SYS_settimeofday),
    ("adjtimex", libc::SYS_adjtimex),
    // Kernel keyrings are not namespaced.
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // Tracing, introspection and cross-process memory access.
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("bpf", libc::SYS_bpf),
    ("userfaultfd", libc::SYS_userfaultfd),
];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// Compiles the container filters for x86_64.
pub(crate) fn compile() -> Result<PackedFilters, seccompiler::Error> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = DENIED_SYSCALLS
        .iter()
        .map(|(_, nr)| (*nr, Vec::new()))
        .collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let flag = *flag as u64;
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()?;
    deny.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )?;
    let programs = [
        BpfProgram::try_from(deny)?,
        BpfProgram::try_from(clone3)?,
        deny_x32(),
    ];
    Ok(programs
        .iter()
        .map(|p| p.iter().map(pack).collect())
        .collect())
}

/// The x32 ABI uses the x86_64 audit arch with syscall numbers carrying bit 30:
/// the rules above compare exact numbers, so every x32 syscall is refused here.
fn deny_x32() -> BpfProgram {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let ins = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    vec![
        // A = seccomp_data.nr
        ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        ins(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            0,
            1,
            X32_SYSCALL_BIT,
        ),
        ins(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

fn pack(ins: &sock_filter) -> u64 {
    (u64::from(ins.code) << 48)
        | (u64::from(ins.jt) << 40)
        | (u64::from(ins.jf) << 32)
        | u64::from(ins.k)
}

fn unpack(word: u64) -> sock_filter {
    sock_filter {
        code: (word >> 48) as u16,
        jt: (word >> 40) as u8,
        jf: (word >> 32) as u8,
        k: word as u32,
    }
}

/// Installs the filters on the calling process (sets `no_new_privs` first).
/// Must be the last step before `execve`.
pub(crate) fn install(filters: &PackedFilters) -> Result<(), StageError> {
    for packed in filters {
        let program: BpfProgram = packed.iter().copied().map(unpack).collect();
        seccompiler::apply_filter(&program).ctx(|| "install seccomp filter".to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let ins = sock_filter {
            code: 0x15,
            jt: 3,
            jf: 250,
            k: 0xdead_beef,
        };
        assert_eq!(unpack(pack(&ins)), ins);
    }

    #[test]
    fn filters_compile_for_every_denied_syscall() {
        let filters = compile().expect("compile");
        assert_eq!(filters.len(), 3);
        // Each denied syscall costs at least one comparison instruction.
        assert!(filters[0].len() > DENIED_SYSCALLS.len());
    }
}
