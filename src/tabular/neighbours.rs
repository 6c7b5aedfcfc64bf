//! HARMONIC's neighbour groups (The-FinAI/HARMONIC, `scripts/preprocess_data.py`, `knn_fit`):
//! categorical feature columns label-encoded (`LabelEncoder`: the index of the value among the
//! column's sorted distinct values), numeric feature columns min–max scaled to [0, 1]
//! (`MinMaxScaler`; a constant column becomes 0), the label column as it is (its codes when it is
//! not numeric), and Euclidean distance over the whole row, label included, as HARMONIC's
//! `NearestNeighbors(n_neighbors=6)` is fitted on it. A row's group is its 5 nearest other rows,
//! nearest first. Equal distances are ordered by row number; HARMONIC takes `indices[i, 1:]`,
//! which is the same except where a row has an exact duplicate.

use super::table::{Kind, Table};

/// HARMONIC's `knn_n`: the neighbours in a group.
pub const GROUP_NEIGHBOURS: usize = 5;

/// Each row as HARMONIC's kNN sees it.
pub fn encoded_rows(table: &Table, label: usize) -> Vec<Vec<f64>> {
    let columns: Vec<Vec<f64>> = (0..table.columns.len())
        .map(|c| match (table.kinds[c], c == label) {
            (Kind::Numeric, true) => table.numbers(c),
            (Kind::Numeric, false) => {
                let values = table.numbers(c);
                let (min, max) =
                    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                let range = if max > min { max - min } else { 1.0 };
                values.iter().map(|v| (v - min) / range).collect()
            }
            (Kind::Categorical, _) => {
                let categories = table.categories(c);
                table.rows.iter().map(|r| categories.binary_search(&r[c]).unwrap_or(0) as f64).collect()
            }
        })
        .collect();
    (0..table.rows.len()).map(|r| columns.iter().map(|column| column[r]).collect()).collect()
}

/// The `k` rows nearest to row `of` (itself excluded), nearest first, with their distances.
pub fn nearest(points: &[Vec<f64>], of: usize, k: usize) -> Vec<(usize, f64)> {
    let mut distances: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != of)
        .map(|(i, p)| (i, p.iter().zip(&points[of]).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()))
        .collect();
    let k = k.min(distances.len());
    if k == 0 {
        return Vec::new();
    }
    let by_distance = |a: &(usize, f64), b: &(usize, f64)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    distances.select_nth_unstable_by(k - 1, by_distance);
    distances.truncate(k);
    distances.sort_by(by_distance);
    distances
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_scaled_categories_coded_and_the_label_kept() {
        let table = Table::parse_csv("x,colour,y\n0,red,1\n5,blue,0\n10,green,1\n").unwrap();
        let rows = encoded_rows(&table, 2);
        // blue 0, green 1, red 2; x in [0, 10] → [0, 1]; the label y unscaled.
        assert_eq!(rows, [vec![0.0, 2.0, 1.0], vec![0.5, 0.0, 0.0], vec![1.0, 1.0, 1.0]]);
        // Row 0 to row 2: √(1 + 1) ; to row 1: √(0.25 + 4 + 1).
        let found = nearest(&rows, 0, 2);
        assert_eq!(found.iter().map(|n| n.0).collect::<Vec<_>>(), [2, 1]);
        assert!((found[0].1 - 2f64.sqrt()).abs() < 1e-15 && (found[1].1 - 5.25f64.sqrt()).abs() < 1e-15);
    }
}
