//! What an OpenAI-compatible server says about the model it serves, for provenance records:
//! `/v1/models` (every such server) and llama.cpp's `/props` (model file, quantisation, slots,
//! build). Best effort: a server that answers neither gives an empty [`ServerInfo`], never an
//! error — a run is not refused because its provenance is thin.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::OpenAiClassifier;

/// What the server reported (every field `None`/empty when it did not say).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The model ids of `GET {base_url}/models`.
    #[serde(default)]
    pub model_ids: Vec<String>,
    /// The model's size in bytes (`/models` `meta.size`, llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_size: Option<u64>,
    /// The model file the server loaded (`/props` `model_path`, llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<String>,
    /// Its quantisation (`/props` `model_ftype`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_ftype: Option<String>,
    /// Parallel slots (`/props` `total_slots`): answers of a server with more than one slot
    /// can differ in the last digits between runs (requests are batched together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u64>,
    /// The server's build (`/props` `build_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

impl ServerInfo {
    /// Reads the fields from the JSON of `/models` and `/props` (either may be missing).
    pub fn from_json(models: Option<&Value>, props: Option<&Value>) -> ServerInfo {
        let data = models.and_then(|m| m.get("data")).and_then(Value::as_array);
        let model_ids = data
            .map(|d| {
                d.iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let model_size = data
            .and_then(|d| d.first())
            .and_then(|m| m.pointer("/meta/size"))
            .and_then(Value::as_u64);
        let text = |key: &str| {
            props
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        ServerInfo {
            model_ids,
            model_size,
            model_path: text("model_path"),
            model_ftype: text("model_ftype"),
            slots: props
                .and_then(|p| p.get("total_slots"))
                .and_then(Value::as_u64),
            build: text("build_info"),
        }
    }
}

impl OpenAiClassifier {
    /// Asks the server what it serves (`{base_url}/models`, and `/props` beside the `/v1`
    /// root for llama-server), each within `timeout`. Never fails: see [`ServerInfo`].
    pub async fn server_info(&self, timeout: Duration) -> ServerInfo {
        let inner = &self.transport.inner;
        let base = inner.config.base_url.trim_end_matches('/');
        let root = base.strip_suffix("/v1").unwrap_or(base);
        let get = |url: String| async move {
            let mut rb = inner.http.get(url).timeout(timeout);
            if let Some(k) = &inner.api_key {
                rb = rb.bearer_auth(k.expose());
            }
            let resp = rb.send().await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            resp.json::<Value>().await.ok()
        };
        let models = get(format!("{base}/models")).await;
        let props = get(format!("{root}/props")).await;
        ServerInfo::from_json(models.as_ref(), props.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama_server_answers_are_read_and_missing_ones_are_empty() {
        let models = json!({"data": [{"id": "qwen", "meta": {"size": 1111370240u64}}]});
        let props = json!({
            "model_path": "/m/qwen.gguf", "model_ftype": "Q4_K - Medium",
            "total_slots": 4, "build_info": "b1"
        });
        let i = ServerInfo::from_json(Some(&models), Some(&props));
        assert_eq!(i.model_ids, vec!["qwen".to_string()]);
        assert_eq!(i.model_size, Some(1111370240));
        assert_eq!(i.model_path.as_deref(), Some("/m/qwen.gguf"));
        assert_eq!(i.model_ftype.as_deref(), Some("Q4_K - Medium"));
        assert_eq!((i.slots, i.build.as_deref()), (Some(4), Some("b1")));
        // An OpenAI-style server: ids only.
        let openai = json!({"object": "list", "data": [{"id": "gpt-x"}, {"id": "gpt-y"}]});
        let i = ServerInfo::from_json(Some(&openai), None);
        assert_eq!(i.model_ids.len(), 2);
        assert_eq!((i.model_path, i.slots), (None, None));
        assert_eq!(ServerInfo::from_json(None, None), ServerInfo::default());
    }
}
