//! How private and how faithful a synthetic table is, measured against the real one.
//!
//! Privacy (HARMONIC's `src/Eval-Metrics/DCR.py` measures from each
//! real row to the synthetic rows instead, after scaling each table by itself):
//! - every column, the label included: a numeric column standardised by the real rows' mean and
//!   population standard deviation (scikit-learn's `StandardScaler` fitted on them; a constant
//!   column is only centred), a categorical column one-hot over the real rows' categories (a
//!   synthetic category the real rows lack is all zeros);
//! - DCR of a synthetic row: the Euclidean distance to its closest real row; reported as its
//!   5th percentile (NumPy's linear interpolation) and median;
//! - copies: the share of synthetic rows equal to a real row in every column (numbers compared
//!   as numbers).
//!
//! Fidelity: per column, the two-sample Kolmogorov–Smirnov statistic `sup_x |F_real(x) −
//! F_syn(x)|` (scipy's `ks_2samp` statistic) for a numeric column and the total variation
//! distance `½ Σ_c |p_real(c) − p_syn(c)|` for a categorical one; and the mean and largest
//! absolute difference between the real and synthetic Pearson correlation matrices over the
//! numeric columns (pairs where either side is undefined are left out and counted).

use std::collections::BTreeMap;

use serde::Serialize;

use super::encode::Encoder;
use super::table::{number, Kind, Table};
use super::utility::{machine_learning_efficiency, Efficiency};
use super::{Result, TabularError};

/// The percentile `q` (0–100) of `values`, with NumPy's default linear interpolation.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q / 100.0 * (sorted.len() - 1) as f64;
    let (below, fraction) = (position.floor() as usize, position.fract());
    match sorted.get(below + 1) {
        Some(&above) => sorted[below] + fraction * (above - sorted[below]),
        None => sorted[below],
    }
}

