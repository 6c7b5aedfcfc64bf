//! Affect lexicon scores, ported number for number from two MIT-licensed Python packages:
//! - [`Vader`]: vaderSentiment 3.3.2's `SentimentIntensityAnalyzer.polarity_scores` (Hutto &
//!   Gilbert, ICWSM 2014), from `vader_lexicon.txt` and `emoji_utf8_lexicon.txt`;
//! - [`Empath`]: empath 0.89's `Empath().analyze` with its default tokenizer (Fast et al., CHI
//!   2016), from `data/categories.tsv`.
//!
//! The lexicons come in as text, not paths, because the same code runs in a browser. Python's
//! string semantics that the packages lean on are reproduced here: `str.split()` and
//! `str.strip()` whitespace (which includes U+001C..U+001F), `str.isupper()`, `str.lower()`,
//! `string.punctuation`, `round()` and the left-to-right `sum()` of Python 3.11 and older (the
//! project's interpreter). So are the packages' quirks; each is pointed out where it happens.
//! tests/reference/affect_python.py writes the reference scores.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

/// A lexicon that cannot be read, or a request for an Empath category that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum AffectError {
    #[error("{lexicon}, line {line}: {reason}")]
    BadLine {
        lexicon: &'static str,
        /// 1-based.
        line: usize,
        reason: String,
    },
    /// Empath would load such a file as an empty lexicon; it is far likelier a failed download.
    #[error("empath categories: no line holds a category name and at least one term")]
    NoCategories,
    #[error("unknown empath category {0:?}")]
    UnknownCategory(String),
}

/// VADER's scores of one text: the shares of negative, neutral and positive words (`neg + neu +
/// pos` is 1 up to rounding) and the normalised sum of valences in [-1, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct VaderScores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

// vaderSentiment's empirically derived constants.
const B_INCR: f64 = 0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;
/// Each `!` adds this much to |sum|, up to 4 of them.
const EP_INCR: f64 = 0.292;
/// 2 or 3 `?` add this much each; 4 or more add `QM_MAX`.
const QM_INCR: f64 = 0.18;
const QM_MAX: f64 = 0.96;
/// `normalize`'s alpha: compound = x / sqrt(x² + ALPHA).
const ALPHA: f64 = 15.0;

/// vaderSentiment's `BOOSTER_DICT`: degree adverbs that raise or lower the next words' intensity.
/// The two-word entries only ever match in `special_idioms`, as tokens hold no spaces.
fn booster(word: &str) -> Option<f64> {
    match word {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably" | "decidedly"
        | "deeply" | "effing" | "enormous" | "enormously" | "entirely" | "especially" | "exceptional"
        | "exceptionally" | "extreme" | "extremely" | "fabulously" | "flipping" | "flippin" | "frackin"
        | "fracking" | "fricking" | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly" | "intensely"
        | "major" | "majorly" | "more" | "most" | "particularly" | "purely" | "quite" | "really" | "remarkably"
        | "so" | "substantially" | "thoroughly" | "total" | "totally" | "tremendous" | "tremendously" | "uber"
        | "unbelievably" | "unusually" | "utter" | "utterly" | "very" => Some(B_INCR),
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof" | "kind-of" | "less"
        | "little" | "marginal" | "marginally" | "occasional" | "occasionally" | "partly" | "scarce" | "scarcely"
        | "slight" | "slightly" | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => Some(-B_INCR),
        _ => None,
    }
}

/// vaderSentiment's `SPECIAL_CASES`: phrases whose valence replaces the word's. (Its
/// `SENTIMENT_LADEN_IDIOMS`, "cut the mustard" and the like, are never consulted in 3.3.2.)
fn special_case(phrase: &str) -> Option<f64> {
    match phrase {
        "the shit" | "the bomb" | "to die for" => Some(3.0),
        "bad ass" | "badass" => Some(1.5),
        "bus stop" => Some(0.0),
        "yeah right" => Some(-2.0),
        "kiss of death" => Some(-1.5),
        "beating heart" => Some(3.5),
        _ => None,
    }
}

