//! Golden results with f32 products cut into tiles (`MLP_TILES=1`, set
//! before anything reads it), so that the tiled path is guarded on every
//! machine, whatever the default there: see `golden_common`.

mod golden_common;

#[test]
fn tiled_results_match_the_recorded_bits() {
    // SAFETY: set before any thread of this process reads the environment.
    unsafe { std::env::set_var("MLP_TILES", "1") };
    golden_common::check("-tiles");
}
