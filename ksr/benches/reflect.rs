//! Placeholder, replaced by the reflection benchmarks.
fn main() {}
