//! Golden results with the default plan: see `golden_common`.

mod golden_common;

#[test]
fn results_match_the_recorded_bits() {
    golden_common::check("");
}
