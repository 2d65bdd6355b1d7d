//! Counter-based random numbers: the value at a row is a pure function of (seed, column, index).
//!
//! A stateful RNG would make row `r`'s value depend on how many values were drawn before it,
//! so the data would change with the number of partitions or the batch size. Hashing a counter
//! instead (SplitMix64's output function over `key + (index + 1) * GAMMA`) gives every row the
//! same value however the table is split, lets partitions start anywhere without skipping
//! ahead, and costs a few multiplications per value.

/// SplitMix64's increment, the 64-bit golden ratio.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (a bijective avalanche mixer).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the column name. Used instead of `std::hash` because std's hashers are not
/// guaranteed to be stable across Rust releases, and generated data must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The random stream of one column: independent of every other column of the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnRandom {
    key: u64,
}

impl ColumnRandom {
    /// The stream of `column` in a table generated with `seed`.
    pub(crate) fn new(seed: u64, column: &str) -> Self {
        Self {
            key: mix64(seed ^ fnv1a(column.as_bytes())),
        }
    }

    /// 64 random bits for position `index` of this column.
    pub(crate) fn bits(&self, index: u64) -> u64 {
        mix64(
            self.key
                .wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)),
        )
    }

    /// A float uniform in `[0, 1)`, from the top 53 bits (a double's mantissa).
    pub(crate) fn unit(&self, index: u64) -> f64 {
        (self.bits(index) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A float in `[min, max]`; the caller guarantees `max - min` is finite.
    pub(crate) fn float_in(&self, index: u64, min: f64, max: f64) -> f64 {
        // `min + u * (max - min)` can round past `max` by one ulp; clamp so the documented
        // bounds hold exactly.
        (min + self.unit(index) * (max - min)).min(max)
    }

    /// An integer uniform in `[min, max]` (inclusive), `min <= max`.
    ///
    /// Multiply-shift (Lemire) maps 64 random bits onto the span without a division and
    /// without rejection loops, so the cost per value is constant; the bias is below 2^-64 per
    /// value for any span a table can have.
    pub(crate) fn int_in(&self, index: u64, min: i64, max: i64) -> i64 {
        let span = (i128::from(max) - i128::from(min) + 1) as u128;
        let offset = (u128::from(self.bits(index)) * span) >> 64;
        (i128::from(min) + offset as i128) as i64
    }

    /// An index uniform in `[0, n)` for a small `n` (for picking characters).
    pub(crate) fn below(&self, index: u64, n: u32) -> u32 {
        ((u64::from((self.bits(index) >> 32) as u32) * u64::from(n)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_output() {
        // First output of the reference SplitMix64 (Vigna) seeded with 0.
        let stream = ColumnRandom { key: 0 };
        assert_eq!(stream.bits(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn columns_and_seeds_give_different_streams() {
        let a = ColumnRandom::new(1, "x");
        assert_ne!(a.bits(0), ColumnRandom::new(1, "y").bits(0));
        assert_ne!(a.bits(0), ColumnRandom::new(2, "x").bits(0));
        assert_eq!(a.bits(5), ColumnRandom::new(1, "x").bits(5));
    }

    #[test]
    fn integers_cover_inclusive_range() {
        let stream = ColumnRandom::new(7, "dice");
        let mut seen = [false; 6];
        for i in 0..1000 {
            let v = stream.int_in(i, 1, 6);
            assert!((1..=6).contains(&v), "{v} out of range");
            seen[(v - 1) as usize] = true;
        }
        assert!(
            seen.iter().all(|s| *s),
            "not every face was rolled: {seen:?}"
        );
        // The full i64 range must not overflow.
        let _ = stream.int_in(3, i64::MIN, i64::MAX);
    }

    #[test]
    fn unit_is_in_half_open_interval() {
        let stream = ColumnRandom::new(0, "u");
        for i in 0..1000 {
            let u = stream.unit(i);
            assert!((0.0..1.0).contains(&u));
        }
    }
}
