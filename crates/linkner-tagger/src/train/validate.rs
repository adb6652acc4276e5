//! Checks of a [`TrainConfig`] before any work is done.

use super::TrainConfig;
use crate::error::{Result, TaggerError};

/// An error naming the first hyper-parameter of `config` outside its range.
pub(super) fn check(config: &TrainConfig) -> Result<()> {
    if config.epochs == 0 || config.batch_size == 0 {
        return Err(TaggerError::InvalidArgument(
            "epochs and batch_size must be > 0".into(),
        ));
    }
    if !(config.learning_rate > 0.0 && config.learning_rate.is_finite()) {
        return Err(TaggerError::InvalidArgument(
            "learning_rate must be > 0".into(),
        ));
    }
    if !(config.head_lr_multiplier > 0.0 && config.head_lr_multiplier.is_finite()) {
        return Err(TaggerError::InvalidArgument(
            "head_lr_multiplier must be > 0".into(),
        ));
    }
    if !(0.0..=1.0).contains(&config.warmup_ratio) {
        return Err(TaggerError::InvalidArgument(
            "warmup_ratio must be in [0, 1]".into(),
        ));
    }
    if !(config.non_entity_weight >= 0.0 && config.non_entity_weight.is_finite()) {
        return Err(TaggerError::InvalidArgument(
            "non_entity_weight must be >= 0".into(),
        ));
    }
    Ok(())
}
