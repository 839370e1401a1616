//! Views and cameras. The scene is Z-up (as in STL, 3MF and OpenSCAD) and normalised to a
//! unit bounding sphere at the origin, so a camera is just a direction plus a projection.
//!
//! Azimuth is measured from the front (camera on -Y looking towards +Y, as OpenSCAD's
//! front view) turning towards +X: 0 front, 90 right, 180 back, 270 left. Elevation is
//! the angle above the XY plane: 90 looks straight down.
//!
//! Orthographic is the default projection: parallel edges stay parallel and sizes do not
//! depend on depth, so views of the same object compare like engineering drawings, the
//! silhouette of a known solid has an exact analytic area (which the tests check), and a
//! part's proportions are what a classifier sees. Perspective (a fixed field of view, camera
//! pulled back until the bounding sphere fits) is available for a more natural look.

use serde::{Deserialize, Serialize};

use crate::error::{RenderError, Result};
use crate::math::Vec3;

/// A named viewing direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewSpec {
    /// File stem of the output image (`front`, `turntable_03`, `az030_el020`).
    pub name: String,
    pub azimuth_degrees: f32,
    pub elevation_degrees: f32,
}

/// Elevation of the `iso` preset: the true isometric angle, atan(1/sqrt(2)).
pub const ISO_ELEVATION: f32 = 35.264_39;
/// Elevation of `turntable:N` views: high enough to see the top, low enough to read sides.
pub const TURNTABLE_ELEVATION: f32 = 20.0;

impl ViewSpec {
    pub fn new(name: impl Into<String>, azimuth_degrees: f32, elevation_degrees: f32) -> Self {
        Self {
            name: name.into(),
            azimuth_degrees,
            elevation_degrees,
        }
    }

    /// Parses a comma-separated list: `front`, `back`, `left`, `right`, `top`, `bottom`,
    /// `iso`, `turntable:N` (N views around the object) and `az:A:el:E` (custom degrees).
    pub fn parse_list(spec: &str) -> Result<Vec<ViewSpec>> {
        let mut views: Vec<ViewSpec> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            for view in Self::parse_one(item)? {
                if views.iter().any(|v| v.name == view.name) {
                    return Err(RenderError::InvalidView {
                        spec: item.to_string(),
                        message: format!("view `{}` is listed twice", view.name),
                    });
                }
                views.push(view);
            }
        }
        if views.is_empty() {
            return Err(RenderError::InvalidView {
                spec: spec.to_string(),
                message: "no views given".into(),
            });
        }
        Ok(views)
    }

    fn parse_one(item: &str) -> Result<Vec<ViewSpec>> {
        let invalid = |message: &str| RenderError::InvalidView {
            spec: item.to_string(),
            message: message.to_string(),
        };
        let preset = |name: &str, az: f32, el: f32| Ok(vec![ViewSpec::new(name, az, el)]);
        match item {
            "front" => return preset("front", 0.0, 0.0),
            "right" => return preset("right", 90.0, 0.0),
            "back" => return preset("back", 180.0, 0.0),
            "left" => return preset("left", 270.0, 0.0),
            "top" => return preset("top", 0.0, 90.0),
            "bottom" => return preset("bottom", 0.0, -90.0),
            "iso" => return preset("iso", 45.0, ISO_ELEVATION),
            _ => {}
        }
        if let Some(count) = item.strip_prefix("turntable:") {
            let count: u32 = count
                .parse()
                .map_err(|_| invalid("expected turntable:N with N a whole number"))?;
            if !(1..=360).contains(&count) {
                return Err(invalid("turntable needs 1 to 360 views"));
            }
            let width = if count > 99 { 3 } else { 2 };
            return Ok((0..count)
                .map(|i| {
                    ViewSpec::new(
                        format!("turntable_{i:0width$}"),
                        360.0 * i as f32 / count as f32,
                        TURNTABLE_ELEVATION,
                    )
                })
                .collect());
        }
        let parts: Vec<&str> = item.split(':').collect();
        if let ["az", az, "el", el] = parts.as_slice() {
            let az: f32 = az.parse().map_err(|_| invalid("azimuth is not a number"))?;
            let el: f32 = el
                .parse()
                .map_err(|_| invalid("elevation is not a number"))?;
            if !az.is_finite() || !(-90.0..=90.0).contains(&el) {
                return Err(invalid(
                    "azimuth must be finite and elevation within -90..90",
                ));
            }
            let name = format!("az{:03}_el{:+03}", az.round() as i64, el.round() as i64);
            return Ok(vec![ViewSpec::new(name, az, el)]);
        }
        Err(invalid(
            "unknown view; use front, back, left, right, top, bottom, iso, turntable:N or az:A:el:E",
        ))
    }
}

/// How 3D maps to the image plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Projection {
    Orthographic,
    Perspective { fov_degrees: f32 },
}

/// A camera looking at the unit sphere around the origin, producing `size` x `size` pixels.
///
/// Screen space: x right, y down, in pixels; `depth` is a value that grows towards the
/// camera and is affine in screen space (so it interpolates linearly across a triangle).
#[derive(Debug, Clone, Copy)]
pub struct Camera {
    /// Unit vector from the origin towards the camera.
    pub toward_camera: Vec3,
    pub right: Vec3,
    pub up: Vec3,
    pub projection: Projection,
    /// Pixels per model unit at the origin's depth.
    pub pixels_per_unit: f32,
    pub size: u32,
    /// Distance of the eye from the origin (perspective only).
    eye_distance: f32,
}

