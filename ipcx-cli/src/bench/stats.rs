//! The statistics every benchmark mode reports a repeated figure with: the
//! median over the repetitions, their range, and whether that range is
//! too wide for the median to be trusted.
//!
//! A figure is measured in several interleaved repetitions (ipcx and its
//! baseline take turns, the one going first alternating), so a change in
//! the machine's load or clock lands on both sides of a ratio. The ratio
//! is taken within each repetition; [`Spread::of`] summarises those
//! ratios, and [`Spread::unstable`] flags a figure whose repetitions
//! disagree by more than [`UNSTABLE`] around their median.

use serde_json::{Value, json};

/// Repetitions per figure unless `--repeat` says otherwise.
pub const REPEAT: usize = 5;

/// How far (as a fraction of the median) the smallest or largest
/// repetition may lie from the median before the figure is marked
/// unstable: ±15 %.
pub const UNSTABLE: f64 = 0.15;

/// The mark the tables put beside an unstable figure.
pub const MARK: &str = "~";

/// The median and range of a figure over its repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`, or `None` when there are none. NaNs sort
    /// last (`f64::total_cmp`), so one shows as the maximum.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(Spread {
            median: median_sorted(&v),
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// The largest distance of the minimum or maximum from the median, as
    /// a fraction of the median (0.2 = ±20 %); infinite for a median of 0
    /// with a range, or when a value is not a number.
    pub fn deviation(&self) -> f64 {
        let d = (self.median - self.min).max(self.max - self.median);
        let r = if self.median == 0.0 && d == 0.0 {
            0.0
        } else {
            d / self.median.abs()
        };
        // A NaN among the values, or infinities (a zero baseline), give
        // NaN here: say infinitely far instead.
        if r.is_nan() || self.min.is_nan() || self.max.is_nan() {
            f64::INFINITY
        } else {
            r
        }
    }

    /// Whether the repetitions disagree by more than ±[`UNSTABLE`] around
    /// the median (a single repetition says nothing about it: never).
    pub fn unstable(&self) -> bool {
        // `deviation` is infinite, not NaN, for values that are no number.
        self.n > 1 && self.deviation() > UNSTABLE
    }

    /// [`MARK`] when [`unstable`](Spread::unstable), else a space.
    pub fn mark(&self) -> &'static str {
        if self.unstable() { MARK } else { " " }
    }

    /// A ratio as the tables show it: `0.63x [0.58-0.70]`, with the mark
    /// after it when unstable.
    pub fn show_ratio(&self) -> String {
        format!(
            "{:.2}x [{:.2}-{:.2}]{}",
            self.median,
            self.min,
            self.max,
            self.mark()
        )
    }

    /// `{"median", "min", "max", "unstable"}`.
    pub fn json(&self) -> Value {
        json!({
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "unstable": self.unstable(),
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    Spread::of(values).map(|s| s.median)
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The order in which `sides` implementations run in repetition `rep`:
/// rotated by one each repetition, so each goes first in turn (for two:
/// A B, B A, A B, …) and drift over the run falls on all of them alike.
pub fn order<T: Copy>(sides: &[T], rep: usize) -> Vec<T> {
    let mut v = sides.to_vec();
    if !v.is_empty() {
        let shift = rep % v.len();
        v.rotate_left(shift);
    }
    v
}

/// Runs `a` and `b` `repeat` times each, interleaved with the one going
/// first alternating (a b, b a, a b, …); each repetition's pair of
/// results, `a`'s first. Stops at the first error.
///
/// # Errors
/// The first error `a` or `b` returns.
pub fn interleave<T, E>(
    repeat: usize,
    mut a: impl FnMut() -> Result<T, E>,
    mut b: impl FnMut() -> Result<T, E>,
) -> Result<Vec<(T, T)>, E> {
    (0..repeat)
        .map(|n| {
            if n % 2 == 0 {
                let x = a()?;
                Ok((x, b()?))
            } else {
                let y = b()?;
                Ok((a()?, y))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([7.0]), Some(7.0));
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn spread_is_min_median_max() {
        let s = Spread::of([1.1, 0.9, 1.0, 1.05, 0.95]).unwrap();
        assert_eq!(s.median, 1.0);
        assert_eq!(s.min, 0.9);
        assert_eq!(s.max, 1.1);
        assert_eq!(s.n, 5);
        assert!((s.deviation() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn within_fifteen_percent_is_stable() {
        // ±10 %, and exactly +15 %: stable.
        assert!(!Spread::of([0.9, 1.0, 1.1]).unwrap().unstable());
        assert!(!Spread::of([1.0, 1.0, 1.15]).unwrap().unstable());
        assert_eq!(Spread::of([0.9, 1.0, 1.1]).unwrap().mark(), " ");
    }

    #[test]
    fn one_far_repetition_on_either_side_makes_it_unstable() {
        // The median stays at 1.0; one repetition 20 % above or below.
        let high = Spread::of([1.0, 0.98, 1.2, 1.02, 1.0]).unwrap();
        assert_eq!(high.median, 1.0);
        assert!(high.unstable());
        assert_eq!(high.mark(), MARK);
        let low = Spread::of([1.0, 0.8, 1.0, 1.01, 0.99]).unwrap();
        assert!(low.unstable());
        // Relative to the median, not to an absolute width.
        assert!(!Spread::of([100.0, 90.0, 110.0]).unwrap().unstable());
        assert!(Spread::of([0.1, 0.05, 0.1]).unwrap().unstable());
    }

    #[test]
    fn a_single_repetition_or_a_nan_is_judged_plainly() {
        assert!(!Spread::of([5.0]).unwrap().unstable());
        assert!(Spread::of([1.0, f64::NAN, 1.0]).unwrap().unstable());
        assert!(Spread::of([0.0, 0.0, 1.0]).unwrap().unstable());
        assert!(!Spread::of([0.0, 0.0]).unwrap().unstable());
        assert!(
            Spread::of([f64::INFINITY, 1.0, f64::INFINITY])
                .unwrap()
                .unstable()
        );
        assert!(
            Spread::of([f64::INFINITY, f64::INFINITY])
                .unwrap()
                .unstable()
        );
    }

    #[test]
    fn ratio_text_and_json_carry_the_range_and_the_mark() {
        let s = Spread::of([0.5, 0.6, 0.7]).unwrap();
        assert_eq!(s.show_ratio(), "0.60x [0.50-0.70]~");
        let s = Spread::of([1.0, 1.01, 0.99]).unwrap();
        assert_eq!(s.show_ratio(), "1.00x [0.99-1.01] ");
        let j = s.json();
        assert_eq!(j["median"], 1.0);
        assert_eq!(j["unstable"], false);
    }

    #[test]
    fn order_alternates_who_goes_first() {
        assert_eq!(order(&['a', 'b'], 0), ['a', 'b']);
        assert_eq!(order(&['a', 'b'], 1), ['b', 'a']);
        assert_eq!(order(&['a', 'b'], 2), ['a', 'b']);
        assert_eq!(order(&[1, 2, 3], 4), [2, 3, 1]);
        assert!(order::<u8>(&[], 3).is_empty());
    }

    #[test]
    fn interleave_pairs_each_repetition_and_alternates() {
        let log = std::cell::RefCell::new(String::new());
        let mut i = 0;
        let pairs = interleave(
            4,
            || {
                log.borrow_mut().push('a');
                i += 1;
                Ok::<_, String>(i)
            },
            || {
                log.borrow_mut().push('b');
                Ok(0)
            },
        )
        .unwrap();
        assert_eq!(log.into_inner(), "abbaabba");
        assert_eq!(pairs, [(1, 0), (2, 0), (3, 0), (4, 0)]);
        let mut calls = 0;
        let e = interleave(
            3,
            || {
                calls += 1;
                Err::<u8, _>("broken")
            },
            || Ok(0),
        );
        assert_eq!(e, Err("broken"));
        assert_eq!(calls, 1, "stops at the first error");
    }
}
