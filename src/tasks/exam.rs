//! EMPEC's exam evaluation (zhehengluoK/eval_empec): a multiple-choice question with options
//! A–D, asked in the model's chat template, answered greedily or by scoring the option letters,
//! and the answer letter read from the reply as eval_empec reads it.
//!
//! The prompt is eval_empec's `src/eval.py`: the question (its options inside it) + `"\n答案："`
//! as the user's turn of the chat template, greedy, at most 32 new tokens. English questions end
//! in `"\nAnswer:"`, as `QwenEvaluator.format_example_en` (`src/Evaluator.py`) writes them.
//!
//! The letter is read as `QwenEvaluator.eval_subject_zh` reads it (`eval_subject_en` for English
//! questions): the reply stripped of whitespace; empty is no answer; otherwise
//! `extract_ans_zh` (`extract_ans_en`) lists the matches (the reply's first character if it
//! is A–D, else every match of the first of its regular expressions, in its order, that matches
//! anywhere) and the answer is the **last** of them. eval_empec's `src/test.py` takes the first
//! instead and does not strip; the two differ only on replies that name several letters through
//! one expression. Whitespace is Python's (`str.strip`, `re`'s `\s`), which counts U+001C–U+001F
//! where Unicode's White_Space does not.
//!
//! Quirks are kept: a reply beginning "Answer: D" is read as A, a full-width Ｃ is no letter,
//! and a traditional-character "答案為" is not the simplified pattern `答案为`. The normalised
//! reading ([`Reading::Normalised`], reported separately) reads full-width forms as their ASCII
//! letters and punctuation, and the traditional and simplified forms of the expressions'
//! characters alike.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::classify::{chat_prompt, continue_text, score_labels};
use super::pipeline::Mode;
use super::rows::row_id;
use super::templates::Label;
use super::{Result, TaskError};
use crate::backend::Backend;
use crate::generate::Writing;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// The option letters.
pub const LETTERS: [char; 4] = ['A', 'B', 'C', 'D'];

/// eval_empec's reply length for a question (`SamplingParams(max_tokens=32)`).
pub const DEFAULT_MAX_NEW_TOKENS: usize = 32;

/// The longest question text accepted, in bytes: far above any exam item, and far below what
/// would make tokenising it a burden.
pub const MAX_QUESTION_BYTES: usize = 64 * 1024;

/// `extract_ans_zh`'s expressions, in its order, as it writes them.
const PATTERNS_ZH: [&str; 35] = [
    r"正確選項為([A-D])",
    r"正确的选项是([A-D])",
    r"^选([A-D])",
    r"^选项([A-D])",
    r"^選项([A-D])",
    r"^選擇([A-D])",
    r"选项([A-D])正确",
    r"答案是\s?选?项?\s?([A-D])",
    r"答案为\s?选?项?\s?([A-D])",
    r"答案应为\s?选?项?\s?([A-D])",
    r"答案选\s?选?项?\s?([A-D])",
    r"答案是:\s?选?项?\s?([A-D])",
    r"答案应该是:\s?选?项?\s?([A-D])",
    r"正确的一项是\s?([A-D])",
    r"答案为:\s?选?项?\s?([A-D])",
    r"答案应为:\s?选?项?\s?([A-D])",
    r"答案:\s?选?项?\s?([A-D])",
    r"答案是：\s?选?项?\s?([A-D])",
    r"答案应该是：\s?选?项?\s?([A-D])",
    r"答案为：\s?选?项?\s?([A-D])",
    r"答案应为：\s?选?项?\s?([A-D])",
    r"答案：\s?选?项?\s?([A-D])",
    r"([A-D])\.\s?",
    r"\s([A-D])\s?",
    r"正确答案[是为]([A-D])",
    r"正确答案是 ([A-D])",
    r"错误选项是([A-D])",
    r"正確選項是([A-D])",
    r"正确的選項是([A-D])",
    r"正確的選擇是：([A-D])",
    r"正确选项是([A-D])",
    r"正确的回答是 ([A-D])",
    r"选项([A-D])是",
    r"选项 ([A-D])",
    r"\(([A-D])\)",
];

/// `extract_ans_en`'s expressions.
const PATTERNS_EN: [&str; 2] = [r"Answer:([A-D])\.\s?", r"([A-D])\.\s?"];

/// Python's whitespace (`str.isspace`, and `\s` in a `str` pattern).
const PYTHON_SPACE_CLASS: &str =
    r"[\t-\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]";

fn is_python_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1C}'..='\u{1F}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// The traditional and simplified forms of the characters in the expressions.
const VARIANTS: [(char, char); 9] = [
    ('為', '为'),
    ('選', '选'),
    ('項', '项'),
    ('確', '确'),
    ('應', '应'),
    ('該', '该'),
    ('錯', '错'),
    ('誤', '误'),
    ('擇', '择'),
];

