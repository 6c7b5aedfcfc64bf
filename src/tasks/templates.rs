//! The tasks' prompts as data: `templates.json` (versioned) holds the seed papers' templates
//! exactly, and a user adds a task by giving the same fields (an instruction with `{field}`
//! placeholders, a label set and each label's words).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TemplateError {
    #[error("the template table is not valid: {0}")]
    BadTable(String),
    #[error("no task named {0:?}; the table has {1:?}")]
    NoSuchTask(String, Vec<String>),
    #[error("no objective named {0:?}; the table has {1:?}")]
    NoSuchObjective(String, Vec<String>),
    #[error("task {task:?} needs the field {field:?}")]
    MissingField { task: String, field: String },
    #[error("task {task:?}: {problem}")]
    BadTask { task: String, problem: String },
}

/// One label: its name in results, and the words whose continuation scores it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Label {
    pub name: String,
    pub words: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Task {
    pub name: String,
    #[serde(default)]
    pub paper: String,
    /// The instruction, with a `{field}` placeholder for each of `fields`. A task without one
    /// runs only as a retrieval-augmented few-shot prompt.
    #[serde(default)]
    pub instruction: Option<String>,
    pub fields: Vec<String>,
    pub labels: Vec<Label>,
    /// What precedes the label in a free generation (FMD: `Prediction: `), read by the seed's
    /// regex `Prediction: (\w+)`.
    #[serde(default)]
    pub answer_prefix: Option<String>,
    /// What precedes the explanation in a free generation (FMD: `Explanation:`).
    #[serde(default)]
    pub explanation_prefix: Option<String>,
    /// How the task reads as RAEmoLLM's few-shot prompt.
    #[serde(default)]
    pub retrieval: Option<Retrieval>,
}

/// A task's parts of the few-shot prompt: its task prompt, and its target text with `{field}`
/// placeholders (the same fields as the instruction).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Retrieval {
    pub task_prompt: String,
    pub target: String,
}

/// RAEmoLLM's retrieval-augmented few-shot prompt.
#[derive(Clone, Debug, Deserialize)]
pub struct FewShot {
    /// With `{task_prompt}`, `{t}` (the target) and `{examples}`.
    pub prompt: String,
    /// One example, with `{c}` (its text) and `{label}`.
    pub example: String,
    /// Appended to the target's and each example's text in the affect variant, with `{score}`.
    pub affect: String,
}

/// MetaAligner's correction prompt.
#[derive(Clone, Debug, Deserialize)]
pub struct Align {
    /// With `{aspects}`, `{question}` and `{answer}`.
    pub prompt: String,
    /// One aspect, with `{name}` and `{description}`.
    pub aspect: String,
    pub separator: String,
    /// The objectives a user picks by key (`harmlessness`, `specific`, ...).
    pub objectives: Vec<Objective>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Objective {
    pub key: String,
    pub name: String,
    pub description: String,
}

/// A text of a few-shot prompt, with its sentiment intensity in the affect variant.
pub struct Shot<'a> {
    pub text: &'a str,
    pub intensity: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Table {
    pub version: u32,
    /// The chat wrapper around every instruction, with `{instr}`.
    pub wrapper: String,
    pub tasks: Vec<Task>,
    pub few_shot: FewShot,
    pub align: Align,
}

/// A prompt, with where each input field's value lies in it (byte ranges), so that scores of
/// its tokens can be reported against the user's own text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spanned {
    pub text: String,
    pub spans: Vec<(String, Range<usize>)>,
}

impl Spanned {
    /// A field's value: one span, the whole text.
    pub fn field(name: &str, value: &str) -> Spanned {
        Spanned { text: value.to_string(), spans: vec![(name.to_string(), 0..value.len())] }
    }

    /// Text that is no input field.
    pub fn plain(text: &str) -> Spanned {
        Spanned { text: text.to_string(), spans: Vec::new() }
    }
}

/// `text` with each `{name}` of `values` replaced, in one pass (a value that itself contains
/// `{...}` stays as given), carrying each value's spans to where it lands.
fn fill_spanned(text: &str, values: &BTreeMap<&str, &Spanned>) -> Spanned {
    let mut out = Spanned::default();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if values.contains_key(name) => {
                let value = values[name];
                let at = out.text.len();
                out.spans
                    .extend(value.spans.iter().map(|(field, range)| (field.clone(), range.start + at..range.end + at)));
                out.text.push_str(&value.text);
                rest = &after[close + 1..];
            }
            _ => {
                out.text.push('{');
                rest = after;
            }
        }
    }
    out.text.push_str(rest);
    out
}