/// Python's `str.isspace()`: Unicode White_Space plus the ASCII separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` without arguments.
fn py_split(text: &str) -> impl Iterator<Item = &str> {
    text.split(py_space).filter(|w| !w.is_empty())
}

/// Python's `str.strip()` without arguments.
fn py_strip(text: &str) -> &str {
    text.trim_matches(py_space)
}

/// Python's `str.isupper()`: at least one cased character and none lowercase or titlecase.
fn py_isupper(word: &str) -> bool {
    let mut cased = false;
    for c in word.chars() {
        // Titlecase letters (category Lt, such as "ǅ") are neither Uppercase nor Lowercase.
        let title = matches!(
            c,
            '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}' | '\u{1fbc}' | '\u{1fcc}' | '\u{1ffc}'
                | '\u{1f88}'..='\u{1f8f}' | '\u{1f98}'..='\u{1f9f}' | '\u{1fa8}'..='\u{1faf}'
        );
        if c.is_lowercase() || title {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// Python's `round(x, digits)` on a float: the exact binary value rounded to `digits` decimals,
/// ties to even (so round(0.0625, 3) = 0.062). Rust's `{:.N}` formatting rounds the same way.
fn py_round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// Python's `float(s)` on a lexicon column, which ignores surrounding whitespace.
fn py_float(s: &str) -> Option<f64> {
    py_strip(s).parse().ok()
}

/// vaderSentiment 3.3.2's `SentimentIntensityAnalyzer`.
pub struct Vader {
    /// Lower-case word or emoticon -> mean valence in [-4, 4].
    lexicon: HashMap<String, f64>,
    /// Emoji -> its textual description, which is then scored as words.
    emojis: HashMap<char, String>,
}

impl Vader {
    /// From the text of vader_lexicon.txt and emoji_utf8_lexicon.txt, read as
    /// `make_lex_dict`/`make_emoji_dict` do: one `key\tvalue[\t...]` per `\n`-separated line,
    /// stripped of whitespace, later duplicates winning. The word lexicon may have empty lines; the
    /// emoji lexicon may not (Python fails on them, even on an empty file).
    pub fn new(lexicon: &str, emoji_lexicon: &str) -> Result<Vader, AffectError> {
        let mut words = HashMap::new();
        for (line, key, value) in tab_lines("vader lexicon", lexicon, true)? {
            let valence = py_float(value).ok_or_else(|| AffectError::BadLine {
                lexicon: "vader lexicon",
                line,
                reason: format!("valence {value:?} is not a number"),
            })?;
            words.insert(key.to_owned(), valence);
        }
        let mut emojis = HashMap::new();
        for (_, key, description) in tab_lines("vader emoji lexicon", emoji_lexicon, false)? {
            // polarity_scores looks emoji up one code point at a time, so longer sequences
            // (flags, skin tones, ZWJ families) never match.
            let mut chars = key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emojis.insert(c, description.to_owned());
            }
        }
        Ok(Vader { lexicon: words, emojis })
    }

    /// vaderSentiment 3.3.2's `polarity_scores(text)`, including its rounding: neg, neu and pos
    /// to 3 decimals, compound to 4.
    ///
    /// Emoji become their descriptions; the text splits on whitespace; each token loses leading
    /// and trailing ASCII punctuation unless that leaves 2 characters or fewer (emoticons). Each
    /// token scores its lexicon valence adjusted by the rules of `sentiment_valence`, then "but"
    /// halves the scores before it and raises those after it by half. With `s` the sum of scores
    /// and `p` the punctuation emphasis (0.292 per `!` up to 4; 0.18 per `?` for 2 or 3, 0.96 for
    /// more), `x = s + sign(s)·p` and compound = x / sqrt(x² + 15), clamped to [-1, 1]. pos, neg
    /// and neu share out Σ(score + 1) over positive scores, Σ|score − 1| over negative ones
    /// (either getting `p` too, whichever is larger) and the count of zero scores.
    pub fn polarity_scores(&self, text: &str) -> VaderScores {
        let mut replaced = String::with_capacity(text.len());
        let mut prev_space = true;
        for c in text.chars() {
            match self.emojis.get(&c) {
                Some(description) => {
                    // A space before the description, none after: "job😀" reads "job grinning
                    // face", and "😀well" reads "grinning facewell".
                    if !prev_space {
                        replaced.push(' ');
                    }
                    replaced.push_str(description);
                    prev_space = false;
                }
                None => {
                    replaced.push(c);
                    prev_space = c == ' ';
                }
            }
        }
        let text = py_strip(&replaced);
        let words: Vec<&str> = py_split(text).map(strip_punc_if_word).collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let caps = words.iter().filter(|w| py_isupper(w)).count();
        // ALL CAPS only emphasises when some words, not all, are in capitals.
        let is_cap_diff = caps > 0 && caps < words.len();

        let mut sentiments: Vec<f64> = (0..words.len())
            .map(|i| {
                let kind_of = lower[i] == "kind" && lower.get(i + 1).is_some_and(|w| w == "of");
                if booster(&lower[i]).is_some() || kind_of {
                    0.0
                } else {
                    self.sentiment_valence(&words, &lower, i, is_cap_diff)
                }
            })
            .collect();
        but_check(&lower, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// `sentiment_valence`: the lexicon valence of word `i`, negated by a "no" up to 2 words
    /// before (or 3, through "or"/"nor"), ±0.733 if it alone is in capitals, plus the boosters of
    /// the 3 words before it (weighted 1, 0.95, 0.9), times -0.74 for each negation among them,
    /// then the idiom and "least" rules.
    fn sentiment_valence(&self, words: &[&str], lower: &[String], i: usize, cap_diff: bool) -> f64 {
        let item = lower[i].as_str();
        let Some(&base) = self.lexicon.get(item) else {
            return 0.0;
        };
        let mut valence = base;
        // "no" before another lexicon word negates it rather than counting itself.
        if item == "no" && lower.get(i + 1).is_some_and(|w| self.lexicon.contains_key(w)) {
            valence = 0.0;
        }
        let back = |k: usize| i.checked_sub(k).map(|j| lower[j].as_str());
        if back(1) == Some("no")
            || back(2) == Some("no")
            || (back(3) == Some("no") && matches!(back(1), Some("or" | "nor")))
        {
            valence = base * N_SCALAR;
        }
        if cap_diff && py_isupper(words[i]) {
            // Zero counts as negative here, as in the Python.
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start_i in 0..3.min(i) {
            let j = i - start_i - 1;
            if self.lexicon.contains_key(&lower[j]) {
                continue;
            }
            valence += scalar_inc_dec(words[j], &lower[j], valence, cap_diff) * [1.0, 0.95, 0.9][start_i];
            valence = negation_check(valence, lower, start_i, i);
            if start_i == 2 {
                valence = special_idioms(valence, lower, i);
            }
        }
        // "least" before a word negates it, except in "at least" and "very least".
        if back(1) == Some("least") && !self.lexicon.contains_key("least") && !matches!(back(2), Some("at" | "very")) {
            valence *= N_SCALAR;
        }
        valence
    }
}

/// Reads `key\tvalue` lines as vaderSentiment does: `text.rstrip('\n').split('\n')`, each line
/// stripped, at least two tab-separated columns. Returns (1-based line number, key, value).
fn tab_lines<'a>(
    lexicon: &'static str,
    text: &'a str,
    skip_empty: bool,
) -> Result<Vec<(usize, &'a str, &'a str)>, AffectError> {
    text.trim_end_matches('\n')
        .split('\n')
        .enumerate()
        .filter(|(_, line)| !(skip_empty && line.is_empty()))
        .map(|(n, line)| {
            let mut cols = py_strip(line).split('\t');
            match (cols.next(), cols.next()) {
                (Some(key), Some(value)) => Ok((n + 1, key, value)),
                _ => Err(AffectError::BadLine {
                    lexicon,
                    line: n + 1,
                    reason: "expected two tab-separated columns".into(),
                }),
            }
        })
        .collect()
}

/// `SentiText._strip_punc_if_word`: strip `string.punctuation` from both ends unless 2 characters
/// or fewer would remain, which keeps emoticons such as ":)" whole.
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().count() <= 2 {
        token
    } else {
        stripped
    }
}

/// `negated([word])` on one lower-case word: vaderSentiment's `NEGATE` list, or any "n't".
fn negated(word: &str) -> bool {
    match word {
        "aint" | "arent" | "cannot" | "cant" | "couldnt" | "darent" | "didnt" | "doesnt" | "ain't" | "aren't"
        | "can't" | "couldn't" | "daren't" | "didn't" | "doesn't" | "dont" | "hadnt" | "hasnt" | "havent" | "isnt"
        | "mightnt" | "mustnt" | "neither" | "don't" | "hadn't" | "hasn't" | "haven't" | "isn't" | "mightn't"
        | "mustn't" | "neednt" | "needn't" | "never" | "none" | "nope" | "nor" | "not" | "nothing" | "nowhere"
        | "oughtnt" | "shant" | "shouldnt" | "uhuh" | "wasnt" | "werent" | "oughtn't" | "shan't" | "shouldn't"
        | "uh-uh" | "wasn't" | "weren't" | "without" | "wont" | "wouldnt" | "won't" | "wouldn't" | "rarely"
        | "seldom" | "despite" => true,
        _ => word.contains("n't"),
    }
}

/// `scalar_inc_dec`: a booster's increment, signed like the valence it modifies, ±0.733 more if
/// the booster alone is in capitals.
fn scalar_inc_dec(word: &str, lower: &str, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = booster(lower) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar = -scalar;
    }
    if cap_diff && py_isupper(word) {
        scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    scalar
}

/// `_negation_check` for the word `start_i + 1` places before word `i`: a negation flips the
/// valence by -0.74; "never so/this" raises it by 1.25 and "without doubt" leaves it alone.
fn negation_check(valence: f64, lower: &[String], start_i: usize, i: usize) -> f64 {
    let back = |k: usize| lower[i - k].as_str();
    let so_this = |w: &str| w == "so" || w == "this";
    match start_i {
        0 if negated(back(1)) => valence * N_SCALAR,
        1 if back(2) == "never" && so_this(back(1)) => valence * 1.25,
        1 if back(2) == "without" && back(1) == "doubt" => valence,
        1 if negated(back(2)) => valence * N_SCALAR,
        // Python's `a and b or c` groups as `(a and b) or c`: "so"/"this" right before the
        // word raises it even without a "never".
        2 if (back(3) == "never" && so_this(back(2))) || so_this(back(1)) => valence * 1.25,
        2 if back(3) == "without" && (back(2) == "doubt" || back(1) == "doubt") => valence,
        2 if negated(back(3)) => valence * N_SCALAR,
        _ => valence,
    }
}

/// `_special_idioms_check` around word `i` (only reached for `i >= 3` whose third word back is
/// not in the lexicon): a `SPECIAL_CASES` phrase among the words i-3..=i+2 sets the valence, and
/// a two-word booster such as "kind of" right before it adds to it.
fn special_idioms(mut valence: f64, lower: &[String], i: usize) -> f64 {
    let [w3, w2, w1, w0] = [&lower[i - 3], &lower[i - 2], &lower[i - 1], &lower[i]];
    let (threetwoone, threetwo, twoone) = (format!("{w3} {w2} {w1}"), format!("{w3} {w2}"), format!("{w2} {w1}"));
    let before =
        [format!("{w1} {w0}"), format!("{w2} {w1} {w0}"), twoone.clone(), threetwoone.clone(), threetwo.clone()];
    if let Some(v) = before.iter().find_map(|p| special_case(p)) {
        valence = v;
    }
    if let Some(v) = lower.get(i + 1).and_then(|w| special_case(&format!("{w0} {w}"))) {
        valence = v;
    }
    if let (Some(a), Some(b)) = (lower.get(i + 1), lower.get(i + 2)) {
        if let Some(v) = special_case(&format!("{w0} {a} {b}")) {
            valence = v;
        }
    }
    for n_gram in [threetwoone, threetwo, twoone] {
        valence += booster(&n_gram).unwrap_or(0.0);
    }
    valence
}

/// `_but_check`: scores before the first "but" halve, scores after it grow by half. The Python
/// finds each score's position with `list.index(score)`, the first *equal* score, so repeated
/// values can scale one score twice and leave another alone; that is kept. Positions are indexed
/// by value so that long texts take O(n log n) where the Python takes O(n²).
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else {
        return;
    };
    // Adding +0.0 folds -0.0 into 0.0, which Python's == treats as equal.
    let key = |x: f64| (x + 0.0).to_bits();
    let mut at: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (k, &s) in sentiments.iter().enumerate() {
        at.entry(key(s)).or_default().insert(k);
    }
    for k in 0..sentiments.len() {
        let s = sentiments[k];
        let Some(&si) = at.get(&key(s)).and_then(|set| set.first()) else {
            continue;
        };
        let scaled = match si.cmp(&bi) {
            Ordering::Less => s * 0.5,
            Ordering::Greater => s * 1.5,
            Ordering::Equal => continue,
        };
        if let Some(set) = at.get_mut(&key(s)) {
            set.remove(&si);
        }
        at.entry(key(scaled)).or_default().insert(si);
        sentiments[si] = scaled;
    }
}

/// `score_valence` and `normalize`, rounded as `polarity_scores` returns them.
fn score_valence(sentiments: &[f64], text: &str) -> VaderScores {
    if sentiments.is_empty() {
        return VaderScores { neg: 0.0, neu: 0.0, pos: 0.0, compound: 0.0 };
    }
    // Python <= 3.11's sum(): left to right from int 0 (Rust's f64 sum starts at -0.0). Python
    // 3.12's compensated sum() differs where scores cancel exactly: "good fine hate!" sums to 0
    // here, so "!" adds nothing, but to -2.2e-16 there, giving compound -0.0752 instead of 0.
    let mut sum = sentiments.iter().fold(0.0, |a, &s| a + s);
    let bangs = text.matches('!').count().min(4) as f64 * EP_INCR;
    let questions = match text.matches('?').count() {
        0 | 1 => 0.0,
        n @ (2 | 3) => n as f64 * QM_INCR,
        _ => QM_MAX,
    };
    let emphasis = bangs + questions;
    if sum > 0.0 {
        sum += emphasis;
    } else if sum < 0.0 {
        sum -= emphasis;
    }
    let compound = (sum / (sum * sum + ALPHA).sqrt()).clamp(-1.0, 1.0);

    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0, 0.0, 0usize);
    for &s in sentiments {
        // +1/-1 compensate for the neutral words, which count 1 each.
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += emphasis;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= emphasis;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    VaderScores {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((neu_count as f64 / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

/// empath 0.89's `Empath` with the bundled categories.
pub struct Empath {
    /// Category names in file order, as Python's dict keeps them.
    names: Vec<String>,
    ids: HashMap<String, usize>,
    /// Term -> the categories that list it, once per line that lists it.
    terms: HashMap<String, Vec<usize>>,
}

impl Empath {
    /// From the text of empath's data/categories.tsv, read as `Empath.load` does: lines split at
    /// `\n`, `\r\n` or `\r` (Python's universal newlines), stripped, `name\tterm\t...`. A line
    /// without terms defines nothing; a name on several lines gets all their terms, and a term
    /// listed on two of them counts twice.
    pub fn new(categories_tsv: &str) -> Result<Empath, AffectError> {
        let mut empath = Empath { names: Vec::new(), ids: HashMap::new(), terms: HashMap::new() };
        for line in categories_tsv.split(['\n', '\r']) {
            let Some((name, terms)) = py_strip(line).split_once('\t') else {
                continue;
            };
            let next = empath.names.len();
            let id = *empath.ids.entry(name.to_owned()).or_insert(next);
            if id == next {
                empath.names.push(name.to_owned());
            }
            for term in terms.split('\t').collect::<HashSet<_>>() {
                empath.terms.entry(term.to_owned()).or_default().push(id);
            }
        }
        if empath.names.is_empty() {
            return Err(AffectError::NoCategories);
        }
        Ok(empath)
    }

    /// The category names, in file order.
    pub fn categories(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// empath 0.89's `Empath().analyze(text, categories, tokenizer="default", normalize)`.
    ///
    /// The default tokenizer is Python's `text.split()`: no lower-casing and no punctuation
    /// stripping, so "Money" and "money," match nothing. For each requested category (all when
    /// `None` or empty, as Python's `if not categories`) the value is the number of tokens that
    /// are among its terms, divided by the token count when `normalize`. A category named twice
    /// counts twice, as in the Python. With `normalize` and no tokens the Python returns `None`;
    /// this returns an empty map. An unknown name is an error here, where the Python scores it 0.
    pub fn analyze(
        &self,
        text: &str,
        categories: Option<&[&str]>,
        normalize: bool,
    ) -> Result<BTreeMap<String, f64>, AffectError> {
        let mut times = vec![0usize; self.names.len()];
        match categories {
            Some(names) if !names.is_empty() => {
                for name in names {
                    let id = self.ids.get(*name).ok_or_else(|| AffectError::UnknownCategory(name.to_string()))?;
                    times[*id] += 1;
                }
            }
            _ => times.fill(1),
        }
        let mut hits = vec![0usize; self.names.len()];
        let mut tokens = 0usize;
        for token in py_split(text) {
            tokens += 1;
            for &id in self.terms.get(token).into_iter().flatten() {
                hits[id] += 1;
            }
        }
        if normalize && tokens == 0 {
            return Ok(BTreeMap::new());
        }
        // Dividing by 1.0 is exact, so the counts come out unchanged.
        let per = if normalize { tokens as f64 } else { 1.0 };
        Ok(self
            .names
            .iter()
            .zip(hits.iter().zip(&times))
            .filter(|(_, (_, &t))| t > 0)
            .map(|(name, (&h, &t))| (name.clone(), (h * t) as f64 / per))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const LEXICON: &str = "good\t1.9\t0.9434\t[2, 2, 1]\nbad\t-2.5\t0.67082\t[-2, -3]\n\
                           grinning\t1.5\t0.5\t[1]\n";
    const EMOJI: &str = "\u{1F600}\tgrinning face\n";

    fn vader() -> Vader {
        Vader::new(LEXICON, EMOJI).expect("test lexicon")
    }

    fn scores(neg: f64, neu: f64, pos: f64, compound: f64) -> VaderScores {
        VaderScores { neg, neu, pos, compound }
    }

    #[test]
    fn one_lexicon_word() {
        // "good" alone: sum = 1.9; compound = 1.9 / sqrt(1.9² + 15) = 1.9 / sqrt(18.61)
        // = 1.9 / 4.313931 = 0.440433 -> 0.4404. pos_sum = 1.9 + 1 is the whole total: pos = 1.
        assert_eq!(vader().polarity_scores("good"), scores(0.0, 0.0, 1.0, 0.4404));
        // Punctuation is stripped off words longer than 2 characters; case does not matter.
        assert_eq!(vader().polarity_scores("(GOOD)"), scores(0.0, 0.0, 1.0, 0.4404));
    }

    #[test]
    fn negation_booster_and_emphasis() {
        // "not good": 1.9 · -0.74 = -1.406; compound = -1.406 / sqrt(1.976836 + 15)
        // = -1.406 / 4.120296 = -0.341238 -> -0.3412. neg_sum = -2.406, plus "not" neutral:
        // total 3.406, neg = 0.70640 -> 0.706, neu = 0.29360 -> 0.294.
        assert_eq!(vader().polarity_scores("not good"), scores(0.706, 0.294, 0.0, -0.3412));
        // "very good": 1.9 + 0.293 = 2.193; compound = 2.193 / sqrt(4.809249 + 15)
        // = 2.193 / 4.450758 = 0.492725 -> 0.4927. "very" scores 0 (neutral): total = 3.193 + 1,
        // pos = 3.193 / 4.193 = 0.76151 -> 0.762, neu = 1 / 4.193 = 0.23849 -> 0.238.
        assert_eq!(vader().polarity_scores("very good"), scores(0.0, 0.238, 0.762, 0.4927));
        // "good!!": + 2 · 0.292 -> x = 2.484; compound = 2.484 / sqrt(6.170256 + 15)
        // = 2.484 / 4.601114 = 0.539869 -> 0.5399.
        assert_eq!(vader().polarity_scores("good!!").compound, 0.5399);
    }

    #[test]
    fn emoji_are_scored_by_description() {
        // "\u{1F600}" -> "grinning face": compound = 1.5 / sqrt(2.25 + 15) = 1.5 / 4.153312
        // = 0.361158 -> 0.3612; "face" is neutral: pos = 2.5 / 3.5 = 0.714, neu = 1 / 3.5 = 0.286.
        assert_eq!(vader().polarity_scores("\u{1F600}"), scores(0.0, 0.286, 0.714, 0.3612));
    }

    #[test]
    fn rounding_is_pythons() {
        // Exact binary ties go to the even digit; 2.675 is 2.67499999... in binary.
        assert_eq!(py_round(0.0625, 3), 0.062);
        assert_eq!(py_round(0.1875, 3), 0.188);
        assert_eq!(py_round(0.03125, 4), 0.0312);
        assert_eq!(py_round(2.675, 2), 2.67);
    }

    #[test]
    fn python_string_semantics() {
        assert!(py_isupper("ABC1") && py_isupper("\u{3a3}\u{39f}") && !py_isupper("123"));
        // A titlecase letter makes the word not upper case.
        assert!(!py_isupper("\u{1c5}A"));
        assert_eq!(py_split(" a\u{1f}b\u{a0}c\n").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(strip_punc_if_word(":)"), ":)");
        assert_eq!(strip_punc_if_word("'ok'!"), "'ok'!");
        assert_eq!(strip_punc_if_word("...good,"), "good");
    }

    #[test]
    fn degenerate_texts_do_not_panic() {
        let v = vader();
        let zero = scores(0.0, 0.0, 0.0, 0.0);
        assert_eq!(v.polarity_scores(""), zero);
        assert_eq!(v.polarity_scores(" \t\u{1c}\n"), zero);
        assert_eq!(v.polarity_scores("!!! ???"), scores(0.0, 1.0, 0.0, 0.0));
        let huge = "good but bad no least kind of \u{1F600}\u{1F494} NOT ".repeat(20_000);
        let s = v.polarity_scores(&huge);
        assert!(s.compound.abs() <= 1.0 && (s.neg + s.neu + s.pos - 1.0).abs() < 0.01);
        for text in ["\u{0}", "ǅ", "\u{1F468}\u{200D}\u{1F469}", "no", "no no", "but", "least"] {
            v.polarity_scores(text);
        }
    }

    #[test]
    fn bad_lexicons_are_errors() {
        let line = |r: Result<Vader, AffectError>| match r {
            Err(AffectError::BadLine { line, .. }) => line,
            other => panic!("expected a bad line, got {:?}", other.map(|_| ())),
        };
        assert_eq!(line(Vader::new("good\t1.9\nbad -2.5\n", EMOJI)), 2);
        assert_eq!(line(Vader::new("good\tvery\n", EMOJI)), 1);
        assert_eq!(line(Vader::new("good\t1.9\n\n   \n", EMOJI)), 3);
        // The Python reads an empty emoji lexicon as one line without a tab.
        assert_eq!(line(Vader::new(LEXICON, "")), 1);
        assert!(Vader::new("", EMOJI).is_ok());
        assert!(matches!(Empath::new("<html>\n</html>\n"), Err(AffectError::NoCategories)));
    }

    #[test]
    fn empath_counts_exact_tokens() {
        let e = Empath::new("money\tcash\tmoney\tcash\r\nbank\tcash\nempty\nbank\tcash\n").expect("tsv");
        assert_eq!(e.categories(), ["money", "bank"]);
        // 4 tokens; "Cash" and "money," are not terms. "bank" lists "cash" on two lines.
        let got = e.analyze("cash money Cash money,", None, true).expect("analyze");
        assert_eq!(got, BTreeMap::from([("bank".into(), 0.5), ("money".into(), 0.5)]));
        let twice = e.analyze("cash", Some(&["money", "money"]), false).expect("analyze");
        assert_eq!(twice, BTreeMap::from([("money".into(), 2.0)]));
        assert_eq!(e.analyze("", Some(&[]), true).expect("analyze"), BTreeMap::new());
        assert_eq!(e.analyze("", None, false).expect("analyze")["money"], 0.0);
        let unknown = e.analyze("cash", Some(&["empty"]), true);
        assert!(matches!(unknown, Err(AffectError::UnknownCategory(n)) if n == "empty"));
    }

    fn close(what: &str, got: f64, want: &Value, tol: f64) {
        let want = want.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {want}"));
        assert!((got - want).abs() <= tol, "{what}: got {got}, Python {want}");
    }

    fn same_map(what: &str, got: &BTreeMap<String, f64>, want: &Value) -> usize {
        let Some(want) = want.as_object() else {
            assert!(want.is_null() && got.is_empty(), "{what}: got {got:?}, Python {want}");
            return 1;
        };
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}");
        for (k, v) in want {
            close(&format!("{what} {k}"), got[k], v, 1e-12);
        }
        want.len()
    }

    #[test]
    fn matches_the_python_packages() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("models/lexicons");
        let read = |name: &str| std::fs::read_to_string(dir.join(name));
        let (Ok(lexicon), Ok(emoji), Ok(tsv)) =
            (read("vader_lexicon.txt"), read("emoji_utf8_lexicon.txt"), read("empath_categories.tsv"))
        else {
            eprintln!("skipping: the lexicons are not in {}", dir.display());
            return;
        };
        let vader = Vader::new(&lexicon, &emoji).expect("vader lexicons");
        let empath = Empath::new(&tsv).expect("empath categories");
        let path = root.join("tests/reference/affect-python.json");
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("reference json")).expect("json");
        let (mut texts, mut values) = (0, 0);
        for row in reference["sentences"].as_array().expect("sentences") {
            let text = row["text"].as_str().expect("text");
            let got = vader.polarity_scores(text);
            let want = &row["vader"];
            for (name, value) in [("neg", got.neg), ("neu", got.neu), ("pos", got.pos), ("compound", got.compound)] {
                close(&format!("vader {name} of {text:?}"), value, &want[name], 1e-9);
            }
            let all = empath.analyze(text, None, true).expect("empath");
            values += 4 + same_map(&format!("empath of {text:?}"), &all, &row["empath"]);
            if let Some(counts) = row.get("empath_counts") {
                let got = empath.analyze(text, None, false).expect("empath");
                values += same_map(&format!("empath counts of {text:?}"), &got, counts);
            }
            texts += 1;
        }
        for call in reference["empath_calls"].as_array().expect("empath_calls") {
            let text = call["text"].as_str().expect("text");
            let names: Vec<&str> =
                call["categories"].as_array().expect("categories").iter().filter_map(Value::as_str).collect();
            let normalize = call["normalize"].as_bool().expect("normalize");
            let got = empath.analyze(text, Some(&names), normalize).expect("empath");
            values += same_map(&format!("empath {names:?} of {text:?}"), &got, &call["result"]);
        }
        assert!(texts >= 40, "only {texts} reference sentences");
        eprintln!("{texts} texts, {values} values match vaderSentiment 3.3.2 and empath 0.89");
    }
}
