//! A `--state` file (`hopscope snapshot --json` of another node): any text is refused with an
//! error or read, never a panic; what is read traces without panicking.
#![no_main]
use hopscope::model::NodeState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = serde_json::from_slice::<NodeState>(data) else {
        return;
    };
    let _ = serde_json::to_vec(&state);
});
