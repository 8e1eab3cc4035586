//! A bipartite graph of rows (e.g. buyers, raters, users) and columns (sellers, ratees, items) with
//! unit edges: deduplicated, adjacency sorted by index both ways.

/// Rows `0..rows`, columns `0..cols`; `row_adj[i]` lists the columns of row `i` in increasing order,
/// `col_adj[j]` the rows of column `j`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bipartite {
    pub rows: usize,
    pub cols: usize,
    pub row_adj: Vec<Vec<u32>>,
    pub col_adj: Vec<Vec<u32>>,
    /// Multiplicity of each edge, parallel to `row_adj` (empty = every edge counts 1).
    pub row_mult: Vec<Vec<f64>>,
    /// Multiplicity of each edge, parallel to `col_adj` (empty = every edge counts 1).
    pub col_mult: Vec<Vec<f64>>,
}

impl Bipartite {
    /// From `(row, column)` pairs; repeated pairs count once (a 0/1 matrix).
    pub fn from_edges(edges: impl IntoIterator<Item = (u32, u32)>) -> Bipartite {
        let mut e: Vec<(u32, u32)> = edges.into_iter().collect();
        e.sort_unstable();
        e.dedup();
        let rows = e.iter().map(|&(r, _)| r as usize + 1).max().unwrap_or(0);
        let cols = e.iter().map(|&(_, c)| c as usize + 1).max().unwrap_or(0);
        let mut g = Bipartite {
            rows,
            cols,
            row_adj: vec![Vec::new(); rows],
            col_adj: vec![Vec::new(); cols],
            row_mult: Vec::new(),
            col_mult: Vec::new(),
        };
        for &(r, c) in &e {
            g.row_adj[r as usize].push(c);
        }
        // Sorted by (row, column), so each column's rows arrive in increasing order.
        for &(r, c) in &e {
            g.col_adj[c as usize].push(r);
        }
        g
    }

    /// From `(row, column)` pairs where a repeated pair adds to the edge's multiplicity (one pair per
    /// order: a buyer's repeat orders from a seller weigh more).
    pub fn from_repeated_edges(edges: impl IntoIterator<Item = (u32, u32)>) -> Bipartite {
        let mut e: Vec<(u32, u32)> = edges.into_iter().collect();
        e.sort_unstable();
        let mut counted: Vec<(u32, u32, f64)> = Vec::new();
        for (r, c) in e {
            match counted.last_mut() {
                Some(last) if (last.0, last.1) == (r, c) => last.2 += 1.0,
                _ => counted.push((r, c, 1.0)),
            }
        }
        Bipartite::from_weighted(&counted)
    }

    /// From `(row, column, weight)` triples, a repeated pair adding its weights (a buyer's orders from a
    /// seller weighing their amounts). Weights that are not positive and finite are dropped.
    pub fn from_weighted_edges(edges: impl IntoIterator<Item = (u32, u32, f64)>) -> Bipartite {
        let mut e: Vec<(u32, u32, f64)> = edges
            .into_iter()
            .filter(|t| t.2 > 0.0 && t.2.is_finite())
            .collect();
        e.sort_unstable_by_key(|t| (t.0, t.1));
        let mut summed: Vec<(u32, u32, f64)> = Vec::new();
        for (r, c, w) in e {
            match summed.last_mut() {
                Some(last) if (last.0, last.1) == (r, c) => last.2 += w,
                _ => summed.push((r, c, w)),
            }
        }
        Bipartite::from_weighted(&summed)
    }

    /// From distinct `(row, column, multiplicity)` triples sorted by (row, column).
    fn from_weighted(triples: &[(u32, u32, f64)]) -> Bipartite {
        let mut g = Bipartite::from_edges(triples.iter().map(|&(r, c, _)| (r, c)));
        g.row_mult = g.row_adj.iter().map(|cs| vec![0.0; cs.len()]).collect();
        g.col_mult = g.col_adj.iter().map(|rs| vec![0.0; rs.len()]).collect();
        let (mut rpos, mut cpos) = (vec![0usize; g.rows], vec![0usize; g.cols]);
        for &(r, c, m) in triples {
            g.row_mult[r as usize][rpos[r as usize]] = m;
            rpos[r as usize] += 1;
            g.col_mult[c as usize][cpos[c as usize]] = m;
            cpos[c as usize] += 1;
        }
        g
    }

    /// The multiplicity of row `r`'s `k`-th edge.
    pub fn row_m(&self, r: usize, k: usize) -> f64 {
        self.row_mult.get(r).map_or(1.0, |m| m[k])
    }

    /// The multiplicity of column `c`'s `k`-th edge.
    pub fn col_m(&self, c: usize, k: usize) -> f64 {
        self.col_mult.get(c).map_or(1.0, |m| m[k])
    }

    pub fn edges(&self) -> usize {
        self.row_adj.iter().map(Vec::len).sum()
    }

    /// The graph without the edges inside `rows × cols` (deflation after a block is found).
    pub fn without_block(&self, rows: &[u32], cols: &[u32]) -> Bipartite {
        let mut in_rows = vec![false; self.rows];
        let mut in_cols = vec![false; self.cols];
        rows.iter().for_each(|&r| in_rows[r as usize] = true);
        cols.iter().for_each(|&c| in_cols[c as usize] = true);
        let kept: Vec<(u32, u32, f64)> = self
            .row_adj
            .iter()
            .enumerate()
            .flat_map(|(r, cs)| cs.iter().enumerate().map(move |(k, &c)| (r as u32, c, k)))
            .filter(|&(r, c, _)| !(in_rows[r as usize] && in_cols[c as usize]))
            .map(|(r, c, k)| (r, c, self.row_m(r as usize, k)))
            .collect();
        let mut g = if self.row_mult.is_empty() {
            Bipartite::from_edges(kept.iter().map(|&(r, c, _)| (r, c)))
        } else {
            Bipartite::from_weighted(&kept)
        };
        // Keep the shape: indices stay meaningful.
        g.rows = self.rows;
        g.cols = self.cols;
        g.row_adj.resize(self.rows, Vec::new());
        g.col_adj.resize(self.cols, Vec::new());
        if !g.row_mult.is_empty() {
            g.row_mult.resize(self.rows, Vec::new());
            g.col_mult.resize(self.cols, Vec::new());
        }
        g
    }
}
