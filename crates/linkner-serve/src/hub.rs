//! The one stream every request feeds: documents of all callers share tagger batches.

use futures_util::StreamExt;
use linkner::{Annotation, DocumentOptions, LinkError, Pipeline, StreamOrder};
use tokio::sync::{mpsc, oneshot};

/// Where a document's result goes.
type Reply = oneshot::Sender<Result<Annotation, LinkError>>;

/// A handle on the shared stream (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    tx: mpsc::Sender<(Reply, String, DocumentOptions)>,
}

/// The hub's stream ended (its task stopped): the service cannot annotate any more.
#[derive(Debug)]
pub(crate) struct HubClosed;

impl Hub {
    /// Starts the stream of `pipeline` (completed order) and the task that hands each result
    /// to its request.
    pub(crate) fn start(pipeline: &Pipeline) -> Result<Hub, LinkError> {
        let capacity = pipeline.stream_options().max_pending.max(1);
        let (tx, rx) = mpsc::channel::<(Reply, String, DocumentOptions)>(capacity);
        let input = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut annotations = pipeline.stream_with_options(input, StreamOrder::Completed)?;
        tokio::spawn(async move {
            while let Some(item) = annotations.next().await {
                if let Ok(a) = &item.result {
                    crate::metrics::document_done(a);
                }
                // A closed reply means the request is gone (timed out or disconnected).
                let _ = item.id.send(item.result);
            }
        });
        Ok(Hub { tx })
    }

    /// Queues one document; its result comes on the returned receiver. Waits while the
    /// stream is full (backpressure).
    pub(crate) async fn submit(
        &self,
        text: String,
        options: DocumentOptions,
    ) -> Result<oneshot::Receiver<Result<Annotation, LinkError>>, HubClosed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((reply, text, options))
            .await
            .map_err(|_| HubClosed)?;
        Ok(rx)
    }
}
