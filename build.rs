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

/// The commit the build is from, for `mnist-mlp --version`
/// (`MNIST_MLP_COMMIT`; "unknown commit" outside a git checkout), rebuilt
/// when HEAD moves.
fn git_commit() {
    let git = |args: &[&str]| -> Option<String> {
        let o = std::process::Command::new("git").args(args).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    println!(
        "cargo:rustc-env=MNIST_MLP_COMMIT={}",
        commit.as_deref().unwrap_or("unknown commit")
    );
    if commit.is_some() {
        let mut watch = vec!["HEAD".to_string()];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(r);
        }
        for w in watch {
            if let Some(p) = git(&["rev-parse", "--git-path", &w]) {
                if Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    git_commit();
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
