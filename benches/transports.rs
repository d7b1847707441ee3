//! Transport benchmarks (written next).
fn main() {}
