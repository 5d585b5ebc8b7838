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

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[parent[x as usize] as usize];
        parent[x as usize] = p;
        x = p;
    }
    x
}

/// Clusters `rows` rows from `links` (a, b, probability).
pub fn cluster(rows: usize, links: &[(u32, u32, f64)], max_size: usize) -> Clusters {
    let mut parent: Vec<u32> = (0..rows as u32).collect();
    let mut size: Vec<u32> = vec![1; rows];
    let mut order: Vec<usize> = (0..links.len()).collect();
    // Strongest first; ties by row ids so the result does not depend on input order.
    order.sort_by(|&x, &y| {
        let (a, b) = (&links[x], &links[y]);
        b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1)))
    });
    let mut refused = 0;
    for i in order {
        let (a, b, _) = links[i];
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra == rb {
            continue;
        }
        if (size[ra as usize] + size[rb as usize]) as usize > max_size {
            refused += 1;
            continue;
        }
        let (big, small) = if size[ra as usize] >= size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        parent[small as usize] = big;
        size[big as usize] += size[small as usize];
    }
    // Cluster id = smallest member row.
    let mut min_of = vec![u32::MAX; rows];
    for r in 0..rows as u32 {
        let root = find(&mut parent, r);
        min_of[root as usize] = min_of[root as usize].min(r);
    }
    let mut cluster_of = vec![0u32; rows];
    let (mut clusters, mut in_clusters, mut largest) = (0, 0, 0);
    for r in 0..rows as u32 {
        let root = find(&mut parent, r);
        cluster_of[r as usize] = min_of[root as usize];
        if root == r && size[r as usize] > 1 {
            clusters += 1;
            in_clusters += size[r as usize] as u64;
            largest = largest.max(size[r as usize] as u64);
        }
    }
    Clusters {
        cluster_of,
        clusters,
        rows_in_clusters: in_clusters,
        largest,
        refused_links: refused,
    }
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
