//! Feeds arbitrary bytes to the control API's frame reader, decoders, request validation and
//! value parsers: none of them may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpg_api::codec::{decode, read_frame};
use vpg_api::{ConfigItem, Hello, HelloReply, Mac, Prefix, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Hello>(data);
    let _ = decode::<HelloReply>(data);
    let _ = decode::<Reply>(data);
    if let Ok(req) = decode::<Request>(data) {
        let _ = req.validate();
    }
    if let Ok(item) = decode::<ConfigItem>(data) {
        let _ = item.validate();
        let _ = item.object();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<Prefix>();
        let _ = s.parse::<Mac>();
    }
    let mut r = data;
    while let Ok(body) = read_frame(&mut r) {
        if let Ok(req) = decode::<Request>(&body) {
            let _ = req.validate();
        }
    }
});
