//! Contact sheets: all views of a sample in one grid image, because vision-language models
//! accept few images per request and one sheet carries every angle.

use crate::raster::Image;

/// Lays `tiles` (all the same size) out row by row in a near-square grid, separated by
/// thin lines slightly darker than `background`.
pub fn contact_sheet(tiles: &[&Image], background: [u8; 3]) -> Option<Image> {
    let first = tiles.first()?;
    let (tile_w, tile_h) = (first.width, first.height);
    if tiles
        .iter()
        .any(|t| t.width != tile_w || t.height != tile_h)
    {
        return None;
    }
    let count = tiles.len() as u32;
    let columns = (count as f64).sqrt().ceil() as u32;
    let rows = count.div_ceil(columns);
    let gap = (tile_w / 128).max(2);
    let width = columns * tile_w + (columns - 1) * gap;
    let height = rows * tile_h + (rows - 1) * gap;
    let line = background.map(|c| c.saturating_sub(40));
    let mut sheet = Image::new(width, height, line);
    for (index, tile) in tiles.iter().enumerate() {
        let column = index as u32 % columns;
        let row = index as u32 / columns;
        let left = (column * (tile_w + gap)) as usize;
        let top = (row * (tile_h + gap)) as usize;
        let row_bytes = tile_w as usize * 3;
        for y in 0..tile_h as usize {
            let source = &tile.pixels[y * row_bytes..(y + 1) * row_bytes];
            let start = ((top + y) * width as usize + left) * 3;
            sheet.pixels[start..start + row_bytes].copy_from_slice(source);
        }
    }
    // Empty cells of the last row show the background, not separator colour.
    for index in count..rows * columns {
        let column = index % columns;
        let row = index / columns;
        for y in 0..tile_h as usize {
            let start = ((row * (tile_h + gap)) as usize + y) * width as usize * 3
                + (column * (tile_w + gap)) as usize * 3;
            for x in 0..tile_w as usize {
                sheet.pixels[start + x * 3..start + x * 3 + 3].copy_from_slice(&background);
            }
        }
    }
    Some(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_tiles_make_a_two_by_two_grid() {
        let a = Image::new(10, 10, [255, 0, 0]);
        let b = Image::new(10, 10, [0, 255, 0]);
        let sheet = contact_sheet(&[&a, &b, &a], [255, 255, 255]).unwrap();
        assert_eq!((sheet.width, sheet.height), (22, 22));
        assert_eq!(sheet.pixel(0, 0), [255, 0, 0]);
        assert_eq!(sheet.pixel(12, 0), [0, 255, 0]);
        assert_eq!(sheet.pixel(10, 0), [215, 215, 215]);
        assert_eq!(sheet.pixel(15, 15), [255, 255, 255]);
    }
}
