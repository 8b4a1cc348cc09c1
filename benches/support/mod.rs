//! What the benchmarks share: timing one run, and the median of several.

#![allow(dead_code)]

/// Seconds `f` takes.
pub(crate) fn timed(f: impl FnOnce()) -> f64 {
    let start = std::time::Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// The median of `values` (the upper one of an even count).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
