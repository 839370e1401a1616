//! Turns a loaded part into what the rasteriser draws: Z-up, centred on the bounding box,
//! scaled so the bounding sphere around that centre has radius 1, with face normals and
//! (for smooth shading) per-corner normals. Done once per object, shared by all its views.
//!
//! A unit bounding sphere rather than a fitted box keeps the scale identical in every view,
//! so a turntable does not "breathe" and sizes compare across views.

use std::collections::HashMap;

use crate::error::{RenderError, Result};
use crate::load::UpAxis;
use crate::math::Vec3;
use crate::mesh::{Part, Triangle};

/// Vertices shared by more faces than this get their face normal instead of an average:
/// keeps smooth-normal work linear on pathological fans (one vertex, millions of faces).
const MAX_SMOOTH_VALENCE: usize = 256;

/// A normalised, render-ready triangle soup.
#[derive(Debug, Clone)]
pub struct PreparedMesh {
    pub name: String,
    pub triangles: Vec<Triangle>,
    /// Unit normal per triangle, from its winding (zero for degenerate slivers).
    pub face_normals: Vec<Vec3>,
    /// Unit normal per corner, present when smooth shading was requested.
    pub corner_normals: Option<Vec<[Vec3; 3]>>,
    /// Model units per normalised unit (undo the scaling: `model = centre + p * scale`).
    pub scale: f32,
    pub centre: Vec3,
}

impl PreparedMesh {
    /// `up` is the input's up axis; Y-up input is rotated so that it ends up Z-up.
    /// `smooth_crease_degrees`: compute corner normals, keeping edges sharper than this.
    pub fn new(part: &Part, up: UpAxis, smooth_crease_degrees: Option<f32>) -> Result<Self> {
        let to_z_up = |v: Vec3| match up {
            UpAxis::Z => v,
            UpAxis::Y => Vec3::new(v.x, -v.z, v.y),
        };
        let mut low = Vec3::new(f32::INFINITY, f32::INFINITY, f32::INFINITY);
        let mut high = -low;
        for triangle in &part.triangles {
            for &v in triangle {
                low = low.min(v);
                high = high.max(v);
            }
        }
        if part.triangles.is_empty() {
            return Err(RenderError::InvalidSettings(format!(
                "part `{}` has no triangles",
                part.name
            )));
        }
        let centre = (low + high) * 0.5;
        let mut radius = 0.0f32;
        for triangle in &part.triangles {
            for &v in triangle {
                radius = radius.max((v - centre).length());
            }
        }
        if !(radius.is_finite() && radius > 0.0) {
            return Err(RenderError::InvalidSettings(format!(
                "part `{}`: coordinates span is {radius}, cannot be normalised \
                 (values too large for 32-bit floats?)",
                part.name
            )));
        }
        let inverse = 1.0 / radius;
        let triangles: Vec<Triangle> = part
            .triangles
            .iter()
            .map(|t| t.map(|v| to_z_up((v - centre) * inverse)))
            .collect();
        let face_normals: Vec<Vec3> = triangles
            .iter()
            .map(|[a, b, c]| (*b - *a).cross(*c - *a).normalized())
            .collect();
        let corner_normals =
            smooth_crease_degrees.map(|crease| smooth_normals(&triangles, &face_normals, crease));
        Ok(Self {
            name: part.name.clone(),
            triangles,
            face_normals,
            corner_normals,
            scale: radius,
            centre: to_z_up(centre),
        })
    }
}

