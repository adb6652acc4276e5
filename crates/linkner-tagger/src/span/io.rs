//! A new [`SpanTagger`] on a pretrained encoder folder, and its checkpoints: [`SpanTagger::save`]
//! and [`SpanTagger::load`].

use std::path::Path;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use linkner_core::LabelSchema;

use super::{HeadOptions, SpanNer, SpanNerConfig, SpanTagger, TaggerConfig, files};
use crate::device::DeviceSpec;
use crate::encoder::{LoadReport, load_hf_encoder};
use crate::error::{Result, TaggerError};
use crate::tokenize::SubwordTokenizer;

impl SpanTagger {
    /// A tagger from its parts (tests build tiny random models this way; users load a folder
    /// with [`SpanTagger::load`] or start from an encoder folder with
    /// [`SpanTagger::from_encoder_dir`]).
    pub(crate) fn from_parts(
        model: SpanNer,
        config: TaggerConfig,
        tokenizer: SubwordTokenizer,
        device: Device,
    ) -> SpanTagger {
        SpanTagger {
            model,
            config,
            tokenizer,
            device,
            streams: 0,
        }
    }

    /// A tagger with a fresh span classifier on the pretrained encoder of a Hugging Face folder
    /// (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn from_encoder_dir(
        dir: &Path,
        schema: LabelSchema,
        head: HeadOptions,
        device: &Device,
    ) -> Result<(SpanTagger, LoadReport)> {
        if head.max_span_width == 0 {
            return Err(TaggerError::InvalidArgument(
                "max_span_width must be > 0".into(),
            ));
        }
        let loaded = load_hf_encoder(dir, device)?;
        let tokenizer = SubwordTokenizer::from_file(&dir.join(files::TOKENIZER))?;
        let model_config = SpanNerConfig::new(loaded.config.clone(), schema.num_classes())
            .with_max_span_width(head.max_span_width)
            .with_width_dim(head.width_dim)
            .with_hidden_dim(head.hidden_dim)
            .with_head_dropout(head.head_dropout);
        let model = model_config.init_with(loaded.encoder, device);
        let max_tokens = head.max_tokens.min(loaded.config.max_sequence_len());
        let config = TaggerConfig {
            model: model_config,
            schema,
            max_tokens,
            window_context: head.window_context,
            evidential: None,
            document_context: head.document_context,
        };
        Ok((
            SpanTagger {
                model,
                config,
                tokenizer,
                device: device.clone(),
                streams: 0,
            },
            loaded.report,
        ))
    }

    /// Saves weights, config (with the label schema) and tokenizer into folder `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TaggerError::io(dir, e))?;
        let cfg_path = dir.join(files::CONFIG);
        let json =
            serde_json::to_string_pretty(&self.config).map_err(|source| TaggerError::Json {
                path: cfg_path.clone(),
                source,
            })?;
        std::fs::write(&cfg_path, json).map_err(|e| TaggerError::io(&cfg_path, e))?;
        let tok = dir.join(files::TOKENIZER);
        if self.tokenizer.path() != tok {
            std::fs::copy(self.tokenizer.path(), &tok).map_err(|e| TaggerError::io(&tok, e))?;
        }
        let weights = dir.join(files::WEIGHTS);
        let mut store = SafetensorsStore::from_file(&weights).overwrite(true);
        self.model
            .save_into(&mut store)
            .map_err(|e| TaggerError::Weights {
                path: weights.clone(),
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Loads a tagger saved with [`SpanTagger::save`].
    pub fn load(dir: &Path, device: &DeviceSpec) -> Result<SpanTagger> {
        let device = device.checked_device()?;
        let cfg_path = dir.join(files::CONFIG);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| TaggerError::io(&cfg_path, e))?;
        let config: TaggerConfig =
            serde_json::from_str(&text).map_err(|source| TaggerError::Json {
                path: cfg_path.clone(),
                source,
            })?;
        config.model.encoder.validate()?;
        let tokenizer = SubwordTokenizer::from_file(&dir.join(files::TOKENIZER))?;
        let mut model = config.model.init(&device);
        let weights = dir.join(files::WEIGHTS);
        if !weights.is_file() {
            return Err(TaggerError::io(
                &weights,
                std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            ));
        }
        let mut store = SafetensorsStore::from_file(&weights).allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| TaggerError::Weights {
                path: weights.clone(),
                message: e.to_string(),
            })?;
        if !result.missing.is_empty() {
            return Err(TaggerError::MissingWeights {
                path: weights,
                missing: result.missing.into_iter().map(|(p, _)| p).collect(),
            });
        }
        Ok(SpanTagger {
            model,
            config,
            tokenizer,
            device,
            streams: 0,
        })
    }
}
