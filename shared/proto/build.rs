//! Compiles the contracts in `proto/` with protox (no system protoc) into
//! prost messages and tonic stubs, and writes the descriptor set that
//! reflection serves.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "jixiao/type/v1/types.proto",
    "jixiao/plans/v1/plans.proto",
    "jixiao/indicators/v1/indicators.proto",
    "jixiao/reviews/v1/reviews.proto",
    "jixiao/inspections/v1/inspections.proto",
    "jixiao/aggregator/v1/aggregator.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("jixiao_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