fn fill(text: &str, values: &BTreeMap<&str, &str>) -> String {
    let plain: BTreeMap<&str, Spanned> = values.iter().map(|(&k, &v)| (k, Spanned::plain(v))).collect();
    fill_spanned(text, &plain.iter().map(|(&k, v)| (k, v)).collect()).text
}

/// `template` with every one of `names` filled from `fields` (all required), as spans.
fn fill_fields(
    task: &str,
    template: &str,
    names: &[String],
    fields: &BTreeMap<&str, &str>,
) -> Result<Spanned, TemplateError> {
    let mut values = BTreeMap::new();
    for name in names {
        let value = fields
            .get(name.as_str())
            .ok_or_else(|| TemplateError::MissingField { task: task.to_string(), field: name.clone() })?;
        values.insert(name.as_str(), Spanned::field(name, value));
    }
    Ok(fill_spanned(template, &values.iter().map(|(&k, v)| (k, v)).collect()))
}

impl Task {
    /// Checks that every field has its placeholder and the labels are usable.
    fn check(&self) -> Result<(), TemplateError> {
        let problem = |problem: String| TemplateError::BadTask { task: self.name.clone(), problem };
        let templates: Vec<(&str, &str)> = self
            .instruction
            .iter()
            .map(|i| ("instruction", i.as_str()))
            .chain(self.retrieval.iter().map(|r| ("retrieval target", r.target.as_str())))
            .collect();
        if templates.is_empty() {
            return Err(problem("it needs an instruction or a retrieval prompt".into()));
        }
        for (what, template) in templates {
            if let Some(field) = self.fields.iter().find(|f| !template.contains(&format!("{{{f}}}"))) {
                return Err(problem(format!("the {what} has no {{{field}}} placeholder")));
            }
        }
        if let Some(label) = self.labels.iter().find(|l| l.words.is_empty() || l.words.iter().any(String::is_empty)) {
            return Err(problem(format!("label {:?} needs at least one non-empty word", label.name)));
        }
        Ok(())
    }

    /// The instruction with `fields` filled in; every field of the task must be given.
    pub fn instruction(&self, fields: &BTreeMap<&str, &str>) -> Result<String, TemplateError> {
        Ok(self.instruction_spanned(fields)?.text)
    }

    /// [`Task::instruction`], with where each field's value landed.
    pub fn instruction_spanned(&self, fields: &BTreeMap<&str, &str>) -> Result<Spanned, TemplateError> {
        let instruction = self.instruction.as_deref().ok_or_else(|| TemplateError::BadTask {
            task: self.name.clone(),
            problem: "it has no instruction: it runs only with retrieved examples".into(),
        })?;
        fill_fields(&self.name, instruction, &self.fields, fields)
    }

    /// The target text of the few-shot prompt, with where each field's value landed.
    pub fn retrieval_target(&self, fields: &BTreeMap<&str, &str>) -> Result<(&Retrieval, Spanned), TemplateError> {
        let retrieval = self.retrieval.as_ref().ok_or_else(|| TemplateError::BadTask {
            task: self.name.clone(),
            problem: "it has no few-shot prompt (\"retrieval\" in the template table)".into(),
        })?;
        Ok((retrieval, fill_fields(&self.name, &retrieval.target, &self.fields, fields)?))
    }

    /// The label a free generation names: the seed's `re.search(r"Prediction: (\w+)", text)`,
    /// `\w` being Unicode letters, digits and `_`.
    pub fn parse_label<'t>(&self, generation: &'t str) -> Option<&'t str> {
        let prefix = self.answer_prefix.as_deref()?;
        let mut from = 0;
        // `get` ends the search past the text's end, which an empty prefix reaches.
        while let Some(at) = generation.get(from..).and_then(|rest| rest.find(prefix)) {
            let found = from + at;
            let start = found + prefix.len();
            let word_len: usize =
                generation[start..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').map(char::len_utf8).sum();
            if word_len > 0 {
                return Some(&generation[start..start + word_len]);
            }
            // The next search starts one character on, never inside a multi-byte one.
            from = found + generation[found..].chars().next().map_or(1, char::len_utf8);
        }
        None
    }
}

