//! Limited-memory BFGS with a strong-Wolfe line search, for smooth convex objectives.
//!
//! scikit-learn minimises the logistic objective with scipy's L-BFGS-B (no bounds, memory 10).
//! This is the same algorithm; the stopping rules are scipy's (largest gradient component
//! below `gtol`, or relative decrease of the objective below `ftol`), so a tight `gtol`
//! reaches the same unique optimum of the strictly convex L2-penalised problem.

/// Settings of [`minimize`].
#[derive(Debug, Clone, Copy)]
pub struct LbfgsOptions {
    /// Pairs `(s, y)` kept for the inverse-Hessian approximation.
    pub memory: usize,
    pub max_iterations: usize,
    /// Stop when `max_i |g_i| <= gtol`.
    pub gtol: f64,
    /// Stop when `(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`.
    pub ftol: f64,
    /// Function evaluations allowed per line search.
    pub max_line_search: usize,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        Self {
            memory: 10,
            max_iterations: 1000,
            gtol: 1e-6,
            ftol: 64.0 * f64::EPSILON,
            max_line_search: 50,
        }
    }
}

/// What happened during [`minimize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsReport {
    pub iterations: usize,
    pub evaluations: usize,
    pub value: f64,
    pub gradient_max: f64,
    /// A stopping rule (gtol or ftol) was met, rather than the iteration limit or a failed
    /// line search.
    pub converged: bool,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Minimises `objective` from the starting point `x` (overwritten with the minimiser).
/// `objective(x, gradient)` returns the value and writes the gradient.
pub fn minimize(
    x: &mut [f64],
    objective: impl FnMut(&[f64], &mut [f64]) -> f64,
    options: &LbfgsOptions,
) -> LbfgsReport {
    minimize_preconditioned(x, objective, options, None)
}

/// [`minimize`] with a diagonal initial inverse Hessian: the two-loop recursion starts from
/// `gamma * diag(preconditioner)` instead of `gamma * I` (the same iterates as plain L-BFGS
/// on the rescaled variables `x_i / sqrt(preconditioner_i)`). When the curvature of the
/// coordinates spans orders of magnitude, as it does for TF-IDF columns of very different
/// frequency, an approximate inverse Hessian diagonal here cuts the iteration count several
/// times. The stopping rules still look at the unscaled gradient, so the result meets the
/// same `gtol` as without it.
pub fn minimize_preconditioned(
    x: &mut [f64],
    mut objective: impl FnMut(&[f64], &mut [f64]) -> f64,
    options: &LbfgsOptions,
    preconditioner: Option<&[f64]>,
) -> LbfgsReport {
    let n = x.len();
    let ones;
    let diagonal = match preconditioner {
        Some(p) => {
            assert_eq!(p.len(), n, "preconditioner length");
            p
        }
        None => {
            ones = vec![1.0; n];
            &ones[..]
        }
    };
    let mut gradient = vec![0.0; n];
    let mut value = objective(x, &mut gradient);
    let mut evaluations = 1;
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::with_capacity(options.memory);
    let mut direction = vec![0.0; n];
    let mut trial_x = vec![0.0; n];
    let mut trial_g = vec![0.0; n];
    let mut alpha = vec![0.0; options.memory];
    let mut report = LbfgsReport {
        iterations: 0,
        evaluations,
        value,
        gradient_max: max_abs(&gradient),
        converged: false,
    };
    if report.gradient_max <= options.gtol {
        report.converged = true;
        return report;
    }
    let mut iteration = 0;
    while iteration < options.max_iterations {
        iteration += 1;
        // Two-loop recursion: direction = -H * gradient.
        direction.copy_from_slice(&gradient);
        for (k, (s, y, rho)) in history.iter().enumerate().rev() {
            alpha[k] = rho * dot(s, &direction);
            direction
                .iter_mut()
                .zip(y)
                .for_each(|(d, yi)| *d -= alpha[k] * yi);
        }
        if let Some((s, y, _)) = history.back() {
            let ydy: f64 = y.iter().zip(diagonal).map(|(yi, di)| yi * yi * di).sum();
            let gamma = dot(s, y) / ydy;
            direction
                .iter_mut()
                .zip(diagonal)
                .for_each(|(d, di)| *d *= gamma * di);
        }
        for (k, (s, y, rho)) in history.iter().enumerate() {
            let beta = rho * dot(y, &direction);
            direction
                .iter_mut()
                .zip(s)
                .for_each(|(d, si)| *d += (alpha[k] - beta) * si);
        }
        direction.iter_mut().for_each(|d| *d = -*d);
        let mut slope = dot(&direction, &gradient);
        // NaN slopes also restart from steepest descent.
        if slope.is_nan() || slope >= 0.0 || history.is_empty() {
            history.clear();
            direction
                .iter_mut()
                .zip(&gradient)
                .zip(diagonal)
                .for_each(|((d, g), di)| *d = -g * di);
            slope = dot(&direction, &gradient);
        }
        let first_step = if history.is_empty() {
            // scipy's first step: unit length along the (scaled) steepest-descent direction.
            (1.0 / dot(&direction, &direction).sqrt()).min(1.0)
        } else {
            1.0
        };
        let search = line_search(
            x,
            value,
            slope,
            &direction,
            first_step,
            &mut trial_x,
            &mut trial_g,
            &mut objective,
            options.max_line_search,
        );
        evaluations += search.evaluations;
        let Some(new_value) = search.value else {
            if history.is_empty() {
                break;
            }
            // Retry from steepest descent before giving up.
            history.clear();
            continue;
        };
        // Reuse the oldest pair's buffers once the memory is full (no allocation per step).
        let (mut s, mut y) = if history.len() == options.memory {
            history
                .pop_front()
                .map_or_else(|| (vec![0.0; n], vec![0.0; n]), |(s, y, _)| (s, y))
        } else {
            (vec![0.0; n], vec![0.0; n])
        };
        for i in 0..n {
            s[i] = trial_x[i] - x[i];
            y[i] = trial_g[i] - gradient[i];
        }
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            history.push_back((s, y, 1.0 / sy));
        }
        let decrease = (value - new_value) / value.abs().max(new_value.abs()).max(1.0);
        x.copy_from_slice(&trial_x);
        gradient.copy_from_slice(&trial_g);
        value = new_value;
        report.gradient_max = max_abs(&gradient);
        if report.gradient_max <= options.gtol || decrease <= options.ftol {
            report.converged = true;
            break;
        }
    }
    report.iterations = iteration;
    report.evaluations = evaluations;
    report.value = value;
    report
}

