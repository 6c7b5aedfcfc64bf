//! Does a steering vector steer? A vector from "I love …" minus "I hate …" prompts is added to
//! SmolLM2's residual stream while it continues neutral prompts, and VADER (tasks::affect, ported
//! from the Python package) scores the continuations: against the unsteered continuations, and
//! against a random vector of the same norm, which separates "this direction" from "any push".

use serde::Serialize;

use crate::backend::Backend;
use crate::generate::{generate, GenerateError, GenerateRequest, Sampling};
use crate::interp::steering::SteeringVector;
use crate::interp::InterpError;
use crate::model::Loaded;
use crate::numeric::pseudo_random;
use crate::tasks::affect::Vader;
use crate::tokenizer::TokenizerError;

#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    #[error(transparent)]
    Interp(#[from] InterpError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

type Result<T, E = SteeringError> = std::result::Result<T, E>;

const POSITIVE: &[&str] = &[
    "I love this place.",
    "I love my friends.",
    "I love how kind people are.",
    "I love this song.",
    "I love the way you think.",
    "I love sunny mornings.",
    "I love this book.",
    "I love my job.",
];

const NEGATIVE: &[&str] = &[
    "I hate this place.",
    "I hate my friends.",
    "I hate how kind people are.",
    "I hate this song.",
    "I hate the way you think.",
    "I hate sunny mornings.",
    "I hate this book.",
    "I hate my job.",
];

const NEUTRAL: &[&str] = &[
    "The meeting is scheduled for",
    "My neighbour's car is",
    "The train to the city",
    "Yesterday I went to the",
    "The report says that the",
    "In the kitchen there is",
    "The weather this week",
    "Our new office is",
    "The film I watched last night",
    "When I opened the door,",
];

/// Mean VADER compound score of the continuations under each condition.
#[derive(Clone, Debug, Serialize)]
pub struct SteeringReport {
    pub layer: usize,
    pub coefficient: f32,
    /// The steering vector's L2 norm (the random vector's too).
    pub norm: f64,
    pub prompts: usize,
    pub max_tokens: usize,
    pub unsteered: f64,
    pub steered: f64,
    pub random: f64,
    /// One steered and one unsteered continuation, to read.
    pub example: [String; 2],
}

pub fn steering_experiment<B: Backend>(
    loaded: &Loaded<B>,
    vader: &Vader,
    layer: usize,
    coefficient: f32,
    max_tokens: usize,
) -> Result<SteeringReport> {
    let encode = |texts: &[&str]| -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| Ok(loaded.tokenizer.encode(t, true, false)?)).collect()
    };
    let vector = SteeringVector::contrast(&loaded.model, &encode(POSITIVE)?, &encode(NEGATIVE)?, layer)?;
    let norm = vector.vector.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    let direction = pseudo_random(vector.vector.len(), 7);
    let direction_norm = direction.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    let random = SteeringVector {
        layer,
        vector: direction.iter().map(|v| (f64::from(*v) * norm / direction_norm) as f32).collect(),
    };
    let neutral = encode(NEUTRAL)?;
    let continue_all = |interventions: Vec<_>| -> Result<Vec<String>> {
        let request = GenerateRequest {
            max_tokens,
            sampling: Sampling { temperature: 0.0, ..Sampling::default() },
            interventions,
            ..GenerateRequest::default()
        };
        neutral
            .iter()
            .map(|ids| Ok(generate(&loaded.model, &loaded.tokenizer, ids, &request, |_, _| true)?.text))
            .collect()
    };
    let mean_compound =
        |texts: &[String]| texts.iter().map(|t| vader.polarity_scores(t).compound).sum::<f64>() / texts.len() as f64;
    let plain = continue_all(Vec::new())?;
    let steered = continue_all(vec![vector.at(layer, coefficient)])?;
    let pushed = continue_all(vec![random.at(layer, coefficient)])?;
    Ok(SteeringReport {
        layer,
        coefficient,
        norm,
        prompts: neutral.len(),
        max_tokens,
        unsteered: mean_compound(&plain),
        steered: mean_compound(&steered),
        random: mean_compound(&pushed),
        example: [format!("{}{}", NEUTRAL[0], steered[0]), format!("{}{}", NEUTRAL[0], plain[0])],
    })
}
