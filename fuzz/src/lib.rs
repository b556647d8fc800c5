//! Helpers shared by the fuzz targets: the chunked input layout.

/// Split a target's input laid out as `flags, n, len_1 .. len_n, bytes...` into the
/// flags byte, the bytes, and the bytes cut into `n % 8 + 1` chunks (each of the
/// first `n % 8` as long as its length byte says, clamped; the last one the rest).
/// None when the input is too short for its own header.
pub fn chunked_input(data: &[u8]) -> Option<(u8, &[u8], Vec<&[u8]>)> {
    let (&flags, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n % 8);
    if rest.len() < n {
        return None;
    }
    let (lens, whole) = rest.split_at(n);
    let mut input = whole;
    let mut chunks = Vec::with_capacity(n + 1);
    for &len in lens {
        let (a, b) = input.split_at(usize::from(len).min(input.len()));
        chunks.push(a);
        input = b;
    }
    chunks.push(input);
    Some((flags, whole, chunks))
}