impl Task {
    /// The label a free generation gives: the word the seed's regex reads after the answer
    /// prefix or, for a task without one, the longest label word the answer starts with; a
    /// label matches by its name or any of its words.
    pub fn label_in_generation(&self, generation: &str) -> Option<&Label> {
        let named = match self.answer_prefix {
            Some(_) => self.parse_label(generation)?,
            None => {
                let start = generation.trim_start();
                self.labels
                    .iter()
                    .flat_map(|l| &l.words)
                    .filter(|w| start.starts_with(w.as_str()))
                    .max_by_key(|w| w.len())?
            }
        };
        self.labels.iter().find(|l| l.name == named || l.words.iter().any(|w| w == named))
    }
}

impl Table {
    /// The table shipped with glassbox.
    pub fn builtin() -> Table {
        Table::parse(include_str!("templates.json"))
            .expect("the shipped template table is valid (a unit test parses it)")
    }

    pub fn parse(json: &str) -> Result<Table, TemplateError> {
        let table: Table = serde_json::from_str(json).map_err(|e| TemplateError::BadTable(e.to_string()))?;
        if !table.wrapper.contains("{instr}") {
            return Err(TemplateError::BadTable("the wrapper has no {instr} placeholder".into()));
        }
        table.tasks.iter().try_for_each(Task::check)?;
        Ok(table)
    }

    /// A user's task (the JSON of one [`Task`]), checked as the shipped ones are.
    pub fn parse_task(json: &str) -> Result<Task, TemplateError> {
        let task: Task = serde_json::from_str(json).map_err(|e| TemplateError::BadTable(e.to_string()))?;
        task.check()?;
        Ok(task)
    }

    pub fn task(&self, name: &str) -> Result<&Task, TemplateError> {
        self.tasks.iter().find(|t| t.name == name).ok_or_else(|| {
            TemplateError::NoSuchTask(name.to_string(), self.tasks.iter().map(|t| t.name.clone()).collect())
        })
    }

    /// RAEmoLLM's prompt: `{task_prompt}Target text: {t}\nHere are a few examples:\n` then
    /// ` Text: {c} The label of this text: {label}.\n` per example, then ` \nAccording to the
    /// above information, the label of target text:`; in the affect variant each text is followed
    /// by ` Sentiment intensity: {score}`.
    pub fn few_shot(&self, task_prompt: &str, target: &Shot, examples: &[(Shot, &str)]) -> String {
        self.few_shot_spanned(task_prompt, &Spanned::plain(target.text), target.intensity, examples).text
    }

    /// [`Table::few_shot`], carrying the target's field spans.
    pub fn few_shot_spanned(
        &self,
        task_prompt: &str,
        target: &Spanned,
        target_intensity: Option<f64>,
        examples: &[(Shot, &str)],
    ) -> Spanned {
        let affect = |intensity: Option<f64>| match intensity {
            Some(score) => fill(&self.few_shot.affect, &BTreeMap::from([("score", score.to_string().as_str())])),
            None => String::new(),
        };
        let examples: String = examples
            .iter()
            .map(|(shot, label)| {
                let text = format!("{}{}", shot.text, affect(shot.intensity));
                fill(&self.few_shot.example, &BTreeMap::from([("c", text.as_str()), ("label", *label)]))
            })
            .collect();
        let mut target = target.clone();
        target.text.push_str(&affect(target_intensity));
        let (task_prompt, examples) = (Spanned::plain(task_prompt), Spanned::plain(&examples));
        fill_spanned(
            &self.few_shot.prompt,
            &BTreeMap::from([("task_prompt", &task_prompt), ("t", &target), ("examples", &examples)]),
        )
    }

    /// The objectives named by `keys`, in that order.
    pub fn objectives(&self, keys: &[&str]) -> Result<Vec<&Objective>, TemplateError> {
        keys.iter()
            .map(|key| {
                self.align.objectives.iter().find(|o| o.key == *key).ok_or_else(|| {
                    TemplateError::NoSuchObjective(
                        key.to_string(),
                        self.align.objectives.iter().map(|o| o.key.clone()).collect(),
                    )
                })
            })
            .collect()
    }

