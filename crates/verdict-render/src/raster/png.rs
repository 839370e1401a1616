//! PNG encoding of RGB renders, byte for byte what the `png` crate writes with the Paeth
//! filter on every row and its fast deflate (`fdeflate`), at a fraction of the cost.
//!
//! The saving comes from the images: most rows, and most of each row, repeat the row above
//! (background around the object). Wherever a pixel, its left neighbour and the two above
//! them agree, Paeth predicts the pixel above exactly and the filtered bytes are zero, so
//! such stretches are written as zeros after a comparison instead of being predicted byte
//! by byte; the deflate stage then sees long zero runs, its fastest path. The filtered rows
//! are fed to the compressor row by row exactly as the `png` crate feeds them, so the
//! compressed stream, and the file, are identical (a test checks this).

use std::io::Cursor;

/// Bytes per pixel (RGB, 8 bits a channel).
const BPP: usize = 3;
/// Paeth's filter type byte.
const PAETH: u8 = 4;
/// Pixels compared at once when looking for stretches that repeat the row above.
const BLOCK_PIXELS: usize = 32;

/// Encodes an 8-bit RGB image (rows top to bottom, no padding) as a PNG file.
pub(crate) fn encode_rgb(width: u32, height: u32, pixels: &[u8]) -> Result<Vec<u8>, String> {
    let row_bytes = width as usize * BPP;
    if width == 0 || height == 0 || pixels.len() != row_bytes * height as usize {
        return Err(format!(
            "cannot encode a {width}x{height} RGB image from {} bytes",
            pixels.len()
        ));
    }
    // Filter type byte plus the filtered row; the row above the first is all zeros.
    let mut filtered = vec![0u8; row_bytes + 1];
    filtered[0] = PAETH;
    let zeros = vec![0u8; row_bytes];

    let io = |e: std::io::Error| e.to_string();
    let mut compressor = fdeflate::Compressor::new(Cursor::new(Vec::new())).map_err(io)?;
    let mut above: &[u8] = &zeros;
    for row in pixels.chunks_exact(row_bytes) {
        paeth_row(above, row, &mut filtered[1..]);
        feed(&mut compressor, &filtered).map_err(io)?;
        above = row;
    }
    let mut zlib = compressor.finish().map_err(io)?.into_inner();
    let raw_size = (row_bytes + 1) * height as usize;
    if zlib.len() > fdeflate::StoredOnlyCompressor::<()>::compressed_size(raw_size) {
        // Incompressible (noise-like) images: stored blocks, as the `png` crate does.
        let mut stored =
            fdeflate::StoredOnlyCompressor::new(Cursor::new(Vec::new())).map_err(io)?;
        for row in pixels.chunks_exact(row_bytes) {
            stored.write_data(&[0]).map_err(io)?;
            stored.write_data(row).map_err(io)?;
        }
        zlib = stored.finish().map_err(io)?.into_inner();
    }

    let mut out = Vec::with_capacity(zlib.len() + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut header = [0u8; 13];
    header[..4].copy_from_slice(&width.to_be_bytes());
    header[4..8].copy_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header[8..].copy_from_slice(&[8, 2, 0, 0, 0]);
    write_chunk(&mut out, b"IHDR", &header);
    // Chunks hold at most 2^31 - 1 bytes.
    for part in zlib.chunks((u32::MAX >> 1) as usize) {
        write_chunk(&mut out, b"IDAT", part);
    }
    write_chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// One row into the compressor. Kept out of line: inlined into [`encode_rgb`], the
/// compressor's hot loop was compiled about a tenth slower.
#[inline(never)]
fn feed(
    compressor: &mut fdeflate::Compressor<Cursor<Vec<u8>>>,
    data: &[u8],
) -> std::io::Result<()> {
    compressor.write_data(data)
}

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Paeth-filters `row` against `above` into `out` (all three the same length).
fn paeth_row(above: &[u8], row: &[u8], out: &mut [u8]) {
    let len = row.len();
    if row == above {
        // Every pixel and its left neighbour repeat the row above: all predictions exact.
        out.fill(0);
        return;
    }
    let block = BLOCK_PIXELS * BPP;
    let mut start = 0;
    while start < len {
        let end = (start + block).min(len);
        // The block and the pixel to its left (the left neighbour of its first pixel).
        let from = start.saturating_sub(BPP);
        if row[from..end] == above[from..end] {
            out[start..end].fill(0);
        } else {
            paeth_bytes(above, row, out, start..end);
        }
        start = end;
    }
}

/// The Paeth filter of bytes `range` of a row (PNG specification, filter type 4).
#[inline]
fn paeth_bytes(above: &[u8], row: &[u8], out: &mut [u8], range: std::ops::Range<usize>) {
    let (start, end) = (range.start, range.end);
    // The first pixel has no left neighbour (left and upper left are zero): Paeth then
    // always predicts the byte above.
    for i in start..end.min(BPP) {
        out[i] = row[i].wrapping_sub(above[i]);
    }
    let start = start.max(BPP);
    if start >= end {
        return;
    }
    let current = &row[start..end];
    let left = &row[start - BPP..end - BPP];
    let upper = &above[start..end];
    let upper_left = &above[start - BPP..end - BPP];
    for ((((out, &x), &a), &b), &c) in out[start..end]
        .iter_mut()
        .zip(current)
        .zip(left)
        .zip(upper)
        .zip(upper_left)
    {
        *out = x.wrapping_sub(predict(a, b, c));
    }
}

/// Paeth's predictor: whichever of left `a`, above `b` and upper left `c` is closest to
/// `a + b - c`, preferring them in that order on ties. Written on bytes only, so that it
/// runs on SIMD lanes (the formulation of Versari's FPNGE, also used by the `png` crate):
/// `|p - a| = |b - c|`, `|p - b| = |a - c|`, and `|p - c| = ||b - c| - |a - c||` when `c`
/// lies between `a` and `b`, else it is larger than both and never chosen.
#[inline(always)]
fn predict(a: u8, b: u8, c: u8) -> u8 {
    let pa = b.max(c) - b.min(c);
    let pb = a.max(c) - a.min(c);
    let pc = if (a < c) == (c < b) {
        pa.max(pb) - pa.min(pb)
    } else {
        255
    };
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `png` crate through `image`, as images were encoded before this module.
    fn reference(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        use image::ImageEncoder;
        let mut out = Vec::new();
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Paeth)
            .write_image(pixels, width, height, image::ExtendedColorType::Rgb8)
            .expect("reference encoding");
        out
    }

    fn noise(state: &mut u64) -> u8 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 56) as u8
    }

    #[test]
    fn same_bytes_as_the_png_crate() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for (width, height) in [(1, 1), (2, 3), (17, 5), (64, 48), (100, 31)] {
            let count = (width * height * 3) as usize;
            // A flat background with a noisy blob, smooth ramps, pure noise (stored-block
            // fallback) and a flat image: every branch of the filter and the encoder.
            let mut blob = vec![255u8; count];
            for y in height / 4..height * 3 / 4 {
                for x in width / 3..width * 2 / 3 {
                    let i = ((y * width + x) * 3) as usize;
                    blob[i] = noise(&mut state);
                    blob[i + 1] = 120;
                    blob[i + 2] = (x * 7 + y) as u8;
                }
            }
            let ramp: Vec<u8> = (0..count).map(|i| (i / 3 % 251) as u8).collect();
            let random: Vec<u8> = (0..count).map(|_| noise(&mut state)).collect();
            let flat = vec![40u8; count];
            for pixels in [blob, ramp, random, flat] {
                let ours = encode_rgb(width, height, &pixels).expect("encodes");
                assert_eq!(
                    ours,
                    reference(width, height, &pixels),
                    "{width}x{height} image"
                );
                let decoded = image::load_from_memory(&ours).expect("decodes").to_rgb8();
                assert_eq!(decoded.as_raw(), &pixels);
            }
        }
    }

    #[test]
    fn predictor_matches_the_specification() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    let (ia, ib, ic) = (i16::from(a), i16::from(b), i16::from(c));
                    let p = ia + ib - ic;
                    let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
                    let expected = if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    };
                    assert_eq!(predict(a, b, c), expected, "a={a} b={b} c={c}");
                }
            }
        }
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        assert!(encode_rgb(4, 4, &[0; 47]).is_err());
        assert!(encode_rgb(0, 4, &[]).is_err());
    }
}
