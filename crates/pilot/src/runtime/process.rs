//! The last steps before a container process runs, shared by `start` and `exec`:
//! find the program in the container's `PATH`, enter the working directory, drop
//! capabilities, switch user, set `no_new_privs`, install seccomp, and `execve`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, execve, setgid, setgroups, setuid};

use super::proto::Confinement;
use super::sys::{self, Ctx, StageError};
use super::{User, caps, seccomp};

/// `PATH` used when the process environment has none (the usual OCI default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Turns the calling process into the container process. Returns only on error.
pub(crate) fn exec_user(
    argv: &[String],
    env: &[String],
    cwd: &Path,
    user: User,
    confinement: &Confinement,
) -> StageError {
    match try_exec(argv, env, cwd, user, confinement) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(
    argv: &[String],
    env: &[String],
    cwd: &Path,
    user: User,
    confinement: &Confinement,
) -> Result<std::convert::Infallible, StageError> {
    let Some(program) = argv.first() else {
        return Err(StageError("process.argv: empty command".into()));
    };
    let path = resolve(program, env)?;
    let c_path = CString::new(path.as_os_str().as_bytes()).ctx(|| "process.argv[0]".into())?;
    let c_argv = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .ctx(|| "process.argv: contains a NUL byte".into())?;
    let c_env = env
        .iter()
        .map(|e| CString::new(e.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .ctx(|| "process.env: contains a NUL byte".into())?;

    if !cwd.is_dir() {
        std::fs::create_dir_all(cwd).ctx(|| format!("process.cwd: create {}", cwd.display()))?;
    }
    std::env::set_current_dir(cwd).ctx(|| format!("process.cwd: chdir {}", cwd.display()))?;

    caps::limit_bounding(confinement.capabilities)?;
    setgroups(&[]).ctx(|| "setgroups".into())?;
    setgid(Gid::from_raw(user.gid)).ctx(|| format!("process.user: setgid {}", user.gid))?;
    setuid(Uid::from_raw(user.uid)).ctx(|| format!("process.user: setuid {}", user.uid))?;
    caps::apply(confinement.capabilities, user.uid)?;
    umask(Mode::from_bits_truncate(0o022));
    sys::reset_signals();
    sys::set_no_new_privs().ctx(|| "set no_new_privs".into())?;
    seccomp::install(&confinement.seccomp)?;
    execve(&c_path, &c_argv, &c_env).ctx(|| format!("execve {}", path.display()))
}

/// Finds `program` in the container: as given when it contains `/`, else in the
/// `PATH` of `env`.
fn resolve(program: &str, env: &[String]) -> Result<PathBuf, StageError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let search = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(StageError(format!(
        "process.argv[0]: {program:?} not found in PATH ({search})"
    )))
}
