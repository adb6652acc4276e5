//! Provenance of a tuning record or a report: what produced the figures, so that a figure can be
//! traced back to (and rerun from) its command line, binary, model, data and answer cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use linkner::LinkConfig;
use linkner::llm::OpenAiBuilder;
use linkner::llm::cache::ANSWER_FORMAT_VERSION;
use linkner::llm::openai::ServerInfo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CliError;

/// Where a set of figures came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The command line, program name first.
    pub command_line: Vec<String>,
    /// The linkner version (`CARGO_PKG_VERSION`).
    pub linkner_version: String,
    /// The git commit the binary was built from (absent outside a checkout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When the run started (HTTP date, UTC).
    pub started: String,
    /// The LLM the run asked, as configured and as the server reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmProvenance>,
    /// The input files (dev/test data, examples) with their SHA-256.
    #[serde(default)]
    pub files: Vec<FileHash>,
    /// The answer cache file, when one was used (answers found there were not asked again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_cache: Option<PathBuf>,
    /// The answer-format version of the cache keys ([`ANSWER_FORMAT_VERSION`]).
    pub answer_format: u32,
}

/// The LLM of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmProvenance {
    /// The configured base URL.
    pub base_url: String,
    /// The configured model id.
    pub model: String,
    /// What the server said it serves.
    pub server: ServerInfo,
    /// SHA-256 of the model file the server reported, when that file is readable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
}

/// One input file and its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHash {
    /// What the file is to the run (`dev`, `examples`, `data:oov`, …).
    pub role: String,
    /// Its path as given.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl FileHash {
    /// Hashes `path` for `role`.
    pub fn of(role: &str, path: &Path) -> Result<FileHash, CliError> {
        let (bytes, sha256) = sha256_file(path)?;
        Ok(FileHash {
            role: role.to_string(),
            path: path.to_path_buf(),
            bytes,
            sha256,
        })
    }
}

/// Size and hex SHA-256 of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> Result<(u64, String), CliError> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((total, hex))
}

impl Provenance {
    /// The provenance of this process: command line, version, commit, start time; no LLM,
    /// files or cache yet.
    pub fn of_this_run() -> Provenance {
        Provenance {
            command_line: std::env::args().collect(),
            linkner_version: env!("CARGO_PKG_VERSION").to_string(),
            commit: option_env!("LINKNER_COMMIT").map(str::to_string),
            started: linkner::llm::http::format_http_date(SystemTime::now()),
            llm: None,
            files: Vec::new(),
            answer_cache: None,
            answer_format: ANSWER_FORMAT_VERSION,
        }
    }

    /// Adds `path` as `role` (hashed).
    pub fn file(&mut self, role: &str, path: &Path) -> Result<(), CliError> {
        self.files.push(FileHash::of(role, path)?);
        Ok(())
    }

    /// Records the LLM of `config` (asking its server what it serves) and its answer cache,
    /// and the examples file of `config` (hashed). Nothing is recorded for a config without
    /// an LLM.
    pub fn llm_of(
        &mut self,
        config: &LinkConfig,
        rt: &tokio::runtime::Runtime,
    ) -> Result<(), CliError> {
        if let Some(ex) = &config.examples
            && !self.files.iter().any(|f| f.role == "examples")
        {
            self.file("examples", &ex.from)?;
        }
        let Some(llm) = &config.llm else {
            return Ok(());
        };
        self.answer_cache = llm.reliability.cache_path.clone();
        let (base_url, model) = (llm.backend.base_url.clone(), llm.backend.model.clone());
        // Only the endpoint is asked: no examples drawn, no answer cache or Redis tier opened
        // (the run's own classifier does that).
        let mut endpoint = llm.clone();
        endpoint.reliability.cache = false;
        endpoint.reliability.cache_path = None;
        endpoint.reliability.cache_redis_url = None;
        let client = OpenAiBuilder::from_config(endpoint).build()?;
        let server = rt.block_on(client.server_info(Duration::from_secs(10)));
        let model_sha256 = server
            .model_path
            .as_deref()
            .map(Path::new)
            .filter(|p| p.is_file())
            .and_then(|p| sha256_file(p).ok())
            .map(|(_, hex)| hex);
        self.llm = Some(LlmProvenance {
            base_url,
            model,
            server,
            model_sha256,
        });
        Ok(())
    }

    /// One Markdown line: version, commit, LLM model file and hash, answer cache.
    pub fn markdown_line(&self) -> String {
        let mut s = format!(
            "linkner {} at commit `{}`, started {}",
            self.linkner_version,
            self.commit.as_deref().unwrap_or("unknown"),
            self.started
        );
        if let Some(l) = &self.llm {
            s.push_str(&format!("; LLM `{}` at {}", l.model, l.base_url));
            if let Some(p) = &l.server.model_path {
                s.push_str(&format!(
                    " (file `{}`",
                    Path::new(p)
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                ));
                if let Some(h) = &l.model_sha256 {
                    s.push_str(&format!(", sha256 {}…", &h[..16.min(h.len())]));
                }
                if let Some(n) = l.server.slots {
                    s.push_str(&format!(", {n} slot{}", if n == 1 { "" } else { "s" }));
                }
                s.push(')');
            }
        }
        match &self.answer_cache {
            Some(c) => s.push_str(&format!(
                "; answer cache `{}` (format {})",
                c.display(),
                self.answer_format
            )),
            None => s.push_str("; no answer cache"),
        }
        s.push('.');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hash_is_the_sha256_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc.txt");
        std::fs::write(&p, b"abc").unwrap();
        let h = FileHash::of("dev", &p).unwrap();
        assert_eq!(h.bytes, 3);
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            h.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(FileHash::of("dev", &dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_markdown_line_names_what_is_known() {
        let mut p = Provenance::of_this_run();
        p.commit = Some("abc123".into());
        p.llm = Some(LlmProvenance {
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "qwen".into(),
            server: ServerInfo {
                model_path: Some("/m/qwen.gguf".into()),
                slots: Some(1),
                ..ServerInfo::default()
            },
            model_sha256: Some("0123456789abcdef0123".into()),
        });
        let line = p.markdown_line();
        for want in [
            "commit `abc123`",
            "LLM `qwen`",
            "file `qwen.gguf`",
            "sha256 0123456789abcdef…",
            "1 slot)",
            "no answer cache",
        ] {
            assert!(line.contains(want), "{want}: {line}");
        }
    }
}
