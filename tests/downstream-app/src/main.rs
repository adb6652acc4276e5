//! Tags the texts given as arguments with the linkner tagger in the folder `LINKNER_MODEL`
//! (local tagger only) and prints one line per entity: `text<TAB>label<TAB>start<TAB>end`.
use std::sync::Arc;

use linkner::tagger::{DeviceSpec, SpanTagger};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::var("LINKNER_MODEL")?;
    let pipeline = Pipeline::builder()
        .exclusive_tagger(SpanTagger::load(model.as_ref(), &DeviceSpec::Cpu)?)
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()?;
    for text in std::env::args().skip(1) {
        for e in pipeline.annotate(&text).await?.entities {
            let e = e.entity;
            println!("{}\t{}\t{}\t{}", e.text, e.label, e.start, e.end);
        }
    }
    Ok(())
}
