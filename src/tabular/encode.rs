//! Tables as numbers for distances and classifiers: each numeric column standardised by a
//! table's mean and population standard deviation (scikit-learn's `StandardScaler`; a constant
//! column is only centred), each categorical column one-hot over the real table's categories (a
//! value the real rows lack is all zeros).

use super::table::{number, Kind, Table};

enum Encoding {
    Standard { column: usize, mean: f64, scale: f64 },
    OneHot { column: usize, categories: Vec<String> },
}

pub struct Encoder(Vec<Encoding>);

impl Encoder {
    /// The columns of `real` but `skip`, standardised by `fitted_on`'s values.
    pub fn fit(real: &Table, fitted_on: &Table, skip: Option<usize>) -> Encoder {
        let encodings = (0..real.columns.len())
            .filter(|&c| Some(c) != skip)
            .map(|c| match real.kinds[c] {
                Kind::Numeric => {
                    let values = fitted_on.numbers(c);
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
                    Encoding::Standard { column: c, mean, scale: if variance > 0.0 { variance.sqrt() } else { 1.0 } }
                }
                Kind::Categorical => Encoding::OneHot { column: c, categories: real.categories(c) },
            })
            .collect();
        Encoder(encodings)
    }

    pub fn transform(&self, table: &Table) -> Vec<Vec<f64>> {
        table
            .rows
            .iter()
            .map(|row| {
                let mut out = Vec::new();
                for encoding in &self.0 {
                    match encoding {
                        Encoding::Standard { column, mean, scale } => {
                            out.push((number(&row[*column]).unwrap_or(f64::NAN) - mean) / scale)
                        }
                        Encoding::OneHot { column, categories } => {
                            out.extend(categories.iter().map(|k| f64::from(u8::from(*k == row[*column]))))
                        }
                    }
                }
                out
            })
            .collect()
    }
}
