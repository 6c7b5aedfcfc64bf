//! SePO token-level rewards from two models that share a tokenizer:
//!
//! `r_t = log π_oracle(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)`, and the selection of
//! `K = floor(k·N)` tokens of an N-token response: the K highest `r_t` for a chosen response,
//! the K lowest for a rejected one (default `k = 0.3`).

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{HookRequest, Positions};
use crate::model::Model;
use crate::numeric::log_softmax;
use crate::tokenizer::Tokenizer;

pub const DEFAULT_FRACTION: f32 = 0.3;

/// `log π(y_t | x, y_<t)` for each token of `response` after `prompt`, in one forward pass.
pub fn token_logprobs<B: Backend>(model: &Model<B>, prompt: &[u32], response: &[u32]) -> Result<Vec<f32>> {
    if prompt.is_empty() || response.is_empty() {
        return Err(InterpError::BadRequest("the prompt and the response must each have a token".into()));
    }
    let ids: Vec<u32> = prompt.iter().chain(&response[..response.len() - 1]).copied().collect();
    let read_at = Positions::Only((prompt.len() - 1..ids.len()).collect());
    let mut cache = model.new_cache();
    let run = model.forward(&ids, &mut cache, &HookRequest::new(), &[], &read_at)?;
    let vocab = run.logits.shape[1];
    Ok(run.logits.data.chunks(vocab).zip(response).map(|(row, &y)| log_softmax(row)[y as usize]).collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenReward {
    /// Index within the response.
    pub position: usize,
    pub id: u32,
    pub token: String,
    pub oracle_logprob: f32,
    pub reference_logprob: f32,
    /// `r_t`.
    pub reward: f32,
    /// Among the K selected tokens.
    pub selected: bool,
}

/// JSON: `{"k": f, "rejected": bool, "selected_count": K, "tokens": [{"position", "id", "token",
/// "oracle_logprob", "reference_logprob", "reward", "selected"}]}`, tokens in response order.
#[derive(Clone, Debug, Serialize)]
pub struct TokenRewards {
    pub k: f32,
    pub rejected: bool,
    pub selected_count: usize,
    pub tokens: Vec<TokenReward>,
}

/// The K tokens SePO trains on: indices of the K highest rewards (lowest when `rejected`).
pub fn select_tokens(rewards: &[f32], k: f32, rejected: bool) -> Vec<usize> {
    let count = (k * rewards.len() as f32).floor() as usize;
    let mut order: Vec<usize> = (0..rewards.len()).collect();
    order.sort_by(|&a, &b| {
        let by_reward = rewards[b].total_cmp(&rewards[a]);
        if rejected { by_reward.reverse() } else { by_reward }.then(a.cmp(&b))
    });
    order.truncate(count);
    order.sort_unstable();
    order
}

/// Whether two models read token ids the same way: the same vocabulary, token by token.
pub fn check_shared_tokenizer<O: Backend, R: Backend>(
    oracle: (&Model<O>, &Tokenizer),
    reference: (&Model<R>, &Tokenizer),
) -> Result<()> {
    let n = oracle.0.config().vocab_size;
    let vocabulary = |t: &Tokenizer| t.token_texts(&(0..n as u32).collect::<Vec<_>>());
    if reference.0.config().vocab_size != n || vocabulary(oracle.1)? != vocabulary(reference.1)? {
        return Err(InterpError::BadRequest("the oracle and the reference do not share a tokenizer".into()));
    }
    Ok(())
}

/// Rewards of `response` after `prompt`, both already tokenised by the shared tokenizer.
pub fn token_rewards<O: Backend, R: Backend>(
    oracle: &Model<O>,
    reference: &Model<R>,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    response: &[u32],
    k: f32,
    rejected: bool,
) -> Result<TokenRewards> {
    if !(0.0..=1.0).contains(&k) {
        return Err(InterpError::BadRequest(format!("k = {k} must lie in [0, 1]")));
    }
    if oracle.config().vocab_size != reference.config().vocab_size {
        return Err(InterpError::BadRequest(format!(
            "the oracle has {} tokens and the reference {}: they do not share a tokenizer",
            oracle.config().vocab_size,
            reference.config().vocab_size
        )));
    }
    let oracle_lp = token_logprobs(oracle, prompt, response)?;
    let reference_lp = token_logprobs(reference, prompt, response)?;
    let rewards: Vec<f32> = oracle_lp.iter().zip(&reference_lp).map(|(o, r)| o - r).collect();
    let selected = select_tokens(&rewards, k, rejected);
    let texts = tokenizer.token_texts(response)?;
    let tokens = (0..response.len())
        .map(|t| TokenReward {
            position: t,
            id: response[t],
            token: texts[t].clone(),
            oracle_logprob: oracle_lp[t],
            reference_logprob: reference_lp[t],
            reward: rewards[t],
            selected: selected.binary_search(&t).is_ok(),
        })
        .collect();
    Ok(TokenRewards { k, rejected, selected_count: selected.len(), tokens })
}

#[cfg(test)]
mod tests {
    use super::select_tokens;

    #[test]
    fn selection_takes_floor_k_n_from_the_right_end() {
        let rewards = [0.5, -1.0, 2.0, 0.0, -3.0, 1.0, 0.25];
        // floor(0.3 · 7) = 2.
        assert_eq!(select_tokens(&rewards, 0.3, false), vec![2, 5]);
        assert_eq!(select_tokens(&rewards, 0.3, true), vec![1, 4]);
        assert_eq!(select_tokens(&rewards, 0.1, false), Vec::<usize>::new());
        assert_eq!(select_tokens(&rewards, 1.0, true).len(), 7);
    }
}
