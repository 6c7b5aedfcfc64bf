//! HARMONIC's utility measure, machine-learning efficiency (MLE): classifiers trained on a table
//! and tested on held-out real rows, here smartcore's logistic regression (L2, `alpha` 1, the
//! objective of scikit-learn's `LogisticRegression(C=1)`: the summed log-loss plus ½‖w‖², the
//! intercepts free, multinomial over three or more classes) and random forest (100 trees, √p
//! features per split, seeded). Features: each numeric column standardised by the training
//! table's mean and population standard deviation, each categorical column one-hot over the real
//! table's categories; the label's classes are the real table's.

use serde::Serialize;
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use super::encode::Encoder;
use super::table::{number, Kind, Table};
use super::{Result, TabularError};
use crate::tasks::metrics::classification;

/// The real table's classes in order (numerically for a numeric label), and each row's class.
fn classes(real: &Table, label: usize) -> Vec<String> {
    let mut classes = real.categories(label);
    if real.kinds[label] == Kind::Numeric {
        classes.sort_by(|a, b| number(a).unwrap_or(f64::NAN).total_cmp(&number(b).unwrap_or(f64::NAN)));
    }
    classes
}

fn class_indices(table: &Table, label: usize, classes: &[String], what: &str) -> Result<Vec<u32>> {
    table
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            classes
                .iter()
                .position(|c| match number(c) {
                    Some(v) => number(&row[label]) == Some(v),
                    None => *c == row[label],
                })
                .map(|i| i as u32)
                .ok_or_else(|| {
                    TabularError::BadInput(format!(
                        "{what} row {}: the label {:?} is not a real class",
                        r + 1,
                        row[label]
                    ))
                })
        })
        .collect()
}

/// One classifier's test scores, or why it could not be trained.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    /// Each test row's predicted class, as the label is written.
    #[serde(skip)]
    pub predictions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_trained: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Efficiency {
    pub logistic_regression: Scores,
    pub random_forest: Scores,
}

/// Classifiers trained on `train` (rows in `real`'s schema) and tested on `test`.
pub fn machine_learning_efficiency(
    real: &Table,
    train: &Table,
    test: &Table,
    label: &str,
    seed: u64,
) -> Result<Efficiency> {
    let label = real.column(label)?;
    for (what, table) in [("training", train), ("test", test)] {
        if table.columns != real.columns {
            return Err(TabularError::BadInput(format!(
                "the {what} columns {:?} are not the real ones",
                table.columns
            )));
        }
    }
    let classes = classes(real, label);
    let y_train = class_indices(train, label, &classes, "training")?;
    let y_test = class_indices(test, label, &classes, "test")?;
    let encoder = Encoder::fit(real, train, Some(label));
    let (x_train, x_test) = (encoder.transform(train), encoder.transform(test));
    let matrix =
        |rows: &Vec<Vec<f64>>| DenseMatrix::from_2d_vec(rows).map_err(|e| TabularError::BadInput(e.to_string()));
    let (x_train, x_test) = (matrix(&x_train)?, matrix(&x_test)?);
    let gold: Vec<&str> = y_test.iter().map(|&c| classes[c as usize].as_str()).collect();
    let score = |predicted: std::result::Result<Vec<u32>, String>| match predicted {
        Ok(predicted) => {
            let names: Vec<&str> = predicted.iter().map(|&c| classes[c as usize].as_str()).collect();
            let metrics = classification(&gold, &names);
            Scores {
                accuracy: Some(metrics.accuracy),
                macro_f1: Some(metrics.macro_f1),
                predictions: names.iter().map(|s| s.to_string()).collect(),
                not_trained: None,
            }
        }
        Err(why) => Scores { accuracy: None, macro_f1: None, predictions: Vec::new(), not_trained: Some(why) },
    };
    let trainable = {
        let mut seen = y_train.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() < 2 {
            Err(format!("the training rows hold {} class(es); a classifier needs two", seen.len()))
        } else {
            Ok(())
        }
    };
    let logistic = trainable.clone().and_then(|()| {
        LogisticRegression::fit(&x_train, &y_train, LogisticRegressionParameters::default().with_alpha(1.0))
            .and_then(|model| model.predict(&x_test))
            .map_err(|e| e.to_string())
    });
    let forest = trainable.and_then(|()| {
        RandomForestClassifier::fit(&x_train, &y_train, RandomForestClassifierParameters { seed, ..Default::default() })
            .and_then(|model| model.predict(&x_test))
            .map_err(|e| e.to_string())
    });
    Ok(Efficiency { logistic_regression: score(logistic), random_forest: score(forest) })
}