/// The question's language, which picks the answer cue and the extraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Language {
    #[serde(rename = "zh")]
    Chinese,
    #[serde(rename = "en")]
    English,
}

impl Language {
    /// A row's `language` (`zh`, `zh-Hant`, `en`, ...), else Chinese when the question has a Han
    /// character.
    fn of(declared: Option<&str>, question: &str) -> Result<Language> {
        match declared {
            Some(tag) if tag == "en" || tag.starts_with("en-") => Ok(Language::English),
            Some(tag) if tag == "zh" || tag.starts_with("zh-") => Ok(Language::Chinese),
            Some(tag) => Err(TaskError::BadInput(format!("\"language\": {tag:?} is neither zh… nor en…"))),
            None if question.chars().any(is_han) => Ok(Language::Chinese),
            None => Ok(Language::English),
        }
    }

    fn cue(self) -> &'static str {
        match self {
            Language::Chinese => "\n答案：",
            Language::English => "\nAnswer:",
        }
    }
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}')
}

/// How a reply is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// eval_empec's extraction, quirks included.
    Faithful,
    /// Full-width letters and punctuation as ASCII, traditional and simplified characters alike.
    Normalised,
}

struct Extractor {
    zh: Vec<Regex>,
    en: Vec<Regex>,
}

impl Extractor {
    fn new(reading: Reading) -> Extractor {
        let compile = |pattern: &&str| {
            let mut source = pattern.replace(r"\s", PYTHON_SPACE_CLASS);
            if reading == Reading::Normalised {
                for (traditional, simplified) in VARIANTS {
                    source = source.replace([traditional, simplified], &format!("[{traditional}{simplified}]"));
                }
            }
            Regex::new(&source).expect("eval_empec's expressions are valid")
        };
        Extractor { zh: PATTERNS_ZH.iter().map(compile).collect(), en: PATTERNS_EN.iter().map(compile).collect() }
    }

    fn get(reading: Reading) -> &'static Extractor {
        static FAITHFUL: OnceLock<Extractor> = OnceLock::new();
        static NORMALISED: OnceLock<Extractor> = OnceLock::new();
        match reading {
            Reading::Faithful => FAITHFUL.get_or_init(|| Extractor::new(Reading::Faithful)),
            Reading::Normalised => NORMALISED.get_or_init(|| Extractor::new(Reading::Normalised)),
        }
    }
}

/// The answer letter a reply gives, or `None` for no answer.
pub fn extract(reply: &str, language: Language, reading: Reading) -> Option<char> {
    let normalised;
    let reply = match reading {
        Reading::Faithful => reply,
        Reading::Normalised => {
            normalised = reply.chars().map(from_full_width).collect::<String>();
            &normalised
        }
    };
    let reply = reply.trim_matches(is_python_space);
    let first = reply.chars().next()?;
    if LETTERS.contains(&first) {
        return Some(first);
    }
    let extractor = Extractor::get(reading);
    let patterns = match language {
        Language::Chinese => &extractor.zh,
        Language::English => &extractor.en,
    };
    patterns.iter().find_map(|pattern| {
        let last = pattern.captures_iter(reply).last()?;
        last[1].chars().next()
    })
}

/// U+FF01–U+FF5E are the full-width forms of `!`…`~`.
fn from_full_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
        _ => c,
    }
}

/// One exam question.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub id: String,
    /// The question as the model reads it, its options inside.
    pub text: String,
    pub answer: Option<char>,
    pub profession: Option<String>,
    pub subject: Option<String>,
    pub language: Language,
}