/// The synthetic table's cells checked against the real table's columns: the same names in
/// the same order, and a number wherever the real column is numeric.
fn check_columns(real: &Table, synthetic: &Table) -> Result<()> {
    if real.columns != synthetic.columns {
        return Err(TabularError::BadInput(format!(
            "the synthetic columns {:?} are not the real ones {:?}",
            synthetic.columns, real.columns
        )));
    }
    for (c, name) in real.columns.iter().enumerate() {
        if real.kinds[c] == Kind::Numeric {
            if let Some(row) = synthetic.rows.iter().position(|r| number(&r[c]).is_none()) {
                return Err(TabularError::BadInput(format!(
                    "synthetic row {}: {name:?} is {:?}, not a number like the real column",
                    row + 1,
                    synthetic.rows[row][c]
                )));
            }
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Privacy {
    /// Each synthetic row's distance to its closest real row.
    pub dcr: Vec<f64>,
    pub dcr_p5: f64,
    pub dcr_median: f64,
    /// The share of synthetic rows that copy a real row exactly.
    pub copies: f64,
    pub copied_rows: usize,
}

/// The largest real × synthetic comparison made: far above a few thousand rows each.
pub const MAX_PAIRS: usize = 400_000_000;

pub fn privacy(real: &Table, synthetic: &Table) -> Result<Privacy> {
    check_columns(real, synthetic)?;
    let pairs = real.rows.len().saturating_mul(synthetic.rows.len());
    if pairs > MAX_PAIRS {
        return Err(TabularError::TooLarge(format!(
            "{} real × {} synthetic rows is {pairs} distances; at most {MAX_PAIRS} are computed",
            real.rows.len(),
            synthetic.rows.len()
        )));
    }
    let encoder = Encoder::fit(real, real, None);
    let real_points = encoder.transform(real);
    let dcr: Vec<f64> = encoder
        .transform(synthetic)
        .iter()
        .map(|s| {
            real_points
                .iter()
                .map(|r| r.iter().zip(s).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect();
    let same = |a: &[String], b: &[String]| {
        (0..a.len()).all(|c| match real.kinds[c] {
            Kind::Numeric => number(&a[c]) == number(&b[c]),
            Kind::Categorical => a[c] == b[c],
        })
    };
    let copied_rows = synthetic.rows.iter().filter(|s| real.rows.iter().any(|r| same(r, s))).count();
    Ok(Privacy {
        dcr_p5: percentile(&dcr, 5.0),
        dcr_median: percentile(&dcr, 50.0),
        copies: copied_rows as f64 / synthetic.rows.len() as f64,
        copied_rows,
        dcr,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct ColumnFidelity {
    pub kind: Kind,
    /// `ks` for a numeric column, `tv` for a categorical one.
    pub statistic: &'static str,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Fidelity {
    pub columns: BTreeMap<String, ColumnFidelity>,
    /// The mean KS statistic over the numeric columns (absent without one).
    pub mean_ks: Option<f64>,
    pub mean_tv: Option<f64>,
    /// The mean and largest |ρ_real − ρ_syn| over pairs of numeric columns.
    pub correlation_mean_abs_difference: Option<f64>,
    pub correlation_max_abs_difference: Option<f64>,
    /// Pairs left out because a column is constant on one side.
    pub correlation_undefined_pairs: usize,
}

/// The two-sample KS statistic.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut largest) = (0, 0, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        largest = largest.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    largest
}

fn total_variation(a: &[String], b: &[String]) -> f64 {
    let mut shares: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for v in a {
        shares.entry(v).or_default().0 += 1.0 / a.len() as f64;
    }
    for v in b {
        shares.entry(v).or_default().1 += 1.0 / b.len() as f64;
    }
    shares.values().map(|(p, q)| (p - q).abs()).sum::<f64>() / 2.0
}

pub fn fidelity(real: &Table, synthetic: &Table) -> Result<Fidelity> {
    check_columns(real, synthetic)?;
    let mut columns = BTreeMap::new();
    let column = |t: &Table, c: usize| t.rows.iter().map(|r| r[c].clone()).collect::<Vec<_>>();
    for (c, name) in real.columns.iter().enumerate() {
        let (statistic, value) = match real.kinds[c] {
            Kind::Numeric => ("ks", ks_statistic(&real.numbers(c), &synthetic.numbers(c))),
            Kind::Categorical => ("tv", total_variation(&column(real, c), &column(synthetic, c))),
        };
        columns.insert(name.clone(), ColumnFidelity { kind: real.kinds[c], statistic, value });
    }
    let mean_of = |statistic: &str| {
        let values: Vec<f64> = columns.values().filter(|f| f.statistic == statistic).map(|f| f.value).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let numeric: Vec<usize> = (0..real.columns.len()).filter(|&c| real.kinds[c] == Kind::Numeric).collect();
    let (mut differences, mut undefined) = (Vec::new(), 0);
    for (i, &a) in numeric.iter().enumerate() {
        for &b in &numeric[i + 1..] {
            match (
                crate::numeric::pearson(&real.numbers(a), &real.numbers(b)),
                crate::numeric::pearson(&synthetic.numbers(a), &synthetic.numbers(b)),
            ) {
                (Some(r), Some(s)) => differences.push((r - s).abs()),
                _ => undefined += 1,
            }
        }
    }
    Ok(Fidelity {
        mean_ks: mean_of("ks"),
        mean_tv: mean_of("tv"),
        correlation_mean_abs_difference: (!differences.is_empty())
            .then(|| differences.iter().sum::<f64>() / differences.len() as f64),
        correlation_max_abs_difference: differences.iter().copied().reduce(f64::max),
        correlation_undefined_pairs: undefined,
        columns,
    })
}

/// Classifiers trained on the synthetic rows and, for reference, on the real ones.
#[derive(Clone, Debug, Serialize)]
pub struct Utility {
    pub synthetic: Efficiency,
    pub real: Efficiency,
    pub test_rows: usize,
}

/// What `harmonic evaluate` reports: privacy, fidelity and, given held-out real rows, utility.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub real_rows: usize,
    pub synthetic_rows: usize,
    pub dcr_p5: f64,
    pub dcr_median: f64,
    pub copies: f64,
    pub copied_rows: usize,
    pub fidelity: Fidelity,
    pub mle: Option<Utility>,
}

pub fn report(real: &Table, synthetic: &Table, label: &str, test: Option<&Table>, seed: u64) -> Result<Report> {
    real.column(label)?;
    let privacy = privacy(real, synthetic)?;
    let mle = test
        .map(|test| -> Result<Utility> {
            Ok(Utility {
                synthetic: machine_learning_efficiency(real, synthetic, test, label, seed)?,
                real: machine_learning_efficiency(real, real, test, label, seed)?,
                test_rows: test.rows.len(),
            })
        })
        .transpose()?;
    Ok(Report {
        real_rows: real.rows.len(),
        synthetic_rows: synthetic.rows.len(),
        dcr_p5: privacy.dcr_p5,
        dcr_median: privacy.dcr_median,
        copies: privacy.copies,
        copied_rows: privacy.copied_rows,
        fidelity: fidelity(real, synthetic)?,
        mle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        // np.percentile([1, 2, 3, 4, 10], 5) = 1 + 0.2·(2 − 1); the median 3.
        assert!((percentile(&[10.0, 2.0, 1.0, 4.0, 3.0], 5.0) - 1.2).abs() < 1e-12);
        assert_eq!(percentile(&[10.0, 2.0, 1.0, 4.0, 3.0], 50.0), 3.0);
    }

    #[test]
    fn dcr_and_copies_worked_by_hand() {
        // x: 0, 2, 4 → mean 2, population sd √(8/3); c one-hot over (a, b).
        let real = Table::parse_csv("x,c\n0,a\n2,b\n4,a\n").unwrap();
        let synthetic = Table::parse_csv("x,c\n2,b\n4,b\n1,z\n").unwrap();
        let p = privacy(&real, &synthetic).unwrap();
        let sd = (8.0f64 / 3.0).sqrt();
        // Row 1 copies real row 2. Row 2: to (4, a) the one-hot differs in two places → √2; to
        // (2, b) → 2/sd. Row 3 (unseen category, zeros): to (0, a) → √(1/sd² + 1); to (2, b) the same.
        let expected = [0.0, (2.0f64).sqrt().min(2.0 / sd), (1.0 / (sd * sd) + 1.0).sqrt()];
        for (got, want) in p.dcr.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert_eq!(p.copied_rows, 1);
    }

    #[test]
    fn ks_tv_and_correlation_worked_by_hand() {
        // F_a − F_b is largest at x = 2: 2/3 − 0.
        assert!((ks_statistic(&[1.0, 2.0, 3.0], &[3.0, 4.0]) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(ks_statistic(&[1.0, 2.0], &[2.0, 1.0]), 0.0);
        let real = Table::parse_csv("x,y,c\n1,2,a\n2,4,a\n3,6,b\n").unwrap();
        let synthetic = Table::parse_csv("x,y,c\n1,6,b\n2,4,b\n3,2,b\n").unwrap();
        let f = fidelity(&real, &synthetic).unwrap();
        // c: real a 2/3, b 1/3; synthetic b 1 → ½(2/3 + 2/3).
        assert!((f.columns["c"].value - 2.0 / 3.0).abs() < 1e-12);
        // ρ_real = 1, ρ_syn = −1.
        assert_eq!(f.correlation_max_abs_difference, Some(2.0));
    }
}
