//! HARMONIC's tables: neighbour groups, privacy and fidelity against scikit-learn, NumPy and
//! SciPy (tests/reference/sklearn_harmonic.py), on the project's loan-applicant fixture
//! (numeric and categorical columns, one duplicated row) and scikit-learn's iris.

use crate::common;

use glassbox::tabular::evaluate::{fidelity, privacy};
use glassbox::tabular::neighbours::{encoded_rows, nearest, GROUP_NEIGHBOURS};
use glassbox::tabular::table::Table;
use glassbox::tabular::utility::machine_learning_efficiency;
use serde_json::Value;

fn read(path: &str) -> Table {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    Table::parse_csv(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

const LOANS: &str = "tests/data/loan_applicants.csv";
const IRIS_TRAIN: &str = "models/tables/iris-train.csv";
const IRIS_TEST: &str = "models/tables/iris-test.csv";

/// The first and second halves of a table, as the reference splits it.
fn halves(table: &Table) -> (Table, Table) {
    let middle = table.rows.len() / 2;
    (table.with_rows(table.rows[..middle].to_vec()), table.with_rows(table.rows[middle..].to_vec()))
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn neighbour_groups_are_scikit_learns() {
    let reference = common::reference("harmonic-sklearn.json");
    for (name, path, label) in [("loans", LOANS, "approved"), ("iris", IRIS_TRAIN, "target")] {
        let table = read(path);
        let points = encoded_rows(&table, table.column(label).unwrap());
        let expected = &reference["neighbours"][name];
        for (row, (indices, distances)) in
            expected["indices"].as_array().unwrap().iter().zip(expected["distances"].as_array().unwrap()).enumerate()
        {
            let (indices, distances) = (numbers(indices), numbers(distances));
            // scikit-learn queries with the row itself, which comes first unless it has an exact
            // duplicate; the group is the other five.
            let own = indices.iter().position(|&i| i as usize == row).unwrap_or(indices.len() - 1);
            let (others, other_distances): (Vec<usize>, Vec<f64>) =
                (0..indices.len()).filter(|&k| k != own).map(|k| (indices[k] as usize, distances[k])).unzip();
            let group = nearest(&points, row, GROUP_NEIGHBOURS);
            for (k, &(found, distance)) in group.iter().enumerate() {
                assert!(
                    (distance - other_distances[k]).abs() < 1e-9,
                    "{name} row {row} neighbour {k}: {distance} vs {}",
                    other_distances[k]
                );
                // Rows at equal distances may come in either order, and a tie at the fifth place
                // may be settled for another row.
                let listed =
                    (0..others.len()).any(|j| others[j] == found && (other_distances[j] - distance).abs() < 1e-9);
                let tied_last = (distance - other_distances[others.len() - 1]).abs() < 1e-9;
                assert!(listed || tied_last, "{name} row {row}: neighbour {found} is not scikit-learn's {others:?}");
            }
        }
    }
}

#[test]
fn dcr_copies_and_fidelity_are_scikit_learn_and_scipys() {
    let reference = common::reference("harmonic-sklearn.json");
    let loans = read(LOANS);
    for (name, (real, synthetic)) in [("loans", halves(&loans)), ("iris", (read(IRIS_TRAIN), read(IRIS_TEST)))] {
        let expected = &reference["privacy"][name];
        let p = privacy(&real, &synthetic).unwrap();
        for (got, want) in p.dcr.iter().zip(numbers(&expected["dcr"])) {
            assert!((got - want).abs() < 1e-6, "{name}: DCR {got} vs {want}");
        }
        assert!((p.dcr_p5 - expected["dcr_p5"].as_f64().unwrap()).abs() < 1e-6, "{name}: DCR p5");
        assert!((p.dcr_median - expected["dcr_median"].as_f64().unwrap()).abs() < 1e-6, "{name}: DCR median");
        assert_eq!(p.copied_rows as u64, expected["copied_rows"].as_u64().unwrap(), "{name}: copies");

        let expected = &reference["fidelity"][name];
        let f = fidelity(&real, &synthetic).unwrap();
        for (column, want) in expected["columns"].as_object().unwrap() {
            let got = f.columns[column].value;
            assert!((got - want.as_f64().unwrap()).abs() < 1e-9, "{name} {column}: {got} vs {want}");
        }
        for key in ["correlation_mean_abs_difference", "correlation_max_abs_difference"] {
            let got = serde_json::to_value(&f).unwrap()[key].as_f64().unwrap();
            assert!((got - expected[key].as_f64().unwrap()).abs() < 1e-9, "{name} {key}: {got} vs {}", expected[key]);
        }
    }
}

/// Logistic regression's predictions are scikit-learn's (the same objective, solved by another
/// L-BFGS), except where scikit-learn's top two probabilities are within 0.01 of each other.
#[test]
fn logistic_regression_predicts_as_scikit_learns() {
    let reference = common::reference("harmonic-sklearn.json");
    let loans = read(LOANS);
    let cases = [
        ("loans", halves(&loans), "approved"),
        ("iris", (read(IRIS_TRAIN), read(IRIS_TEST)), "target"),
        (
            "breast_cancer",
            (read("models/tables/breast_cancer-train.csv"), read("models/tables/breast_cancer-test.csv")),
            "target",
        ),
    ];
    for (name, (train, test), label) in cases {
        let expected = &reference["efficiency"][name];
        let efficiency = machine_learning_efficiency(&train, &train, &test, label, 0).unwrap();
        let predictions = &efficiency.logistic_regression.predictions;
        let (mut same, mut near_ties) = (0, 0);
        for (i, (got, want)) in predictions.iter().zip(expected["predictions"].as_array().unwrap()).enumerate() {
            let mut probabilities = numbers(&expected["probabilities"][i]);
            probabilities.sort_by(|a, b| b.total_cmp(a));
            if got == want.as_str().unwrap() {
                same += 1;
            } else {
                assert!(
                    probabilities[0] - probabilities[1] < 0.01,
                    "{name} row {i}: {got} vs scikit-learn's {want} ({probabilities:?})"
                );
                near_ties += 1;
            }
        }
        assert_eq!(same + near_ties, test.rows.len());
        eprintln!(
            "{name}: {same} of {} predictions as scikit-learn's, {near_ties} parted at near ties",
            test.rows.len()
        );
        assert!(efficiency.random_forest.accuracy.is_some_and(|a| a > 0.5), "{name}: {:?}", efficiency.random_forest);
    }
}
