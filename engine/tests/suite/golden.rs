//! Golden disassembly: every `tests/golden/*.asl.json` compiles to exactly the listing in
//! the `.disasm` file beside it, so a change in the compiler's output shows up in review.
//! `UPDATE_EXPECT=1 cargo test --release -p sfn-engine --test suite golden::` rewrites the listings after a deliberate change.

use std::path::Path;

use sfn::compile::Bindings;
use sfn::validate::MachineType;

#[test]
fn disassembly_matches_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut mismatched = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".asl.json")) else {
            continue;
        };
        count += 1;
        let text = std::fs::read(&path).unwrap();
        let prog = sfn::load(&text, MachineType::Standard, Bindings::default())
            .unwrap_or_else(|d| panic!("{name}: invalid definition: {d:?}"));
        let listing = prog.disassemble();
        let golden = dir.join(format!("{name}.disasm"));
        if update {
            std::fs::write(&golden, &listing).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(listing.as_str()) {
            println!("--- {name}: compiler output differs from {}:\n{listing}", golden.display());
            mismatched.push(name.to_owned());
        }
    }
    assert!(count >= 4, "expected the golden definitions in {}", dir.display());
    assert!(mismatched.is_empty(), "disassembly changed for {mismatched:?}; rerun with UPDATE_EXPECT=1 if deliberate");
}