impl Question {
    /// An EMPEC row: `{"id", "question", "answer"?, "profession"?, "subject"?, "language"?}`,
    /// the options inside the question or in `"options": {"A": …, "D": …}` (then written
    /// after it as `\nA. …`, as `format_example_zh` does).
    pub fn from_row(line: &str) -> Result<Question> {
        let bad = |why: String| TaskError::BadInput(why);
        let value: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let row = value.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
        let id = row.get("id").and_then(row_id).ok_or_else(|| bad("no \"id\" (a string or a number)".into()))?;
        let in_row = |why: &str| bad(format!("id {id:?}: {why}"));
        let mut text = row
            .get("question")
            .and_then(Value::as_str)
            .ok_or_else(|| in_row("no \"question\" (a string)"))?
            .to_string();
        match row.get("options") {
            None | Some(Value::Null) => {}
            Some(Value::Object(options)) => {
                for letter in LETTERS {
                    let option = options
                        .get(letter.encode_utf8(&mut [0; 4]) as &str)
                        .and_then(Value::as_str)
                        .ok_or_else(|| in_row(&format!("\"options\" has no string {letter:?}")))?;
                    text.push_str(&format!("\n{letter}. {option}"));
                }
                if options.len() != LETTERS.len() {
                    return Err(in_row("\"options\" must have exactly the keys A, B, C and D"));
                }
            }
            Some(_) => return Err(in_row("\"options\" is not an object {\"A\": …, \"D\": …}")),
        }
        if text.len() > MAX_QUESTION_BYTES {
            return Err(in_row(&format!(
                "the question is {} bytes; at most {MAX_QUESTION_BYTES} are read",
                text.len()
            )));
        }
        let answer = match row.get("answer") {
            None | Some(Value::Null) => None,
            Some(Value::String(letter)) => match letter.trim().parse::<char>() {
                Ok(letter) if LETTERS.contains(&letter) => Some(letter),
                _ => return Err(in_row(&format!("\"answer\" {letter:?} is not one of A, B, C, D"))),
            },
            Some(_) => return Err(in_row("\"answer\" is not a string")),
        };
        let string = |key: &str| row.get(key).and_then(Value::as_str).map(str::to_string);
        let language =
            Language::of(row.get("language").and_then(Value::as_str), &text).map_err(|e| in_row(&e.to_string()))?;
        Ok(Question { id, text, answer, profession: string("profession"), subject: string("subject"), language })
    }

    /// The user's turn: the question and the answer cue.
    pub fn user_turn(&self) -> String {
        format!("{}{}", self.text, self.language.cue())
    }
}

/// A question answered: the reply (generate mode) or the letters' probabilities (score mode),
/// and the letter read from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExamReply {
    pub id: String,
    /// `generate` or `score`.
    pub mode: String,
    pub language: Language,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profession: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The model's reply, in generate mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `P(letter)` among A–D as the reply's first token(s), in score mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probs: Option<BTreeMap<char, f64>>,
    pub answer: Option<char>,
    /// The normalised reading's letter (or `null`), in generate mode.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub answer_normalised: Option<Option<char>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold: Option<char>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
}

/// Asks `question` in the model's chat template. Generate mode writes up to `max_new_tokens`
/// greedily (each piece through `on_text`); score mode compares the four letters as the reply's
/// start, sharing the prompt's KV cache.
pub fn answer<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    question: &Question,
    mode: Mode,
    max_new_tokens: usize,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<ExamReply> {
    let prompt = chat_prompt(tokenizer, &question.user_turn())?;
    let mut reply = ExamReply {
        id: question.id.clone(),
        mode: "generate".into(),
        language: question.language,
        profession: question.profession.clone(),
        subject: question.subject.clone(),
        output: None,
        probs: None,
        answer: None,
        answer_normalised: None,
        gold: question.answer,
        correct: None,
    };
    match mode {
        Mode::Generate => {
            let request = Writing::GREEDY.request(max_new_tokens, Vec::new());
            let text = continue_text(model, tokenizer, &prompt.spanned.text, true, request, on_text)?;
            reply.answer = extract(&text, question.language, Reading::Faithful);
            reply.answer_normalised = Some(extract(&text, question.language, Reading::Normalised));
            reply.output = Some(text);
        }
        Mode::Score => {
            let labels: Vec<Label> =
                LETTERS.iter().map(|l| Label { name: l.to_string(), words: vec![l.to_string()] }).collect();
            let (scores, _) = score_labels(model, tokenizer, &prompt, "", &labels)?;
            reply.mode = "score".into();
            reply.answer = Some(LETTERS[scores.best]);
            reply.probs = Some(LETTERS.iter().copied().zip(scores.probs).collect());
        }
    }
    reply.correct = question.answer.map(|gold| reply.answer == Some(gold));
    Ok(reply)
}

/// A field that is present, even as `null`: absent is the outer `None` (through `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl ExamReply {
    /// The reply as one scored answer, when its question had a gold letter.
    pub fn scored(&self) -> Option<Scored<'_>> {
        Some(Scored {
            gold: self.gold?,
            answer: self.answer,
            normalised: self.answer_normalised,
            profession: self.profession.as_deref(),
            subject: self.subject.as_deref(),
        })
    }
}

/// Correct answers out of a count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    pub count: usize,
    pub correct: usize,
    pub accuracy: f64,
}

impl Tally {
    fn add(&mut self, correct: bool) {
        self.count += 1;
        self.correct += usize::from(correct);
        self.accuracy = self.correct as f64 / self.count as f64;
    }
}

