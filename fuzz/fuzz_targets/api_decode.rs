//! Feeds arbitrary bytes to the control API's frame reader and decoders: they must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpg_api::codec::{decode, read_frame};
use vpg_api::{Hello, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Request>(data);
    let _ = decode::<Reply>(data);
    let _ = decode::<Hello>(data);
    let mut r = data;
    while let Ok(body) = read_frame(&mut r) {
        if let Ok(req) = decode::<Request>(&body) {
            if let Request::Config { item } = req {
                let _ = item.validate();
            }
        }
    }
});
