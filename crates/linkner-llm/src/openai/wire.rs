//! The wire format: the response JSON and the decoding of the answer in each mode.

use super::config::*;

use linkner_core::LabelSchema;
use serde::Deserialize;

use crate::error::{LlmError, Result};
use crate::parse::{logprob_distribution, parse_constrained, parse_free_text};
use crate::prompt::AnswerVocabulary;
use crate::request::Usage;
use linkner_core::prob::argmax;

/// What answer decoding found in a response.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Decoded {
    /// Class index.
    pub(super) class: usize,
    /// Confidence, when the mode gives one.
    pub(super) confidence: Option<f32>,
    /// Distribution over the classes, when the mode gives one.
    pub(super) distribution: Option<Vec<f32>>,
    /// Mass on the answer vocabulary before renormalising (log-probability mode).
    pub(super) label_mass: Option<f32>,
    /// The model's text.
    pub(super) raw: String,
}

/// Decodes the answer of a complete response in `mode` (strict: anything outside the schema's
/// labels is an error).
pub(super) fn decode(
    mode: AnswerMode,
    schema: &LabelSchema,
    vocab: &AnswerVocabulary,
    resp: ChatResponse,
) -> Result<Decoded> {
    let choice = resp
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::MalformedResponse("no choices in the response".into()))?;
    let content = choice.message.and_then(|m| m.content);
    // The text modes read the message: none (`"content": null`, no message) is a malformed
    // response, not an answer outside the labels.
    let text = || {
        content.as_deref().ok_or_else(|| {
            LlmError::MalformedResponse("the message has no content (null or missing)".into())
        })
    };
    let (class, confidence, distribution, label_mass) = match mode {
        AnswerMode::Constrained => (parse_constrained(schema, vocab, text()?)?, None, None, None),
        AnswerMode::FreeText => (parse_free_text(schema, vocab, text()?)?, None, None, None),
        AnswerMode::Logprobs { .. } => {
            let first = choice
                .logprobs
                .and_then(|l| l.content)
                .and_then(|c| c.into_iter().next())
                .ok_or_else(|| {
                    LlmError::MalformedResponse(
                        "log-probability mode, but the response has no logprobs (does the \
                         server support `logprobs`/`top_logprobs`?)"
                            .into(),
                    )
                })?;
            let mut top: Vec<(String, f64)> = first
                .top_logprobs
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.token, t.logprob))
                .collect();
            if top.is_empty() {
                top.push((first.token, first.logprob));
            }
            let (dist, mass) = logprob_distribution(vocab, &top)?;
            let class = argmax(&dist)
                .ok_or_else(|| LlmError::MalformedResponse("empty label distribution".into()))?;
            // The top tokens' probabilities can sum a little over 1 (rounding): clamp.
            let mass = (mass as f32).clamp(0.0, 1.0);
            (class, Some(dist[class]), Some(dist), Some(mass))
        }
    };
    Ok(Decoded {
        class,
        confidence,
        distribution,
        label_mass,
        raw: content.unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatResponse {
    #[serde(default)]
    pub(super) choices: Vec<ChatChoice>,
    #[serde(default)]
    pub(super) usage: Option<UsageJson>,
    #[serde(default)]
    pub(super) timings: Option<TimingsJson>,
}

impl ChatResponse {
    pub(super) fn usage(&self) -> Usage {
        let u = self.usage.as_ref();
        let cached = u
            .and_then(|u| u.prompt_tokens_details.as_ref())
            .and_then(|d| d.cached_tokens)
            .or_else(|| self.timings.as_ref().and_then(|t| t.cache_n))
            .unwrap_or(0);
        Usage {
            prompt_tokens: u.and_then(|u| u.prompt_tokens).unwrap_or(0),
            completion_tokens: u.and_then(|u| u.completion_tokens).unwrap_or(0),
            cached_prompt_tokens: cached,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatChoice {
    #[serde(default)]
    pub(super) message: Option<ChatMessage>,
    #[serde(default)]
    pub(super) logprobs: Option<LogprobsJson>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LogprobsJson {
    #[serde(default)]
    pub(super) content: Option<Vec<TokenLogprob>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenLogprob {
    pub(super) token: String,
    pub(super) logprob: f64,
    #[serde(default)]
    pub(super) top_logprobs: Option<Vec<TopLogprob>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TopLogprob {
    pub(super) token: String,
    pub(super) logprob: f64,
}

#[derive(Debug, Deserialize)]
pub(super) struct UsageJson {
    #[serde(default)]
    pub(super) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(super) completion_tokens: Option<u64>,
    #[serde(default)]
    pub(super) prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PromptTokensDetails {
    #[serde(default)]
    pub(super) cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TimingsJson {
    #[serde(default)]
    pub(super) cache_n: Option<u64>,
}