/// One scored answer: the gold letter, the letter read, and where the question belongs.
pub struct Scored<'a> {
    pub gold: char,
    pub answer: Option<char>,
    /// The normalised reading's letter, when there was a reply to read (generate mode).
    pub normalised: Option<Option<char>>,
    pub profession: Option<&'a str>,
    pub subject: Option<&'a str>,
}

/// Accuracy overall, per profession and per subject; no answer counts as wrong.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExamReport {
    pub overall: Tally,
    /// Questions without a letter in the reply.
    pub no_answer: usize,
    /// The uniform guess among four options.
    pub chance: f64,
    pub by_profession: BTreeMap<String, Tally>,
    pub by_subject: BTreeMap<String, Tally>,
    /// The normalised reading, over the questions that have a reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalised: Option<Tally>,
}

/// The group of a question without a profession or subject.
const UNLABELLED: &str = "(none)";

pub fn report(scored: &[Scored]) -> ExamReport {
    let mut report = ExamReport { chance: 1.0 / LETTERS.len() as f64, ..ExamReport::default() };
    for s in scored {
        let correct = s.answer == Some(s.gold);
        report.overall.add(correct);
        report.no_answer += usize::from(s.answer.is_none());
        report.by_profession.entry(s.profession.unwrap_or(UNLABELLED).to_string()).or_default().add(correct);
        report.by_subject.entry(s.subject.unwrap_or(UNLABELLED).to_string()).or_default().add(correct);
    }
    for s in scored {
        if let Some(answer) = s.normalised {
            report.normalised.get_or_insert_with(Tally::default).add(answer == Some(s.gold));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expressions_keep_eval_empecs_order_and_python_whitespace() {
        let zh = |reply: &str| extract(reply, Language::Chinese, Reading::Faithful);
        // A reply that starts with a letter is that letter, whatever follows.
        assert_eq!(zh("Answer: D"), Some('A'));
        // The first expression that matches decides, and its last match is the answer.
        assert_eq!(zh("答案是A还是答案是C"), Some('C'));
        assert_eq!(zh("选项B正确，答案是C"), Some('B'));
        assert_eq!(zh("因為 A. 不對，B. 才對"), Some('B'));
        assert_eq!(zh("\u{1F}B"), Some('B'));
        assert_eq!(zh("答案為Ｂ"), None);
        assert_eq!(extract("答案為Ｂ", Language::Chinese, Reading::Normalised), Some('B'));
        assert_eq!(zh(" \u{3000}\n"), None);
        assert_eq!(extract("The answer is C.", Language::English, Reading::Faithful), Some('C'));
        assert_eq!(extract("The answer: (C)", Language::English, Reading::Faithful), None);
    }

    #[test]
    fn options_are_written_after_the_question_and_bad_rows_are_typed_errors() {
        let row = r#"{"id": 7, "question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer": "C"}"#;
        let question = Question::from_row(row).unwrap();
        assert_eq!(question.text, "Q?\nA. a\nB. b\nC. c\nD. d");
        assert_eq!((question.id.as_str(), question.answer, question.language), ("7", Some('C'), Language::English));
        assert_eq!(question.user_turn(), "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:");
        assert_eq!(Question::from_row(r#"{"id": "x", "question": "肺臟？"}"#).unwrap().user_turn(), "肺臟？\n答案：");
        for bad in [
            r#"{"id": 1, "question": "Q", "answer": "E"}"#,
            r#"{"id": 1, "question": "Q", "options": {"A": "a"}}"#,
            r#"{"id": 1, "question": "Q", "language": "fr"}"#,
            r#"{"question": "Q"}"#,
            r#"{"id": 1}"#,
        ] {
            assert!(matches!(Question::from_row(bad), Err(TaskError::BadInput(_))), "{bad}");
        }
    }

    #[test]
    fn the_report_counts_no_answer_as_wrong_per_group() {
        let scored = [
            Scored {
                gold: 'A',
                answer: Some('A'),
                normalised: Some(Some('A')),
                profession: Some("Nurse"),
                subject: None,
            },
            Scored { gold: 'B', answer: None, normalised: Some(Some('B')), profession: Some("Nurse"), subject: None },
            Scored { gold: 'C', answer: Some('D'), normalised: Some(None), profession: None, subject: Some("s") },
        ];
        let report = report(&scored);
        assert_eq!((report.overall.count, report.overall.correct, report.no_answer), (3, 1, 1));
        assert_eq!(report.by_profession["Nurse"], Tally { count: 2, correct: 1, accuracy: 0.5 });
        assert_eq!(report.by_profession[UNLABELLED].count, 1);
        assert_eq!(report.normalised.map(|t| t.correct), Some(2));
    }
}
