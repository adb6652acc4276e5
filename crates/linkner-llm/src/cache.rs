//! The answer cache: answers keyed by (model, answer mode, prompt), in memory and optionally
//! appended to a JSONL file that later runs load.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

/// What the cache stores for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// Class index.
    pub class: usize,
    /// Confidence, when the mode gives one.
    pub confidence: Option<f32>,
    /// Distribution over classes, when the mode gives one.
    pub distribution: Option<Vec<f32>>,
    /// Raw model output.
    pub raw: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    answer: CachedAnswer,
}

/// In-memory answer cache with an optional JSONL file behind it.
#[derive(Debug, Default)]
pub struct AnswerCache {
    map: Mutex<HashMap<String, CachedAnswer>>,
    file: Option<(PathBuf, Mutex<std::fs::File>)>,
}

impl AnswerCache {
    /// An empty in-memory cache.
    pub fn in_memory() -> Self {
        AnswerCache::default()
    }

    /// A cache backed by a JSONL file: existing lines are loaded (a torn last line, as left by
    /// a crash, is ignored; any other bad line is an error) and new answers are appended.
    pub fn with_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err = |m: String| LlmError::Cache {
            path: path.clone(),
            message: m,
        };
        let mut map = HashMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
            let lines: Vec<&str> = text.lines().collect();
            let n = lines.len();
            let mut torn_tail = false;
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Line>(line) {
                    Ok(l) => {
                        map.insert(l.key, l.answer);
                    }
                    Err(_) if i + 1 == n && !text.ends_with('\n') => torn_tail = true,
                    Err(e) => return Err(err(format!("line {}: {e}", i + 1))),
                }
            }
            if torn_tail {
                // Drop the torn line so that the next answer starts a clean line.
                let keep: String = lines[..n - 1].iter().map(|l| format!("{l}\n")).collect();
                std::fs::write(&path, keep).map_err(|e| err(e.to_string()))?;
            }
        } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(e.to_string()))?;
        Ok(AnswerCache {
            map: Mutex::new(map),
            file: Some((path, Mutex::new(file))),
        })
    }

    /// Number of cached answers.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached answer for `key`.
    pub fn get(&self, key: &str) -> Option<CachedAnswer> {
        self.map.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// Stores an answer (and appends it to the file, if any).
    pub fn put(&self, key: String, answer: CachedAnswer) -> Result<()> {
        if let Some((path, file)) = &self.file {
            let line = serde_json::to_string(&Line {
                key: key.clone(),
                answer: answer.clone(),
            })
            .map_err(|e| LlmError::Cache {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let mut f = file.lock().map_err(|_| LlmError::Cache {
                path: path.clone(),
                message: "cache file lock poisoned".into(),
            })?;
            writeln!(f, "{line}").map_err(|e| LlmError::Cache {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        if let Ok(mut m) = self.map.lock() {
            m.insert(key, answer);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(class: usize) -> CachedAnswer {
        CachedAnswer {
            class,
            confidence: Some(0.5),
            distribution: None,
            raw: "x".into(),
        }
    }

    #[test]
    fn disk_cache_round_trips_and_tolerates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.jsonl");
        {
            let c = AnswerCache::with_file(&path).unwrap();
            c.put("a".into(), ans(1)).unwrap();
            c.put("b".into(), ans(2)).unwrap();
        }
        // A crash mid-write leaves a torn last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"key\":\"c\",\"ans")
            .unwrap();
        let c = AnswerCache::with_file(&path).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b").unwrap().class, 2);
        assert!(c.get("c").is_none());
        c.put("d".into(), ans(3)).unwrap();
        drop(c);
        let c = AnswerCache::with_file(&path).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("d").unwrap().class, 3);
    }

    #[test]
    fn corrupt_middle_line_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        std::fs::write(&path, "garbage\n{\"key\":\"a\",\"answer\":{\"class\":1,\"confidence\":null,\"distribution\":null,\"raw\":\"\"}}\n").unwrap();
        assert!(matches!(
            AnswerCache::with_file(&path),
            Err(LlmError::Cache { .. })
        ));
    }
}
