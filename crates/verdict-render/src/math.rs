//! The few 3-vector operations the loaders and the rasteriser need (no linear-algebra crate:
//! everything here is a handful of lines and stays in `f32` so results are reproducible).

use std::ops::{Add, Mul, Neg, Sub};

/// A point or direction in 3D.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vec3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl Vec3 {
    pub const ZERO: Vec3 = Vec3::new(0.0, 0.0, 0.0);

    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Self { x, y, z }
    }

    pub fn from_array(a: [f32; 3]) -> Self {
        Self::new(a[0], a[1], a[2])
    }

    pub fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }

    pub fn dot(self, other: Vec3) -> f32 {
        self.x * other.x + self.y * other.y + self.z * other.z
    }

    pub fn cross(self, other: Vec3) -> Vec3 {
        Vec3::new(
            self.y * other.z - self.z * other.y,
            self.z * other.x - self.x * other.z,
            self.x * other.y - self.y * other.x,
        )
    }

    pub fn length(self) -> f32 {
        self.dot(self).sqrt()
    }

    /// Unit vector in the same direction, or zero for a zero vector (degenerate input must
    /// not turn into NaN further down).
    pub fn normalized(self) -> Vec3 {
        let length = self.length();
        if length > 0.0 && length.is_finite() {
            self * (1.0 / length)
        } else {
            Vec3::ZERO
        }
    }

    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.z.is_finite()
    }

    pub fn min(self, other: Vec3) -> Vec3 {
        Vec3::new(
            self.x.min(other.x),
            self.y.min(other.y),
            self.z.min(other.z),
        )
    }

    pub fn max(self, other: Vec3) -> Vec3 {
        Vec3::new(
            self.x.max(other.x),
            self.y.max(other.y),
            self.z.max(other.z),
        )
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl Mul<f32> for Vec3 {
    type Output = Vec3;
    fn mul(self, s: f32) -> Vec3 {
        Vec3::new(self.x * s, self.y * s, self.z * s)
    }
}

impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        Vec3::new(-self.x, -self.y, -self.z)
    }
}

/// An affine transform in the 3MF convention: `p' = p * M` with a 4x3 matrix stored row-major
/// as `m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32` (the last row is the translation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub m: [f32; 12],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    };

    pub fn apply(&self, p: Vec3) -> Vec3 {
        let m = &self.m;
        Vec3::new(
            p.x * m[0] + p.y * m[3] + p.z * m[6] + m[9],
            p.x * m[1] + p.y * m[4] + p.z * m[7] + m[10],
            p.x * m[2] + p.y * m[5] + p.z * m[8] + m[11],
        )
    }

    /// `self` first, then `outer` (a component's transform inside its parent's).
    pub fn then(&self, outer: &Affine) -> Affine {
        let a = &self.m;
        let b = &outer.m;
        let mut m = [0.0f32; 12];
        for row in 0..4 {
            for col in 0..3 {
                let mut value = if row == 3 { b[9 + col] } else { 0.0 };
                for k in 0..3 {
                    value += a[row * 3 + k] * b[k * 3 + col];
                }
                m[row * 3 + col] = value;
            }
        }
        Affine { m }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_composition_matches_sequential_application() {
        let scale = Affine {
            m: [2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0],
        };
        let shift = Affine {
            m: [
                1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 10.0, 20.0, 30.0,
            ],
        };
        let p = Vec3::new(1.0, 1.0, 1.0);
        let combined = scale.then(&shift);
        assert_eq!(combined.apply(p), shift.apply(scale.apply(p)));
        assert_eq!(combined.apply(p), Vec3::new(12.0, 23.0, 34.0));
        assert_eq!(shift.then(&scale).apply(p), Vec3::new(22.0, 63.0, 124.0));
    }

    #[test]
    fn normalizing_zero_gives_zero_not_nan() {
        assert_eq!(Vec3::ZERO.normalized(), Vec3::ZERO);
    }
}
