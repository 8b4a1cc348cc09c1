//! Bytes from a peer: the length-delimited framing with the real frame limit, then
//! every complete frame decoded as a message, which must be its canonical encoding.
#![no_main]

use bytes::BytesMut;
use health_workflow::Event;
use libfuzzer_sys::fuzz_target;
use p2p::limits::MAX_FRAME_BYTES;
use p2p::protocol::decode_message;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = p2p::session::codec(MAX_FRAME_BYTES);
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode_eof(&mut buffer) {
        if let Ok(message) = decode_message::<Event>(&frame, MAX_FRAME_BYTES) {
            assert_eq!(message.encode(), frame);
        }
    }
});
