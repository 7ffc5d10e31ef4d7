//! Replays the committed fuzz corpus (`xsstate/fuzz/corpus/<target>/*`) on stable, no libFuzzer.

#[path = "../fuzz/fuzz_targets/common/mod.rs"]
mod common;
#[path = "../fuzz/fuzz_targets/common/pvh_image.rs"]
mod pvh_image;

use std::path::{Path, PathBuf};

/// Every file of one target's corpus, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    files
}

/// Runs `f` on every corpus file of `target`, naming the file that panics.
fn replay(target: &str, f: fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "empty corpus for {target}");
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!("{target}: {} fails", file.display());
        }
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn wire_decoder_corpus() {
    replay("wire_decoder", common::wire_decoder);
}

#[test]
fn engine_requests_corpus() {
    replay("engine_requests", common::engine_requests);
}

#[test]
fn image_decoder_corpus() {
    replay("image_decoder", common::image_decoder);
}

#[test]
fn pvh_image_corpus() {
    replay("pvh_image", pvh_image::pvh_image);
    // The seeds are valid images, so the fuzzer starts from inputs that reach `flatten`.
    for file in corpus("pvh_image") {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(e) = xsstate::pvh::parse(&data) {
            panic!("{}: seed refused: {e}", file.display());
        }
    }
}

#[test]
fn every_corpus_dir_is_replayed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for entry in std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            [
                "wire_decoder",
                "engine_requests",
                "image_decoder",
                "pvh_image"
            ]
            .contains(&name.as_str()),
            "corpus directory {name} has no replay test"
        );
    }
}