    /// MetaAligner's prompt to edit `answer` to `question` for `aspects` (name, description),
    /// joined as `Name: description` with `; `.
    pub fn align(&self, aspects: &[(&str, &str)], question: &str, answer: &str) -> String {
        let aspects: Vec<String> = aspects
            .iter()
            .map(|(name, description)| {
                fill(&self.align.aspect, &BTreeMap::from([("name", *name), ("description", *description)]))
            })
            .collect();
        let aspects = aspects.join(&self.align.separator);
        fill(
            &self.align.prompt,
            &BTreeMap::from([("aspects", aspects.as_str()), ("question", question), ("answer", answer)]),
        )
    }

    /// `instruction` in the seeds' chat wrapper, `Human: \n{instr}\n\nAssistant:\n`.
    pub fn wrap(&self, instruction: &str) -> String {
        self.wrap_spanned(&Spanned::plain(instruction)).text
    }

    pub fn wrap_spanned(&self, instruction: &Spanned) -> Spanned {
        fill_spanned(&self.wrapper, &BTreeMap::from([("instr", instruction)]))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    // The expected prompts are the seeds' released code's templates, written out here by hand.

    #[test]
    fn the_fmd_prompt_is_the_seeds_to_the_character() {
        let table = Table::builtin();
        let fields = BTreeMap::from([("claim", "Shares of X rose 5%."), ("context", "X reported record profits.")]);
        let prompt = table.wrap(&table.task("fmd").unwrap().instruction(&fields).unwrap());
        let expected = "Human: \nTask: Please determine whether the claim is True, False, or Not Enough Information (NEI) \
            based on contextual information, and provide an appropriate explanation.\nThe answer need to use the following \
            format:\nPrediction: [True, or False, or NEI]\nExplanation: [Explain why the above prediction was made]\n Claim: \
            Shares of X rose 5%. \ncontextual information: X reported record profits.\n\nAssistant:\n";
        assert_eq!(prompt, expected);
    }

    #[test]
    fn the_conspiracy_prompts_are_the_seeds() {
        let table = Table::builtin();
        let text = BTreeMap::from([("text", "5G spreads the virus"), ("theory", "5G")]);
        assert_eq!(
            table.task("conspiracy").unwrap().instruction(&text).unwrap(),
            "Task: Classify the text regarding COVID-19 conspiracy theories or misinformation into one of the following three \
             classes: 0. Unrelated. 1. Related (but not supporting). 2. Conspiracy (related and supporting).  Text: 5G spreads \
             the virus Class: "
        );
        assert_eq!(
            table.task("relatedness").unwrap().instruction(&text).unwrap(),
            "Task: Determine the relatedness between the text and the 5G conspiracy theory. Classify it into one of the \
             following three classes: 0. not related. 1. closely related. 2. broadly related.  Text: 5G spreads the virus Class: "
        );
    }

    #[test]
    fn values_are_inserted_verbatim_and_missing_fields_are_errors() {
        let table = Table::builtin();
        let fmd = table.task("fmd").unwrap();
        let braces = BTreeMap::from([("claim", "{context}"), ("context", "c")]);
        assert!(fmd.instruction(&braces).unwrap().contains(" Claim: {context} \n"));
        assert_eq!(
            fmd.instruction(&BTreeMap::from([("claim", "x")])),
            Err(TemplateError::MissingField { task: "fmd".into(), field: "context".into() })
        );
        assert!(matches!(table.task("nope"), Err(TemplateError::NoSuchTask(..))));
    }

    #[test]
    fn the_prediction_is_read_as_the_seeds_regex_reads_it() {
        let fmd = Table::builtin().task("fmd").unwrap().clone();
        assert_eq!(fmd.parse_label("Prediction: False.\nExplanation: no."), Some("False"));
        // re.search skips a match that fails and takes the next.
        assert_eq!(fmd.parse_label("Prediction: [x]\nPrediction: NEI"), Some("NEI"));
        assert_eq!(fmd.parse_label("Prediction: Wahr_1!"), Some("Wahr_1"));
        assert_eq!(fmd.parse_label("no verdict"), None);
    }

    /// Python's `re.search(prefix + r"(\w+)", text)` by hand: an empty prefix finds the first
    /// word anywhere (or nothing), and a prefix of multi-byte characters is searched past a
    /// failed match without splitting a character.
    #[test]
    fn any_prefix_reads_the_generation_without_a_panic() {
        let with_prefix =
            |prefix: &str| Task { answer_prefix: Some(prefix.into()), ..Table::builtin().task("fmd").unwrap().clone() };
        assert_eq!(with_prefix("").parse_label("  ¿é_1? x"), Some("é_1"));
        assert_eq!(with_prefix("").parse_label(" !? "), None);
        assert_eq!(with_prefix("").parse_label(""), None);
        assert_eq!(with_prefix("→ ").parse_label("→ ! → → yes"), Some("yes"));
        assert_eq!(with_prefix("→").parse_label("→→→"), None);
        assert_eq!(with_prefix("é").parse_label("éé"), Some("é"));
    }

    #[test]
    fn a_free_generation_names_its_label() {
        let table = Table::builtin();
        let fmd = table.task("fmd").unwrap();
        assert_eq!(fmd.label_in_generation("Prediction: NEI.\nExplanation: x").map(|l| l.name.as_str()), Some("NEI"));
        // The regex reads `Truly`, which is no label.
        assert_eq!(fmd.label_in_generation("Prediction: Truly"), None);
        let conspiracy = table.task("conspiracy").unwrap();
        assert_eq!(conspiracy.label_in_generation(" 2. Conspiracy").map(|l| l.name.as_str()), Some("2"));
        assert_eq!(conspiracy.label_in_generation("Class 2"), None);
        let vreg = table.task("vreg").unwrap();
        assert_eq!(vreg.label_in_generation("0.5 or so").map(|l| l.name.as_str()), Some("0.5"));
    }

    #[test]
    fn the_few_shot_prompt_is_raemollms() {
        let table = Table::builtin();
        let pheme = &table.task("pheme").unwrap().retrieval.as_ref().unwrap().task_prompt;
        let plain = table.few_shot(
            pheme,
            &Shot { text: "T", intensity: None },
            &[(Shot { text: "A", intensity: None }, "1"), (Shot { text: "B", intensity: None }, "0")],
        );
        assert_eq!(
            plain,
            "Task: Determine if the target text is 0. non-rumours or 1. rumours. Please answer the question directly without \
             explanation. You must provide a specific answer. Target text: T\nHere are a few examples:\n Text: A The label of \
             this text: 1.\n Text: B The label of this text: 0.\n \nAccording to the above information, the label of target text:"
        );
        let affect = table.few_shot(
            "P ",
            &Shot { text: "T", intensity: Some(0.25) },
            &[(Shot { text: "A", intensity: Some(0.5) }, "1")],
        );
        assert_eq!(
            affect,
            "P Target text: T Sentiment intensity: 0.25\nHere are a few examples:\n Text: A Sentiment intensity: 0.5 The label \
             of this text: 1.\n \nAccording to the above information, the label of target text:"
        );
    }

    #[test]
    fn the_align_prompt_is_metaaligners() {
        let prompt = Table::builtin().align(
            &[
                ("Harmlessness", "The response should avoid content that is offensive, discriminatory, or harmful"),
                ("Humour", "Be funny"),
            ],
            "Q?",
            "A.",
        );
        assert_eq!(
            prompt,
            "You are an assistant to human. You will be provided with a context and an answer. Consider the context, then edit \
             the answer to improve it considering these aspects: Harmlessness: The response should avoid content that is \
             offensive, discriminatory, or harmful; Humour: Be funny | Context: Q? | Answer: A. | Edit: "
        );
    }

    #[test]
    fn a_users_task_is_checked_like_the_shipped_ones() {
        let ok = r#"{"name": "sarcasm", "instruction": "Is this sarcastic? {text} Answer: ", "fields": ["text"],
                     "labels": [{"name": "yes", "words": ["Yes", "yes"]}, {"name": "no", "words": ["No"]}]}"#;
        assert_eq!(Table::parse_task(ok).unwrap().labels[0].words, ["Yes", "yes"]);
        let no_placeholder = ok.replace("{text} ", "");
        assert!(matches!(Table::parse_task(&no_placeholder), Err(TemplateError::BadTask { .. })));
        let no_words = ok.replace(r#"["No"]"#, "[]");
        assert!(matches!(Table::parse_task(&no_words), Err(TemplateError::BadTask { .. })));
        assert!(matches!(Table::parse_task("{"), Err(TemplateError::BadTable(_))));
    }
}
