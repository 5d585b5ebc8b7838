//! Clusters: matched pairs → entities.
//!
//! Connected components, built strongest link first. A link that would join
//! two clusters into one larger than `max_size` is refused and counted: long
//! chains of weak links (a~b~c~…) are how transitive closure turns a few
//! false matches into one giant "entity", and refusing them keeps the
//! strongest structure.

use serde::Serialize;

/// The result of clustering.
#[derive(Debug, Clone, Serialize)]
pub struct Clusters {
    /// Per row: its cluster id (the smallest row index in the cluster).
    #[serde(skip)]
    pub cluster_of: Vec<u32>,
    /// Clusters with more than one row.
    pub clusters: u64,
    /// Rows in those clusters.
    pub rows_in_clusters: u64,
    /// The largest cluster.
    pub largest: u64,
    /// Links refused because they would have grown a cluster past the limit.
    pub refused_links: u64,
}

/// Union-find over rows with the cluster-size guard; the one clustering
/// both a full run and incremental matching use.
#[derive(Debug, Clone, Default)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
    /// Per root: the smallest row in its cluster.
    min: Vec<u32>,
    /// Links refused by the guard so far.
    pub refused: u64,
}

impl UnionFind {
    /// `rows` singletons.
    pub fn new(rows: usize) -> UnionFind {
        UnionFind {
            parent: (0..rows as u32).collect(),
            size: vec![1; rows],
            min: (0..rows as u32).collect(),
            refused: 0,
        }
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.parent.len()
    }

    /// Room for `more` rows without reallocating.
    pub fn reserve(&mut self, more: usize) {
        self.parent.reserve(more);
        self.size.reserve(more);
        self.min.reserve(more);
    }

    /// Adds singletons up to `rows` rows.
    pub fn grow(&mut self, rows: usize) {
        for r in self.parent.len()..rows {
            self.parent.push(r as u32);
            self.size.push(1);
            self.min.push(r as u32);
        }
    }

    /// The root of `x`'s cluster.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = p;
            x = p;
        }
        x
    }

    /// Joins the clusters of `a` and `b` unless the result would exceed
    /// `max_size` rows (refused and counted). Returns whether they are joined.
    pub fn union(&mut self, a: u32, b: u32, max_size: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        if (self.size[ra as usize] + self.size[rb as usize]) as usize > max_size {
            self.refused += 1;
            return false;
        }
        let (big, small) = if self.size[ra as usize] >= self.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        self.min[big as usize] = self.min[big as usize].min(self.min[small as usize]);
        true
    }

    /// The cluster id of `x`: the smallest row in its cluster.
    pub fn cluster_of(&mut self, x: u32) -> u32 {
        let root = self.find(x);
        self.min[root as usize]
    }

    /// Links (a, b, probability), strongest first; ties by row ids so the
    /// result does not depend on input order.
    pub fn link_all(&mut self, links: &[(u32, u32, f64)], max_size: usize) {
        let mut order: Vec<usize> = (0..links.len()).collect();
        order.sort_by(|&x, &y| {
            let (a, b) = (&links[x], &links[y]);
            b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1)))
        });
        for i in order {
            let (a, b, _) = links[i];
            self.union(a, b, max_size);
        }
    }

    /// The clusters: each row's id is the smallest row index in its cluster.
    pub fn clusters(&mut self) -> Clusters {
        let rows = self.rows();
        let mut cluster_of = vec![0u32; rows];
        let (mut clusters, mut in_clusters, mut largest) = (0, 0, 0);
        for r in 0..rows as u32 {
            let root = self.find(r);
            cluster_of[r as usize] = self.min[root as usize];
            if root == r && self.size[r as usize] > 1 {
                clusters += 1;
                in_clusters += self.size[r as usize] as u64;
                largest = largest.max(self.size[r as usize] as u64);
            }
        }
        Clusters {
            cluster_of,
            clusters,
            rows_in_clusters: in_clusters,
            largest,
            refused_links: self.refused,
        }
    }
}

/// Clusters `rows` rows from `links` (a, b, probability).
pub fn cluster(rows: usize, links: &[(u32, u32, f64)], max_size: usize) -> Clusters {
    let mut uf = UnionFind::new(rows);
    uf.link_all(links, max_size);
    uf.clusters()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_the_chain_guard() {
        // 0-1-2 strongly linked, 3-4 linked, 5 alone; 2-3 a weak link.
        let links = [(0, 1, 0.99), (1, 2, 0.98), (3, 4, 0.97), (2, 3, 0.6)];
        let c = cluster(6, &links, 10);
        assert_eq!(c.cluster_of, vec![0, 0, 0, 0, 0, 5]);
        let c = cluster(6, &links, 3);
        assert_eq!(c.cluster_of, vec![0, 0, 0, 3, 3, 5]);
        assert_eq!(c.refused_links, 1);
        assert_eq!(c.clusters, 2);
        assert_eq!(c.rows_in_clusters, 5);
        assert_eq!(c.largest, 3);
        // Input order does not matter.
        let mut rev = links.to_vec();
        rev.reverse();
        assert_eq!(cluster(6, &rev, 3).cluster_of, c.cluster_of);
    }
}
