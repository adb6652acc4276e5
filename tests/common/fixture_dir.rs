//! A folder for a test binary's trained fixture that does not outlive the build folder: under
//! the build's `CARGO_TARGET_TMPDIR`, one per test crate and process, and the folders of the same
//! crate's earlier processes that are no longer running are removed when a new one is made (a
//! kept temporary folder per run filled /tmp with 175 MB checkpoints).

use std::path::{Path, PathBuf};

/// `CARGO_TARGET_TMPDIR/fixtures/<crate>-<pid>/<name>`, created empty; stale siblings of
/// `crate` from processes that have exited are deleted first.
pub fn fixture_dir(root: &Path, krate: &str, name: &str) -> PathBuf {
    let base = root.join("fixtures");
    std::fs::create_dir_all(&base).unwrap();
    let prefix = format!("{krate}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let file_name = e.file_name();
            let Some(pid) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let alive = Path::new("/proc").join(pid.to_string()).exists();
            if pid != std::process::id() && Path::new("/proc/self").exists() && !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base
        .join(format!("{prefix}{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
