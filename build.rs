//! Finds the system OpenBLAS before anything tries to link against it.
//!
//! `openblas-src` (feature `system`) only emits `-lopenblas`; when the library
//! is missing the user would see a long linker error at the very end of the
//! build.  This script looks for it first (pkg-config, then the usual library
//! directories) and stops the build with one clear message instead.

use std::path::Path;

const DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/lib64",
    "/opt/homebrew/opt/openblas/lib",
    "/usr/local/opt/openblas/lib",
    "/opt/OpenBLAS/lib",
];

fn has_lib(dir: &Path) -> bool {
    ["libopenblas.so", "libopenblas.a", "libopenblas.dylib"]
        .iter()
        .any(|f| dir.join(f).exists())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OPENBLAS_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "windows" {
        return; // openblas-src finds it through vcpkg there
    }

    // 1. An explicit directory.
    if let Ok(dir) = std::env::var("OPENBLAS_LIB_DIR") {
        if has_lib(Path::new(&dir)) {
            println!("cargo:rustc-link-search=native={dir}");
            return;
        }
    }
    // 2. pkg-config (adds the right -L itself; openblas-src adds -lopenblas).
    if let Ok(lib) = pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("openblas")
    {
        for p in &lib.link_paths {
            println!("cargo:rustc-link-search=native={}", p.display());
        }
        return;
    }
    // 3. The usual places.
    for d in DIRS {
        if has_lib(Path::new(d)) {
            println!("cargo:rustc-link-search=native={d}");
            return;
        }
    }

    eprintln!(
        "\n\nerror: mnist-mlp needs the system OpenBLAS library (libopenblas), and it was not found\n\
         (looked in: $OPENBLAS_LIB_DIR, pkg-config `openblas`, {}).\n\n\
         Install it, then build again:\n\
         \x20   Debian/Ubuntu:  sudo apt-get install libopenblas-dev pkg-config\n\
         \x20   Fedora/RHEL:    sudo dnf install openblas-devel pkgconf-pkg-config\n\
         \x20   Arch:           sudo pacman -S openblas\n\
         \x20   macOS:          brew install openblas   (then: export OPENBLAS_LIB_DIR=$(brew --prefix openblas)/lib)\n\
         or point OPENBLAS_LIB_DIR at the directory that holds libopenblas.\n",
        DIRS.join(", ")
    );
    std::process::exit(1);
}
