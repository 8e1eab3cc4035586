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
}

impl Bipartite {
    /// From `(row, column)` pairs; repeated pairs count once (a 0/1 matrix).
    pub fn from_edges(edges: impl IntoIterator<Item = (u32, u32)>) -> Bipartite {
        let mut e: Vec<(u32, u32)> = edges.into_iter().collect();
        e.sort_unstable();
        e.dedup();
        let rows = e.iter().map(|&(r, _)| r as usize + 1).max().unwrap_or(0);
        let cols = e.iter().map(|&(_, c)| c as usize + 1).max().unwrap_or(0);
        let mut g = Bipartite { rows, cols, row_adj: vec![Vec::new(); rows], col_adj: vec![Vec::new(); cols] };
        for &(r, c) in &e {
            g.row_adj[r as usize].push(c);
        }
        // Sorted by (row, column), so each column's rows arrive in increasing order.
        for &(r, c) in &e {
            g.col_adj[c as usize].push(r);
        }
        g
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
        let edges = self.row_adj.iter().enumerate().flat_map(|(r, cs)| cs.iter().map(move |&c| (r as u32, c))).filter(|&(r, c)| !(in_rows[r as usize] && in_cols[c as usize]));
        let mut g = Bipartite::from_edges(edges);
        // Keep the shape: indices stay meaningful.
        g.rows = self.rows;
        g.cols = self.cols;
        g.row_adj.resize(self.rows, Vec::new());
        g.col_adj.resize(self.cols, Vec::new());
        g
    }
}
