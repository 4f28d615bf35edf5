//! `decode` must return for any input, never panic out or abort.
//!
//! libfuzzer-sys installs a panic hook that aborts even on panics that `decode` contains
//! with `catch_unwind`; the first run found such a reader panic within seconds. The hook is
//! replaced by a quiet one so fuzzing goes on past contained panics, while a panic that
//! escapes `decode` still aborts (libfuzzer-sys aborts on any unwind out of the target).
//! With `FUZZ_SAVE_PANICS=<dir>` every input whose panic was contained is saved there, to
//! become a regression test under `tests/fuzz-regressions/`.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use manifest_codec::DecodeError;

static QUIET_HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET_HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match manifest_codec::decode(data) {
        Ok(manifest) => {
            // Whatever decodes must encode and decode to the same manifest.
            let again = manifest_codec::encode(&manifest).expect("a decoded manifest encodes");
            assert_eq!(manifest_codec::decode(&again).expect("re-decode"), manifest);
        }
        Err(DecodeError::Panicked(_)) => {
            if let Some(dir) = std::env::var_os("FUZZ_SAVE_PANICS") {
                let name = format!("panic-{:016x}", fxhash(data));
                let _ = std::fs::write(std::path::Path::new(&dir).join(name), data);
            }
        }
        Err(_) => {}
    }
});

fn fxhash(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
