//! Render settings: plain data with defaults, serialised next to every output so an image
//! says how it was made (and so a change of settings invalidates cached outputs).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::camera::Projection;
use crate::error::{RenderError, Result};
use crate::load::UpAxis;
use crate::mesh::LoadLimits;

/// How surfaces are lit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shading {
    /// One colour per triangle: crisp facets, the honest look for CAD parts.
    Flat,
    /// Normals averaged across edges sharper than `crease_degrees` are kept: curved surfaces
    /// look smooth, hard edges stay hard.
    Smooth,
}

/// Everything that changes the pixels of a view (plus load caps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderSettings {
    /// Output width and height in pixels (views are square).
    pub size: u32,
    /// Samples per pixel along each axis (2 means 4 samples): anti-aliased edges.
    pub supersample: u32,
    pub background: [u8; 3],
    /// Surface base colour, lit by a fixed key and fill light.
    pub color: [u8; 3],
    pub shading: Shading,
    /// Angle between faces above which an edge counts as a crease (outlines, smooth normals).
    pub crease_degrees: f32,
    /// Draw silhouettes and crease edges in `outline_color`.
    pub outlines: bool,
    pub outline_color: [u8; 3],
    pub projection: Projection,
    /// Fraction of the half image the object's bounding sphere fills.
    pub fill: f32,
    /// Up axis of the input; `None` uses each format's convention (STL/3MF Z, OBJ Y).
    pub up: Option<UpAxis>,
    /// Render all files and parts of a sample as one object (else one set of views per part).
    pub merge_parts: bool,
    /// Also write `contact_sheet.png`, all views of the sample in one grid.
    pub contact_sheet: bool,
    pub limits: LoadLimits,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            size: 512,
            supersample: 2,
            background: [255, 255, 255],
            color: [176, 190, 214],
            shading: Shading::Smooth,
            crease_degrees: 40.0,
            outlines: true,
            outline_color: [40, 44, 52],
            projection: Projection::Orthographic,
            fill: 0.92,
            up: None,
            merge_parts: true,
            contact_sheet: false,
            limits: LoadLimits::default(),
        }
    }
}

impl RenderSettings {
    /// Rejects settings that would give empty, huge or nonsensical images.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: &str| Err(RenderError::InvalidSettings(message.to_string()));
        if !(8..=8192).contains(&self.size) {
            return fail("size must be within 8..=8192 pixels");
        }
        if !(1..=4).contains(&self.supersample) {
            return fail("supersample must be within 1..=4");
        }
        if self.size * self.supersample > 8192 {
            return fail("size * supersample must be at most 8192 (memory grows with its square)");
        }
        if !(self.fill > 0.05 && self.fill <= 1.0) {
            return fail("fill must be within (0.05, 1]");
        }
        if !(0.0..=180.0).contains(&self.crease_degrees) {
            return fail("crease_degrees must be within 0..=180");
        }
        if let Projection::Perspective { fov_degrees } = self.projection {
            if !(5.0..=120.0).contains(&fov_degrees) {
                return fail("perspective fov_degrees must be within 5..=120");
            }
        }
        Ok(())
    }

    /// Hex SHA-256 of the settings as JSON, plus the crate version (a renderer change
    /// invalidates cached images too).
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(hasher.finalize())
    }
}
