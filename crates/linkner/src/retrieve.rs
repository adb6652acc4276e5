//! [`ExampleRetriever`]: few-shot examples chosen per routed entity instead of one fixed set.
//!
//! A retriever sees each routed entity in its sentence and returns labelled examples (usually
//! the most similar entities of a training set); the pipeline puts them in the entity's
//! [`ClassifyRequest::examples`](linkner_llm::ClassifyRequest::examples), and the OpenAI
//! backend renders them after its fixed, cacheable prompt prefix. The built-in retriever embeds
//! entities with the tagger's own encoder (`linkner::tagger::retrieval`, feature `span-tagger`).

use linkner_core::{Sentence, WordSpan};
use linkner_llm::Example;

/// A boxed error of a retriever.
pub type RetrieveError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Chooses few-shot examples for entities. Runs on tokio's blocking pool, so it may compute
/// (e.g. run an encoder) without blocking the async executor.
pub trait ExampleRetriever: Send + Sync {
    /// A short name for logs (`knn:conll03-minilm`, …).
    fn name(&self) -> String;

    /// Examples for each query (a sentence and the word span of one entity in it); the i-th
    /// list answers the i-th query. Examples' classes index the pipeline's label schema.
    fn retrieve(
        &self,
        queries: &[(&Sentence, &WordSpan)],
    ) -> Result<Vec<Vec<Example>>, RetrieveError>;
}
