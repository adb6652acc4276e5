//! Contextual calibration (Zhao et al., 2021, "Calibrate Before Use"): divide the model's label
//! distribution by the distribution it gives a content-free input, so that a prior towards some
//! labels (a small model's favourite answer) stops deciding.
//!
//! For each label schema the baseline `b` is the mean distribution over three content-free
//! requests (`N/A`, `[MASK]` and `-` as both sentence and span), asked once through the same
//! backend and prompt; every answer's distribution `p` then becomes `p_c / b_c` renormalised
//! (with `b_c` floored at [`BASELINE_FLOOR`]). Answers without a distribution are left as they
//! are. [`Calibrated`] adds it to any [`LlmClassifier`]; the OpenAI backend has it as the
//! `calibrate` option.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use linkner_core::LabelSchema;
use tokio::sync::Mutex;

use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::request::{Answer, ClassifyRequest};
use crate::stats::Stats;

/// Smallest baseline probability divided by (keeps a class the content-free input never
/// predicts from exploding).
pub const BASELINE_FLOOR: f32 = 1e-3;

/// The content-free texts (each is its own sentence and span).
pub const CONTENT_FREE: [&str; 3] = ["N/A", "[MASK]", "-"];

/// Per-schema baselines, computed once each.
#[derive(Debug, Default)]
pub struct Calibrator {
    baselines: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

/// A key that identifies a schema's classes.
fn schema_key(schema: &LabelSchema) -> String {
    std::iter::once(&schema.non_entity)
        .chain(schema.types.iter())
        .map(|t| format!("{}={}", t.name, t.llm_name))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

impl Calibrator {
    /// An empty calibrator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The content-free requests for `schema`.
    pub fn content_free_requests(schema: &Arc<LabelSchema>) -> Result<Vec<ClassifyRequest>> {
        CONTENT_FREE
            .iter()
            .map(|t| ClassifyRequest::new(*t, 0, t.chars().count(), schema.clone()))
            .collect()
    }

    /// The baseline of `schema`, computed on first use with `classify` (which must answer with
    /// distributions; an answer without one is an error).
    pub async fn baseline<F, Fut>(
        &self,
        schema: &Arc<LabelSchema>,
        classify: F,
    ) -> Result<Arc<Vec<f32>>>
    where
        F: Fn(ClassifyRequest) -> Fut,
        Fut: Future<Output = Result<Answer>>,
    {
        let key = schema_key(schema);
        let mut map = self.baselines.lock().await;
        if let Some(b) = map.get(&key) {
            return Ok(b.clone());
        }
        let n = schema.num_classes();
        let mut sum = vec![0f32; n];
        for request in Self::content_free_requests(schema)? {
            let answer = classify(request).await?;
            let d = answer
                .distribution
                .filter(|d| d.len() == n)
                .ok_or_else(|| {
                    LlmError::Config(
                        "contextual calibration needs label distributions (the `logprobs` \
                         answer mode)"
                            .into(),
                    )
                })?;
            for (s, p) in sum.iter_mut().zip(d) {
                *s += p;
            }
        }
        let total: f32 = sum.iter().sum();
        let baseline: Vec<f32> = if total > 0.0 {
            sum.iter().map(|s| s / total).collect()
        } else {
            vec![1.0 / n as f32; n]
        };
        let baseline = Arc::new(baseline);
        map.insert(key, baseline.clone());
        Ok(baseline)
    }

    /// Calibrates one answer with a baseline: its distribution divided by the baseline,
    /// renormalised, and its class, label and confidence updated. Answers without a
    /// distribution of the schema's size are returned unchanged.
    pub fn apply(schema: &LabelSchema, baseline: &[f32], mut answer: Answer) -> Answer {
        let Some(d) = answer
            .distribution
            .as_ref()
            .filter(|d| d.len() == baseline.len())
        else {
            return answer;
        };
        let raw: Vec<f32> = d
            .iter()
            .zip(baseline)
            .map(|(p, b)| p / b.max(BASELINE_FLOOR))
            .collect();
        let total: f32 = raw.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return answer;
        }
        let dist: Vec<f32> = raw.iter().map(|p| p / total).collect();
        if let Some(class) = linkner_core::prob::argmax(&dist)
            && let Some(t) = schema.class(class)
        {
            answer.class = class;
            answer.label = t.name.clone();
            answer.confidence = Some(dist[class]);
        }
        answer.distribution = Some(dist);
        answer
    }
}

/// Contextual calibration around any [`LlmClassifier`] that answers with distributions.
#[derive(Debug)]
pub struct Calibrated<C> {
    inner: C,
    calibrator: Calibrator,
}

impl<C: LlmClassifier> Calibrated<C> {
    /// Wraps `inner`.
    pub fn new(inner: C) -> Self {
        Calibrated {
            inner,
            calibrator: Calibrator::new(),
        }
    }

