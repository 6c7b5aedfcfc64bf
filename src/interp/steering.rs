//! Activation steering by contrastive activation addition: the mean residual leaving a layer at
//! the last position over prompts showing a behaviour, minus the mean over prompts showing its
//! opposite, added back (times a coefficient) while the model runs.

use std::collections::BTreeMap;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Intervention, Positions};
use crate::model::Model;
use crate::safetensors::{self, NamedTensor, TensorView};

/// The metadata key naming the layer a vector was taken from.
const LAYER_KEY: &str = "layer";

/// A direction in the residual stream, with the layer whose output it was measured at.
#[derive(Clone, Debug, PartialEq)]
pub struct SteeringVector {
    pub layer: usize,
    pub vector: Vec<f32>,
}

impl SteeringVector {
    /// `mean(resid_post[layer] at the last position | positive) − mean(… | negative)`.
    pub fn contrast<B: Backend>(
        model: &Model<B>,
        positive: &[Vec<u32>],
        negative: &[Vec<u32>],
        layer: usize,
    ) -> Result<SteeringVector> {
        if layer >= model.config().layers {
            return Err(InterpError::BadRequest(format!("layer {layer} of {}", model.config().layers)));
        }
        if positive.is_empty() || negative.is_empty() {
            return Err(InterpError::BadRequest("both prompt sets need at least one prompt".into()));
        }
        let hooks = HookRequest::new().with(HookPoint::ResidPost(layer), Positions::Last);
        let mean = |prompts: &[Vec<u32>]| -> Result<Vec<f64>> {
            let mut sum = vec![0f64; model.config().width];
            for ids in prompts {
                let forward = model.forward(ids, &mut model.new_cache(), &hooks, &[], &Positions::Last)?;
                let residual = forward.recording.get(HookPoint::ResidPost(layer)).expect("the hook was asked for");
                for (s, &v) in sum.iter_mut().zip(residual.row(0)) {
                    *s += f64::from(v);
                }
            }
            Ok(sum.into_iter().map(|s| s / prompts.len() as f64).collect())
        };
        let (plus, minus) = (mean(positive)?, mean(negative)?);
        Ok(SteeringVector { layer, vector: plus.iter().zip(&minus).map(|(p, m)| (p - m) as f32).collect() })
    }

    /// The intervention adding `coefficient` times this vector to the residual leaving `layer`.
    pub fn at(&self, layer: usize, coefficient: f32) -> Intervention {
        Intervention::Steer { layer, vector: self.vector.clone(), coefficient }
    }

    /// As a safetensors file: one `[width]` tensor named `steering`, the layer in the metadata.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let tensor = TensorView { name: "steering", shape: &[self.vector.len()], data: &self.vector };
        safetensors::write(&[tensor], &BTreeMap::from([(LAYER_KEY.to_string(), self.layer.to_string())]))
    }

    /// Reads what [`to_safetensors`](Self::to_safetensors) writes.
    pub fn from_safetensors(bytes: &[u8]) -> Result<SteeringVector> {
        let bad = |why: String| InterpError::BadRequest(format!("a steering vector file: {why}"));
        let (tensors, metadata) = safetensors::read(bytes).map_err(|e| bad(e.to_string()))?;
        let layer = metadata
            .get(LAYER_KEY)
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad("its metadata names no layer".into()))?;
        match &tensors[..] {
            [NamedTensor { shape, data, .. }] if shape.len() == 1 => Ok(SteeringVector { layer, vector: data.clone() }),
            _ => Err(bad("it must hold exactly one one-dimensional tensor".into())),
        }
    }
}