/// `(step, value, slope)` at one trial step.
type Point = (f64, f64, f64);

struct Search {
    /// Objective at the accepted point (left in `trial_x` / `trial_g`); `None` on failure.
    value: Option<f64>,
    evaluations: usize,
}

/// Strong-Wolfe line search (Nocedal & Wright, algorithms 3.5 and 3.6) with safeguarded
/// cubic interpolation. The accepted point is always the last one evaluated.
#[allow(clippy::too_many_arguments)]
fn line_search(
    x: &[f64],
    value0: f64,
    slope0: f64,
    direction: &[f64],
    first_step: f64,
    trial_x: &mut [f64],
    trial_g: &mut [f64],
    objective: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    max_evaluations: usize,
) -> Search {
    let mut evaluations = 0;
    let mut evaluate = |step: f64, trial_x: &mut [f64], trial_g: &mut [f64]| {
        for ((t, xi), di) in trial_x.iter_mut().zip(x).zip(direction) {
            *t = xi + step * di;
        }
        let value = objective(trial_x, trial_g);
        (value, dot(trial_g, direction))
    };
    // (step, value, slope) at the bracket ends.
    let mut previous = (0.0, value0, slope0);
    let mut step = first_step;
    let mut bracket: Option<(Point, Point)> = None;
    while evaluations < max_evaluations {
        let (value, slope) = evaluate(step, trial_x, trial_g);
        evaluations += 1;
        if !value.is_finite() {
            bracket = Some((previous, (step, f64::INFINITY, 0.0)));
            break;
        }
        if value > value0 + C1 * step * slope0 || (evaluations > 1 && value >= previous.1) {
            bracket = Some((previous, (step, value, slope)));
            break;
        }
        if slope.abs() <= -C2 * slope0 {
            return Search {
                value: Some(value),
                evaluations,
            };
        }
        if slope >= 0.0 {
            bracket = Some(((step, value, slope), previous));
            break;
        }
        previous = (step, value, slope);
        step *= 4.0;
    }
    let Some((mut low, mut high)) = bracket else {
        return Search {
            value: None,
            evaluations,
        };
    };
    while evaluations < max_evaluations {
        let width = high.0 - low.0;
        let mut step = if high.1.is_finite() {
            cubic_minimum(low, high).unwrap_or(low.0 + 0.5 * width)
        } else {
            low.0 + 0.5 * width
        };
        let (lo, hi) = if low.0 < high.0 {
            (low.0, high.0)
        } else {
            (high.0, low.0)
        };
        let margin = 0.1 * (hi - lo);
        if !(step > lo + margin && step < hi - margin) {
            step = 0.5 * (lo + hi);
        }
        let (value, slope) = evaluate(step, trial_x, trial_g);
        evaluations += 1;
        if !value.is_finite() || value > value0 + C1 * step * slope0 || value >= low.1 {
            high = (step, value, slope);
        } else {
            if slope.abs() <= -C2 * slope0 {
                return Search {
                    value: Some(value),
                    evaluations,
                };
            }
            if slope * (high.0 - low.0) >= 0.0 {
                high = low;
            }
            low = (step, value, slope);
        }
        if (high.0 - low.0).abs() <= f64::EPSILON * low.0.abs().max(1e-300) {
            break;
        }
    }
    // No Wolfe point found; accept the best sufficient-decrease point if there is one.
    if low.0 > 0.0 {
        let (value, _) = evaluate(low.0, trial_x, trial_g);
        evaluations += 1;
        if value < value0 {
            return Search {
                value: Some(value),
                evaluations,
            };
        }
    }
    Search {
        value: None,
        evaluations,
    }
}

