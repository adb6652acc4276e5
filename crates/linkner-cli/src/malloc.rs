//! glibc allocator settings for LibTorch's large tensors (Linux with glibc only).
//!
//! glibc serves every allocation above its mmap threshold (at most 32 MiB) with fresh pages from
//! the kernel and unmaps them on free, so the next one page-faults and zero-fills them again.
//! LibTorch allocates and frees tensors of the word-embedding matrix's size (47 MB for MiniLM:
//! its gradient, the gradient-clipping and AdamW temporaries) several times per training step;
//! on the reference machine that was about a third of all page faults and ~10 % of a training
//! step spent in the kernel (`perf`, `docs/benchmarks.md`). [`tune`] re-executes the binary once
//! with `GLIBC_TUNABLES` asking glibc to keep such blocks in the heap (`mmap_max=0`) and to give
//! memory back to the kernel only in large pieces (`trim_threshold`); the arithmetic is the same,
//! only where the memory comes from changes. `LINKNER_MALLOC=system` (or any `GLIBC_TUNABLES`
//! that already sets `mmap_max`) leaves the allocator alone.

use std::ffi::OsString;

/// Set (to `1`) in the environment of the re-executed process.
pub const MARKER: &str = "LINKNER_MALLOC_TUNED";

/// The tunables added to `GLIBC_TUNABLES`.
const TUNABLES: &str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824";

/// Re-executes the current binary with the tunables, unless they are set, turned off, or this
/// is not Linux with glibc; returns only when it does not re-execute (or the exec failed, which
/// is harmless: the program runs with the default allocator settings).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        if std::env::var_os(MARKER).is_some()
            || std::env::var("LINKNER_MALLOC").is_ok_and(|v| v == "system")
        {
            return;
        }
        let current = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
        if current.to_string_lossy().contains("glibc.malloc.mmap_max") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let mut tunables = current;
        if !tunables.is_empty() {
            tunables.push(":");
        }
        tunables.push(TUNABLES);
        // `exec` only returns on failure; then the program goes on as it is.
        let _ = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .env(MARKER, "1")
            .exec();
    }
}

/// The environment the user started the program with: what [`tune`] added is removed (for child
/// processes such as the Python peers of `linkner bench`, which are measured as users run them).
pub fn original_env() -> Vec<(OsString, Option<OsString>)> {
    if std::env::var_os(MARKER).is_none() {
        return Vec::new();
    }
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let rest: Vec<&str> = tunables
        .split(':')
        .filter(|t| !t.is_empty() && !TUNABLES.split(':').any(|x| x == *t))
        .collect();
    vec![
        (MARKER.into(), None),
        (
            "GLIBC_TUNABLES".into(),
            (!rest.is_empty()).then(|| rest.join(":").into()),
        ),
    ]
}
