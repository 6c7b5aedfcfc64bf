//! The NRC Emotion Lexicon, optional: its licence is non-commercial, so glassbox neither ships
//! nor fetches it by default (`python3 scripts/fetch_models.py --nrc` does, on request).
//!
//! [`Nrc::frequencies`] is NRCLex 4.1's `load_token_list(tokens).affect_frequencies`: each
//! emotion's share of all the emotion labels the tokens carry, `f_e = n_e / Σ_e' n_e'` (0 for
//! every emotion when no token is in the lexicon). NRCLex's `load_raw_text` tokenises and
//! lemmatises with TextBlob and NLTK's WordNet, which glassbox does not reproduce: [`Nrc::analyze`]
//! uses lowercased runs of letters and apostrophes instead, so inflected forms the lexicon
//! lists only as lemmas are missed.

use std::collections::{BTreeMap, HashMap};

use super::affect::AffectError;

/// NRCLex's `EMOTION_ORDER`.
pub const EMOTIONS: [&str; 10] =
    ["fear", "anger", "anticipation", "trust", "surprise", "positive", "negative", "sadness", "disgust", "joy"];

pub struct Nrc {
    lexicon: HashMap<String, Vec<String>>,
}

impl Nrc {
    /// From NRCLex's `nrc_en.json`: `{word: [emotion, ...]}`.
    pub fn new(json: &str) -> Result<Nrc, AffectError> {
        let lexicon: HashMap<String, Vec<String>> = serde_json::from_str(json).map_err(|e| AffectError::BadLine {
            lexicon: "nrc_en.json",
            line: e.line(),
            reason: e.to_string(),
        })?;
        Ok(Nrc { lexicon })
    }

    pub fn frequencies(&self, tokens: &[&str]) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, f64> = EMOTIONS.iter().map(|e| (e.to_string(), 0.0)).collect();
        for emotion in tokens.iter().filter_map(|t| self.lexicon.get(*t)).flatten() {
            *counts.entry(emotion.clone()).or_default() += 1.0;
        }
        let total: f64 = counts.values().sum();
        if total > 0.0 {
            counts.values_mut().for_each(|c| *c /= total);
        }
        counts
    }

    pub fn analyze(&self, text: &str) -> BTreeMap<String, f64> {
        let lower = text.to_lowercase();
        let tokens: Vec<&str> =
            lower.split(|c: char| !(c.is_alphabetic() || c == '\'')).filter(|t| !t.is_empty()).collect();
        self.frequencies(&tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEXICON: &str = r#"{"abandon": ["fear", "negative", "sadness"], "happy": ["joy", "positive", "trust"], "money": ["anger", "joy"]}"#;

    #[test]
    fn frequencies_are_shares_of_all_labels() {
        let nrc = Nrc::new(LEXICON).unwrap();
        // abandon ×2 and happy: fear 2, negative 2, sadness 2, joy 1, positive 1, trust 1 of 9.
        let f = nrc.frequencies(&["abandon", "abandon", "happy", "cat"]);
        assert_eq!(f["fear"], 2.0 / 9.0);
        assert_eq!(f["joy"], 1.0 / 9.0);
        assert_eq!(f["anger"], 0.0);
        assert_eq!(f.len(), 10);
        assert!(nrc.frequencies(&["cat"]).values().all(|&v| v == 0.0));
        // Lowercased word runs: "Money!" is money; "happy's" stays one token and is missed.
        assert_eq!(nrc.analyze("Money! happy's")["anger"], 0.5);
        assert!(matches!(Nrc::new("[1, 2]"), Err(AffectError::BadLine { .. })));
    }
}