/// Minimiser of the cubic interpolating values and slopes at two steps, if it exists.
fn cubic_minimum(a: (f64, f64, f64), b: (f64, f64, f64)) -> Option<f64> {
    let (a0, f0, d0) = a;
    let (a1, f1, d1) = b;
    let theta = d0 + d1 - 3.0 * (f0 - f1) / (a0 - a1);
    let radicand = theta * theta - d0 * d1;
    if radicand < 0.0 {
        return None;
    }
    let gamma = radicand.sqrt() * (a1 - a0).signum();
    let denominator = d1 - d0 + 2.0 * gamma;
    if denominator == 0.0 {
        return None;
    }
    let step = a1 - (a1 - a0) * (d1 + gamma - theta) / denominator;
    step.is_finite().then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_rosenbrock() {
        let mut x = vec![-1.2, 1.0];
        let report = minimize(
            &mut x,
            |x, g| {
                let (a, b) = (x[0], x[1]);
                g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
                g[1] = 200.0 * (b - a * a);
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
            },
            &LbfgsOptions {
                gtol: 1e-10,
                ..LbfgsOptions::default()
            },
        );
        assert!(report.converged, "{report:?}");
        assert!(
            (x[0] - 1.0).abs() < 1e-6 && (x[1] - 1.0).abs() < 1e-6,
            "{x:?}"
        );
    }

    #[test]
    fn minimises_a_quadratic_exactly() {
        let scales = [1.0, 10.0, 100.0, 0.5];
        let mut x = vec![3.0; 4];
        let report = minimize(
            &mut x,
            |x, g| {
                let mut f = 0.0;
                for i in 0..4 {
                    g[i] = scales[i] * (x[i] - i as f64);
                    f += 0.5 * scales[i] * (x[i] - i as f64).powi(2);
                }
                f
            },
            &LbfgsOptions {
                gtol: 1e-12,
                ftol: 0.0,
                ..LbfgsOptions::default()
            },
        );
        assert!(report.converged);
        for (i, xi) in x.iter().enumerate() {
            assert!((xi - i as f64).abs() < 1e-10);
        }
    }

    #[test]
    fn preconditioning_fixes_bad_scaling() {
        let scales: Vec<f64> = (0..50).map(|i| 10f64.powi(i % 7 - 3)).collect();
        let run = |preconditioner: Option<&[f64]>| {
            let mut x = vec![1.0; scales.len()];
            let report = minimize_preconditioned(
                &mut x,
                |x, g| {
                    let mut f = 0.0;
                    for i in 0..x.len() {
                        g[i] = scales[i] * (x[i] - 2.0);
                        f += 0.5 * scales[i] * (x[i] - 2.0).powi(2);
                    }
                    f
                },
                &LbfgsOptions {
                    gtol: 1e-10,
                    ftol: 0.0,
                    ..LbfgsOptions::default()
                },
                preconditioner,
            );
            assert!(report.converged, "{report:?}");
            assert!(x.iter().all(|xi| (xi - 2.0).abs() < 1e-6), "{x:?}");
            report.iterations
        };
        let inverse: Vec<f64> = scales.iter().map(|s| 1.0 / s).collect();
        let plain = run(None);
        let scaled = run(Some(&inverse));
        assert!(scaled <= 2 && scaled < plain, "{scaled} vs {plain}");
    }
}
