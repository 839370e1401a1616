//! The output image and its PNG encoding.

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Image {
    pub fn new(width: u32, height: u32, fill: [u8; 3]) -> Image {
        let count = width as usize * height as usize;
        let pixels = if fill[0] == fill[1] && fill[1] == fill[2] {
            vec![fill[0]; count * 3]
        } else {
            fill.iter().copied().cycle().take(count * 3).collect()
        };
        Image {
            width,
            height,
            pixels,
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// PNG bytes: the Paeth filter on every row and fast deflate. On these renders (flat
    /// background, smooth gradients) Paeth gives files as small as choosing a filter per
    /// row; `Sub` or `Up` give files about a quarter larger, and the default deflate level
    /// is 4-5x slower for files about 2.5x smaller. The bytes are those of the `png` crate
    /// with these options, written faster by [`super::png`].
    pub fn encode_png(&self) -> Result<Vec<u8>, String> {
        super::png::encode_rgb(self.width, self.height, &self.pixels)
    }
}
