//! The shipped recipes (`configs/*.toml`) are valid configurations: every
//! key known, every setting accepted, and the network they name builds.

use mnist_mlp::config::RunConfig;

#[test]
fn every_shipped_recipe_parses_and_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let cfg = RunConfig::default()
            .overlay_toml_file(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let s = cfg
            .settings()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let spec = s.network(784, 10).unwrap();
        assert_eq!(spec.input(), 784, "{}", p.display());
        n += 1;
    }
    assert!(n >= 2, "no recipes found in {}", dir.display());
}
