//! Byte compares eight at a time in a `u64` (SWAR: SIMD within a register),
//! in safe code: the CSV reader's field splitting and the profile's per-value
//! format checks scan short runs of bytes where a vector search's set-up
//! costs more than the scan.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// `c` in every byte of a word.
#[inline]
pub const fn splat(c: u8) -> u64 {
    LO * c as u64
}

/// The high bit of each byte of `w` that equals the byte splatted in `b`
/// ([`splat`]), and no other bit (exact: no borrow runs between bytes).
#[inline]
pub fn eq_mask(w: u64, b: u64) -> u64 {
    let x = w ^ b;
    !(((x & !HI) + !HI) | x) & HI
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_compare_finds_exactly_the_equal_bytes() {
        for target in 0u8..=255 {
            let t = splat(target);
            for b in 0u8..=255 {
                for pos in [0usize, 3, 7] {
                    let mut w = [target ^ 0x5a; 8];
                    w[pos] = b;
                    let m = eq_mask(u64::from_le_bytes(w), t);
                    let want: u64 = w
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| **c == target)
                        .map(|(i, _)| 0x80u64 << (8 * i))
                        .sum();
                    assert_eq!(m, want, "target {target} byte {b} at {pos}");
                }
            }
        }
    }
}
