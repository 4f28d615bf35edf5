//! Decodes manifest files and prints each as JSON, or the error that says what is wrong.
//!
//! ```text
//! cargo run -p manifest-codec --example inspect -- path/to/manifest.parquet ...
//! ```

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        match std::fs::read(&path).map(|bytes| manifest_codec::decode(&bytes)) {
            Ok(Ok(manifest)) => {
                println!("{path}: {}", serde_json::to_string(&manifest).unwrap());
            }
            Ok(Err(e)) => {
                failed = true;
                println!("{path}: error: {e}");
            }
            Err(e) => {
                failed = true;
                println!("{path}: cannot read: {e}");
            }
        }
    }
    std::process::exit(i32::from(failed));
}
