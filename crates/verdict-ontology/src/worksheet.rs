//! Synthetic K-4 math worksheets for the `examples/ontology` task: counting objects, sums,
//! differences, comparing groups and naming shapes, drawn from scratch (a 5x7 bitmap font and
//! filled shapes) so the example needs no fonts or assets. Each sheet comes with a `meta.json`
//! whose labels use the concept names of `examples/ontology/math.ttl`.

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{OntologyError, Result};

/// Side of a sheet in pixels.
pub const SHEET_SIZE: u32 = 384;

const INK: Rgb<u8> = Rgb([20, 20, 20]);
const PAPER: Rgb<u8> = Rgb([255, 255, 255]);
const COLOURS: [Rgb<u8>; 5] = [
    Rgb([220, 50, 47]),
    Rgb([38, 139, 210]),
    Rgb([133, 153, 0]),
    Rgb([181, 137, 0]),
    Rgb([108, 113, 196]),
];

/// 5x7 glyphs, one row per byte, the low 5 bits from left to right.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '?' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        ' ' => [0; 7],
        _ => return None,
    })
}

fn fill_rect(image: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, colour: Rgb<u8>) {
    for yy in y.max(0)..(y + h).min(image.height() as i64) {
        for xx in x.max(0)..(x + w).min(image.width() as i64) {
            image.put_pixel(xx as u32, yy as u32, colour);
        }
    }
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale` pixels wide.
fn draw_text(image: &mut RgbImage, text: &str, x: i64, y: i64, scale: i64) {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let left = x + i as i64 * 6 * scale;
        for (row, bits) in rows.iter().enumerate() {
            for column in 0..5 {
                if bits & (0x10 >> column) != 0 {
                    fill_rect(
                        image,
                        left + column * scale,
                        y + row as i64 * scale,
                        scale,
                        scale,
                        INK,
                    );
                }
            }
        }
    }
}

/// Width in pixels of `text` at `scale`.
fn text_width(text: &str, scale: i64) -> i64 {
    (text.chars().count() as i64 * 6 - 1) * scale
}

fn draw_centred(image: &mut RgbImage, text: &str, y: i64, scale: i64) {
    let x = (SHEET_SIZE as i64 - text_width(text, scale)) / 2;
    draw_text(image, text, x, y, scale);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];
}

/// Fills `shape` centred at `(cx, cy)` with half-size `r`.
fn draw_shape(image: &mut RgbImage, shape: Shape, cx: i64, cy: i64, r: i64, colour: Rgb<u8>) {
    for y in (cy - r).max(0)..(cy + r + 1).min(image.height() as i64) {
        for x in (cx - r).max(0)..(cx + r + 1).min(image.width() as i64) {
            let (dx, dy) = (x - cx, y - cy);
            let inside = match shape {
                Shape::Circle => dx * dx + dy * dy <= r * r,
                Shape::Square => dx.abs() * 10 <= r * 8 && dy.abs() * 10 <= r * 8,
                // Apex at the top: the half-width grows linearly from 0 to r downwards.
                Shape::Triangle => dy >= -r && dy <= r && 2 * dx.abs() <= dy + r,
            };
            if inside {
                image.put_pixel(x as u32, y as u32, colour);
            }
        }
    }
}

/// Draws `count` objects in a grid inside the box `(x, y, w, h)`.
fn draw_objects(
    image: &mut RgbImage,
    rng: &mut ChaCha8Rng,
    count: usize,
    area: (i64, i64, i64, i64),
    shape: Shape,
    colour: Rgb<u8>,
) {
    let (x, y, w, h) = area;
    let columns = (count as f64).sqrt().ceil().max(1.0) as i64;
    let rows = (count as i64 + columns - 1) / columns;
    let cell = (w / columns).min(h / rows.max(1));
    let r = (cell * 3 / 10).max(3);
    for i in 0..count as i64 {
        let (column, row) = (i % columns, i / columns);
        let jitter = (cell / 10).max(1);
        let cx = x + column * cell + cell / 2 + rng.random_range(-jitter..=jitter);
        let cy = y + row * cell + cell / 2 + rng.random_range(-jitter..=jitter);
        draw_shape(image, shape, cx, cy, r, colour);
    }
}

/// A generated sheet with its labels per dimension.
#[derive(Debug, Clone)]
pub struct Worksheet {
    pub kind: &'static str,
    pub image: RgbImage,
    pub labels: Vec<(&'static str, Vec<&'static str>)>,
    /// The sheet's answer, for people reading `meta.json`.
    pub answer: String,
}

fn range(n: u32) -> &'static str {
    if n < 10 {
        "NumbersSmaller10"
    } else if n < 20 {
        "NumbersSmaller20"
    } else {
        "NumbersSmaller100"
    }
}

fn sheet(
    kind: &'static str,
    image: RgbImage,
    area: &'static str,
    scope: &'static str,
    ability: &'static str,
    answer: String,
) -> Worksheet {
    Worksheet {
        kind,
        image,
        labels: vec![
            ("Area", vec![area]),
            ("Scope", vec![scope]),
            ("Ability", vec![ability]),
        ],
        answer,
    }
}

/// Sheet number `index` of a set seeded with `seed`; the kinds take turns.
pub fn worksheet(seed: u64, index: usize) -> Worksheet {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
    let mut image = RgbImage::from_pixel(SHEET_SIZE, SHEET_SIZE, PAPER);
    let size = SHEET_SIZE as i64;
    // A border and a name line make every kind look like a printed sheet.
    fill_rect(&mut image, 8, 8, size - 16, 3, INK);
    fill_rect(&mut image, 8, size - 11, size - 16, 3, INK);
    let colour = COLOURS[rng.random_range(0..COLOURS.len())];
    let shape = Shape::ALL[rng.random_range(0..Shape::ALL.len())];
    match index % 5 {
        0 => {
            let count: u32 = rng.random_range(1..=19);
            draw_objects(
                &mut image,
                &mut rng,
                count as usize,
                (40, 30, size - 80, 250),
                shape,
                colour,
            );
            draw_centred(&mut image, "= ?", 300, 7);
            sheet(
                "counting",
                image,
                "Counting",
                range(count),
                "ProcedureExecution",
                count.to_string(),
            )
        }
        1 => {
            let a: u32 = rng.random_range(0..=9);
            let b: u32 = rng.random_range(0..=9);
            draw_centred(&mut image, &format!("{a} + {b} = ?"), 160, 7);
            // Sums within ten are number facts; beyond ten a procedure (bridging ten).
            let ability = if a + b < 10 {
                "FactRecall"
            } else {
                "ProcedureExecution"
            };
            sheet(
                "addition",
                image,
                "Addition",
                range(a + b),
                ability,
                (a + b).to_string(),
            )
        }
        2 => {
            let a: u32 = rng.random_range(1..=19);
            let b: u32 = rng.random_range(0..=a);
            draw_centred(&mut image, &format!("{a} - {b} = ?"), 160, 7);
            sheet(
                "subtraction",
                image,
                "Subtraction",
                range(a),
                "ProcedureExecution",
                (a - b).to_string(),
            )
        }
        3 => {
            let left: u32 = rng.random_range(1..=9);
            let mut right: u32 = rng.random_range(1..=9);
            if right == left {
                right = if left == 9 { 8 } else { left + 1 };
            }
            draw_objects(
                &mut image,
                &mut rng,
                left as usize,
                (24, 60, 140, 220),
                shape,
                colour,
            );
            draw_objects(
                &mut image,
                &mut rng,
                right as usize,
                (220, 60, 140, 220),
                shape,
                colour,
            );
            draw_centred(&mut image, "?", 150, 8);
            let answer = if left < right { "<" } else { ">" };
            sheet(
                "comparing",
                image,
                "Comparing",
                range(left.max(right)),
                "Comparison",
                answer.into(),
            )
        }
        _ => {
            let mut shapes = Shape::ALL;
            for i in (1..shapes.len()).rev() {
                shapes.swap(i, rng.random_range(0..=i));
            }
            for (i, s) in shapes.iter().enumerate() {
                let c = COLOURS[(i + index) % COLOURS.len()];
                draw_shape(&mut image, *s, 72 + i as i64 * 120, 150, 44, c);
            }
            draw_centred(&mut image, "?", 260, 7);
            sheet(
                "shapes",
                image,
                "ShapeRecognition",
                "BasicShapes",
                "Recognition",
                format!("{shapes:?}"),
            )
        }
    }
}

#[derive(Serialize)]
struct MetaJson<'a> {
    image: &'a str,
    labels: serde_json::Map<String, serde_json::Value>,
    source: &'a str,
    meta: serde_json::Value,
}

/// Writes `count` sheets as `DIR/sheet-NNNN/{sheet.png, meta.json}`.
pub fn write_worksheets(dir: &Path, count: usize, seed: u64) -> Result<()> {
    for index in 0..count {
        let sheet = worksheet(seed, index);
        let folder = dir.join(format!("sheet-{index:04}"));
        std::fs::create_dir_all(&folder).map_err(|e| OntologyError::io(&folder, e))?;
        let png = folder.join("sheet.png");
        sheet.image.save(&png).map_err(|e| OntologyError::Image {
            path: png.clone(),
            message: e.to_string(),
        })?;
        let meta = MetaJson {
            image: "sheet.png",
            labels: sheet
                .labels
                .iter()
                .map(|(d, l)| (d.to_string(), serde_json::json!(l)))
                .collect(),
            source: "generated",
            meta: serde_json::json!({"kind": sheet.kind, "answer": sheet.answer, "seed": seed}),
        };
        crate::sft::write_json(&folder.join("meta.json"), &meta)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheets_are_deterministic_and_drawn() {
        let a = worksheet(7, 3);
        let b = worksheet(7, 3);
        assert_eq!(a.image.as_raw(), b.image.as_raw());
        let ink = a.image.pixels().filter(|p| **p != PAPER).count();
        assert!(ink > 1000, "only {ink} pixels drawn");
        assert_eq!(a.kind, "comparing");
    }

    #[test]
    fn glyphs_cover_the_sheet_text() {
        for c in "0123456789+-=?<> ".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
    }
}
