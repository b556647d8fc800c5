//! `parse_proxy_header` on arbitrary connection prefixes.
//!
//! Properties: no panic;
//! - `Ok(Some((h, n)))`: `0 < n <= len`, the header alone (`input[..n]`) parses to
//!   the same result, and every proper prefix of it asks for more (`Ok(None)`);
//! - `Ok(None)`: every prefix also asks for more (a valid prefix has valid prefixes);
//! - `Err(e)`: every prefix asks for more or fails with the same kind of error.
#![no_main]

use std::mem::discriminant;

use libfuzzer_sys::fuzz_target;
use mxring::proto::proxy::parse_proxy_header;

fuzz_target!(|data: &[u8]| {
    let result = parse_proxy_header(data);
    match &result {
        Ok(Some((header, n))) => {
            let n = *n;
            assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
            assert_eq!(
                parse_proxy_header(&data[..n]),
                Ok(Some((*header, n))),
                "the header alone parses differently"
            );
            for cut in 0..n {
                assert_eq!(
                    parse_proxy_header(&data[..cut]),
                    Ok(None),
                    "proper prefix of {cut} bytes of a complete header"
                );
            }
        }
        Ok(None) => {
            for cut in 0..data.len() {
                assert_eq!(
                    parse_proxy_header(&data[..cut]),
                    Ok(None),
                    "prefix of {cut} bytes of a partial header"
                );
            }
        }
        Err(e) => {
            for cut in 0..data.len() {
                match parse_proxy_header(&data[..cut]) {
                    Ok(None) => {}
                    Err(p) if discriminant(&p) == discriminant(e) => {}
                    other => {
                        panic!("prefix of {cut} bytes gives {other:?}, the whole input {result:?}")
                    }
                }
            }
        }
    }
});