impl Camera {
    /// `fill` is the fraction of the image's half-width the unit sphere's radius occupies.
    pub fn new(view: &ViewSpec, projection: Projection, size: u32, fill: f32) -> Camera {
        let azimuth = view.azimuth_degrees.to_radians();
        let elevation = view.elevation_degrees.clamp(-90.0, 90.0).to_radians();
        let toward_camera = Vec3::new(
            azimuth.sin() * elevation.cos(),
            -azimuth.cos() * elevation.cos(),
            elevation.sin(),
        )
        .normalized();
        let forward = -toward_camera;
        // Straight up or down, world Z is parallel to the view: use the azimuth's "ahead"
        // direction as image-up so that top views keep the front at the bottom.
        let hint = if elevation.cos() < 1e-4 {
            Vec3::new(-azimuth.sin(), azimuth.cos(), 0.0) * elevation.sin().signum()
        } else {
            Vec3::new(0.0, 0.0, 1.0)
        };
        let right = forward.cross(hint).normalized();
        let up = right.cross(forward).normalized();
        let half = size as f32 / 2.0;
        let (pixels_per_unit, eye_distance) = match projection {
            Projection::Orthographic => (half * fill, 3.0),
            Projection::Perspective { fov_degrees } => {
                let half_fov = (fov_degrees.clamp(1.0, 150.0) / 2.0).to_radians();
                // Far enough that the unit sphere's silhouette fits inside `fill`.
                let distance = 1.0 / (half_fov.tan() * fill).atan().sin();
                (half / half_fov.tan() / distance, distance)
            }
        };
        Camera {
            toward_camera,
            right,
            up,
            projection,
            pixels_per_unit,
            size,
            eye_distance,
        }
    }

    /// Screen position (pixels, y down) and depth (larger is nearer) of a model point.
    #[inline]
    pub fn project(&self, p: Vec3) -> (f32, f32, f32) {
        let half = self.size as f32 / 2.0;
        let x = p.dot(self.right);
        let y = p.dot(self.up);
        let distance = self.eye_distance - p.dot(self.toward_camera);
        match self.projection {
            Projection::Orthographic => (
                half + x * self.pixels_per_unit,
                half - y * self.pixels_per_unit,
                8.0 - distance,
            ),
            Projection::Perspective { .. } => {
                let scale = self.pixels_per_unit * self.eye_distance / distance;
                (half + x * scale, half - y * scale, 1.0 / distance)
            }
        }
    }

    /// Distance of the eye from the origin (orthographic cameras sit at a nominal 3 units).
    pub fn eye_distance(&self) -> f32 {
        self.eye_distance
    }

    /// Distance from the eye for a depth value returned by [`Camera::project`].
    #[inline]
    pub fn distance_of(&self, depth: f32) -> f32 {
        match self.projection {
            Projection::Orthographic => 8.0 - depth,
            Projection::Perspective { .. } => 1.0 / depth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_point_where_their_names_say() {
        let camera = |name: &str| {
            let views = ViewSpec::parse_list(name).unwrap();
            Camera::new(&views[0], Projection::Orthographic, 100, 1.0)
        };
        let close = |a: Vec3, b: Vec3| (a - b).length() < 1e-5;
        assert!(close(
            camera("front").toward_camera,
            Vec3::new(0.0, -1.0, 0.0)
        ));
        assert!(close(camera("front").right, Vec3::new(1.0, 0.0, 0.0)));
        assert!(close(camera("front").up, Vec3::new(0.0, 0.0, 1.0)));
        assert!(close(
            camera("right").toward_camera,
            Vec3::new(1.0, 0.0, 0.0)
        ));
        assert!(close(camera("back").right, Vec3::new(-1.0, 0.0, 0.0)));
        assert!(close(
            camera("left").toward_camera,
            Vec3::new(-1.0, 0.0, 0.0)
        ));
        let top = camera("top");
        assert!(close(top.toward_camera, Vec3::new(0.0, 0.0, 1.0)));
        assert!(close(top.up, Vec3::new(0.0, 1.0, 0.0)));
        assert!(close(top.right, Vec3::new(1.0, 0.0, 0.0)));
    }

    #[test]
    fn view_lists_parse_and_reject_nonsense() {
        let views = ViewSpec::parse_list("front, iso,turntable:4,az:30:el:-10").unwrap();
        let names: Vec<_> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "front",
                "iso",
                "turntable_00",
                "turntable_01",
                "turntable_02",
                "turntable_03",
                "az030_el-10"
            ]
        );
        assert_eq!(views[4].azimuth_degrees, 180.0);
        for bad in [
            "",
            "sideways",
            "turntable:0",
            "turntable:x",
            "az:1:el:95",
            "front,front",
        ] {
            assert!(
                ViewSpec::parse_list(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn perspective_keeps_the_unit_sphere_inside_the_frame() {
        let view = ViewSpec::new("front", 0.0, 0.0);
        let camera = Camera::new(
            &view,
            Projection::Perspective { fov_degrees: 30.0 },
            200,
            0.9,
        );
        // The sphere's silhouette is tangent from the eye; sample points on it.
        for i in 0..64 {
            let angle = i as f32 / 64.0 * std::f32::consts::TAU;
            for j in 0..32 {
                let polar = j as f32 / 31.0 * std::f32::consts::PI;
                let p = Vec3::new(
                    polar.sin() * angle.cos(),
                    polar.cos(),
                    polar.sin() * angle.sin(),
                );
                let (x, y, _) = camera.project(p);
                let r = ((x - 100.0).powi(2) + (y - 100.0).powi(2)).sqrt();
                assert!(
                    r <= 90.0 + 1e-2,
                    "point projects outside the fill circle: {r}"
                );
            }
        }
    }
}