/// Area-weighted average of the normals of faces around each corner's vertex, taking only
/// faces within `crease_degrees` of the corner's own face. Normals may be flipped between
/// neighbours (STL winding is often inconsistent), so neighbours are compared up to sign.
fn smooth_normals(
    triangles: &[Triangle],
    face_normals: &[Vec3],
    crease_degrees: f32,
) -> Vec<[Vec3; 3]> {
    let cos_crease = crease_degrees.to_radians().cos();
    // Weld corners that share exact coordinates.
    let mut ids: HashMap<[u32; 3], u32> = HashMap::with_capacity(triangles.len());
    let mut corner_vertex = Vec::with_capacity(triangles.len() * 3);
    for triangle in triangles {
        for v in triangle {
            let key = [v.x.to_bits(), v.y.to_bits(), v.z.to_bits()];
            let next = ids.len() as u32;
            corner_vertex.push(*ids.entry(key).or_insert(next));
        }
    }
    // Faces around each vertex, as compressed rows.
    let vertex_count = ids.len();
    let mut offsets = vec![0usize; vertex_count + 1];
    for &v in &corner_vertex {
        offsets[v as usize + 1] += 1;
    }
    for i in 0..vertex_count {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut faces = vec![0u32; corner_vertex.len()];
    for (corner, &v) in corner_vertex.iter().enumerate() {
        faces[fill[v as usize]] = (corner / 3) as u32;
        fill[v as usize] += 1;
    }
    let weighted: Vec<Vec3> = triangles
        .iter()
        .map(|[a, b, c]| (*b - *a).cross(*c - *a))
        .collect();
    let mut normals = Vec::with_capacity(triangles.len());
    for (face, own) in face_normals.iter().enumerate() {
        let mut corners = [*own; 3];
        for (k, corner) in corners.iter_mut().enumerate() {
            let v = corner_vertex[face * 3 + k] as usize;
            let around = &faces[offsets[v]..offsets[v + 1]];
            if around.len() > MAX_SMOOTH_VALENCE {
                continue;
            }
            let mut sum = Vec3::ZERO;
            for &other in around {
                let other = other as usize;
                let alignment = face_normals[other].dot(*own);
                if alignment.abs() >= cos_crease {
                    let w = weighted[other];
                    sum = sum + if alignment < 0.0 { -w } else { w };
                }
            }
            let n = sum.normalized();
            if n != Vec3::ZERO {
                *corner = n;
            }
        }
        normals.push(corners);
    }
    normals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quad_fold() -> Part {
        // Two triangles meeting at 90 degrees along the x axis, plus a coplanar neighbour.
        let v = |x: f32, y: f32, z: f32| Vec3::new(x, y, z);
        Part {
            name: "fold".into(),
            triangles: vec![
                [v(0., 0., 0.), v(1., 0., 0.), v(0., 1., 0.)],
                [v(1., 0., 0.), v(0., 0., 0.), v(0., 0., -1.)],
                [v(1., 0., 0.), v(1., 1., 0.), v(0., 1., 0.)],
            ],
        }
    }

    #[test]
    fn normalised_mesh_fits_the_unit_sphere_and_is_centred() {
        let mesh = PreparedMesh::new(&quad_fold(), UpAxis::Z, None).unwrap();
        let mut max_radius = 0.0f32;
        for t in &mesh.triangles {
            for v in t {
                max_radius = max_radius.max(v.length());
            }
        }
        assert!((max_radius - 1.0).abs() < 1e-5);
    }

    #[test]
    fn crease_keeps_the_fold_sharp_and_smooths_the_flat_side() {
        let mesh = PreparedMesh::new(&quad_fold(), UpAxis::Z, Some(40.0)).unwrap();
        let corners = mesh.corner_normals.unwrap();
        for corner in corners[0] {
            assert!((corner.dot(mesh.face_normals[0]).abs() - 1.0).abs() < 1e-5);
        }
        let softened = PreparedMesh::new(&quad_fold(), UpAxis::Z, Some(100.0)).unwrap();
        let n = softened.corner_normals.unwrap()[0][0];
        assert!(
            n.dot(mesh.face_normals[0]).abs() < 0.99,
            "fold should be averaged: {n:?}"
        );
    }

    #[test]
    fn y_up_input_becomes_z_up() {
        let v = |x: f32, y: f32, z: f32| Vec3::new(x, y, z);
        let tall = Part {
            name: "tall".into(),
            triangles: vec![[v(0., 0., 0.), v(0.1, 0., 0.), v(0., 10., 0.)]],
        };
        let mesh = PreparedMesh::new(&tall, UpAxis::Y, None).unwrap();
        let extent_z = mesh.triangles[0]
            .iter()
            .map(|v| v.z)
            .fold(f32::MIN, f32::max)
            - mesh.triangles[0]
                .iter()
                .map(|v| v.z)
                .fold(f32::MAX, f32::min);
        assert!(extent_z > 1.9, "height should end up along z: {extent_z}");
    }
}