    /// The wrapped classifier.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

#[async_trait]
impl<C: LlmClassifier> LlmClassifier for Calibrated<C> {
    fn name(&self) -> String {
        format!("calibrated({})", self.inner.name())
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        let baseline = self
            .calibrator
            .baseline(request.schema(), |r| async move {
                self.inner.classify(&r).await
            })
            .await?;
        let answer = self.inner.classify(request).await?;
        Ok(Calibrator::apply(request.schema(), &baseline, answer))
    }

    async fn classify_batch(&self, requests: &[ClassifyRequest]) -> Vec<Result<Answer>> {
        // Baselines first (one per schema), then the batch through the inner backend.
        let mut baselines = Vec::with_capacity(requests.len());
        for r in requests {
            baselines.push(
                self.calibrator
                    .baseline(r.schema(), |c| async move { self.inner.classify(&c).await })
                    .await,
            );
        }
        let answers = self.inner.classify_batch(requests).await;
        answers
            .into_iter()
            .zip(baselines)
            .zip(requests)
            .map(|((a, b), r)| match (a, b) {
                (Ok(a), Ok(b)) => Ok(Calibrator::apply(r.schema(), &b, a)),
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(e),
            })
            .collect()
    }

    fn stats(&self) -> Option<Stats> {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with a strong prior for "person" whatever the input.
    struct Biased;

    #[async_trait]
    impl LlmClassifier for Biased {
        fn name(&self) -> String {
            "biased".into()
        }
        async fn classify(&self, r: &ClassifyRequest) -> Result<Answer> {
            // Content-free inputs: mostly "person". Real inputs: "person" 0.45, "location" 0.40.
            let d = if crate::calibrate::CONTENT_FREE.contains(&r.sentence()) {
                vec![0.1, 0.6, 0.1, 0.1, 0.1]
            } else {
                vec![0.05, 0.45, 0.40, 0.05, 0.05]
            };
            let mut a = Answer::for_class(r.schema(), 1)?;
            a.confidence = Some(d[1]);
            a.distribution = Some(d);
            Ok(a)
        }
    }

    #[tokio::test]
    async fn calibration_removes_the_prior() {
        let schema = Arc::new(LabelSchema::conll03());
        let r = ClassifyRequest::find("Köln is big .", "Köln", schema.clone()).unwrap();
        assert_eq!(Biased.classify(&r).await.unwrap().label, "PER");
        let c = Calibrated::new(Biased);
        let a = c.classify(&r).await.unwrap();
        assert_eq!(a.label, "LOC", "{a:?}");
        let d = a.distribution.unwrap();
        assert!((d.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // p / b: person 0.45/0.6 = 0.75, location 0.40/0.1 = 4.0.
        assert!(d[2] > 0.5 && d[1] < 0.2, "{d:?}");
        let batch = c.classify_batch(&[r.clone(), r]).await;
        assert!(batch.iter().all(|a| a.as_ref().unwrap().label == "LOC"));
    }

    #[test]
    fn answers_without_a_distribution_pass_unchanged() {
        let schema = LabelSchema::conll03();
        let a = Answer::for_class(&schema, 3).unwrap();
        let b = Calibrator::apply(&schema, &[0.2; 5], a.clone());
        assert_eq!(a, b);
    }
}
