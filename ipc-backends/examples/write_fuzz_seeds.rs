//! Writes the fuzz targets' built-in seeds into `fuzz/corpus/` (after a
//! change of the wire format; `tests/fuzz_corpus.rs` fails until they are
//! current): `cargo run -p ipc-backends --example write_fuzz_seeds`.

use std::fs;
use std::path::Path;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, name, bytes) in ipc_backends::fuzzing::seeds() {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        fs::write(dir.join(&name), bytes).expect("seed file");
        println!("{}", dir.join(name).display());
    }
}
