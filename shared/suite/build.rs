//! Builds the dashboard's files into the crate: `web/dist` (committed; how it
//! is built and checked: web/README.md) becomes `$OUT_DIR/dashboard.rs`, a
//! table of `jixiao_runtime::site::File`s with `include_bytes!`, so the
//! binary serves them without Node, a web server or files beside it.

use std::{
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    } else {
        println!(
            "cargo:warning=no {}: the dashboard is not built in",
            dist.display()
        );
    }
    files.sort();
    let mut out = String::from("&[\n");
    for (url, path) in &files {
        writeln!(
            out,
            "    ::jixiao_runtime::site::File {{ path: {url:?}, body: include_bytes!({path:?}) }},"
        )
        .expect("a String takes writes");
    }
    out.push(']');
    let target = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("dashboard.rs");
    fs::write(&target, out).expect("OUT_DIR is writable");
}

/// Every file under `dir`, as (URL path, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).expect("web/dist is readable") {
        let path = entry.expect("web/dist is readable").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under the root");
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            let abs = path.canonicalize().expect("the file exists");
            files.push((url, abs.to_string_lossy().into_owned()));
        }
    }
}
