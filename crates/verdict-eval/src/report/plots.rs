//! Report figures as SVG strings, drawn with plotters' SVG backend.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::calibration::MethodResult;
use crate::error::{EvalError, Result};
use crate::metrics::{ConfusionMatrix, CurvePoint};

const FONT: &str = "sans-serif";

fn plot_error<E: std::fmt::Debug>(error: E) -> EvalError {
    EvalError::Plot(format!("{error:?}"))
}

/// Colours that stay distinct in print: blue, orange, green, red, purple, brown.
const SERIES: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Confusion matrix heatmap: rows are true labels (top to bottom), columns predicted labels;
/// the colour is the share of the row, the text the count.
pub fn confusion_heatmap(matrix: &ConfusionMatrix, title: &str) -> Result<String> {
    let n = matrix.labels.len();
    let last = n.saturating_sub(1);
    let longest = matrix
        .labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1);
    let label_area = (longest as u32 * 8 + 20).clamp(60, 200);
    let cell = if n <= 4 { 90 } else { (480 / n as u32).max(28) };
    // Column labels are written horizontally under the cells: 50 px is enough for them.
    let size = (label_area + cell * n as u32 + 30, 50 + cell * n as u32 + 60);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(label_area)
            // A segmented 0..k range has k + 1 segments; n labels need 0..n - 1.
            .build_cartesian_2d((0..last).into_segmented(), (0..last).into_segmented())
            .map_err(plot_error)?;
        let name = |value: &SegmentValue<usize>, flip: bool| match value {
            SegmentValue::CenterOf(i) if *i < n => {
                let index = if flip { n - 1 - *i } else { *i };
                matrix.labels[index].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(n + 1)
            .y_labels(n + 1)
            .x_label_formatter(&|v| name(v, false))
            .y_label_formatter(&|v| name(v, true))
            .label_style((FONT, 13))
            .draw()
            .map_err(plot_error)?;
        let mut cells = Vec::new();
        let mut texts = Vec::new();
        for (row, counts) in matrix.counts.iter().enumerate() {
            let total: u64 = counts.iter().sum();
            for (column, &count) in counts.iter().enumerate() {
                let share = if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                };
                let y = n - 1 - row;
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)).round() as u8;
                let colour = RGBColor(shade(8), shade(69), shade(148));
                cells.push(Rectangle::new(
                    [
                        (SegmentValue::Exact(column), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(column + 1), SegmentValue::Exact(y + 1)),
                    ],
                    colour.filled(),
                ));
                let text_colour: &'static RGBColor = if share > 0.5 { &WHITE } else { &BLACK };
                let style = TextStyle::from((FONT, 15).into_font())
                    .color(text_colour)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                texts.push(Text::new(
                    format!("{count}"),
                    (SegmentValue::CenterOf(column), SegmentValue::CenterOf(y)),
                    style,
                ));
            }
        }
        chart.draw_series(cells).map_err(plot_error)?;
        chart.draw_series(texts).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Named line series on the unit square, optionally with the y = x diagonal.
pub struct UnitPlot<'a> {
    pub title: &'a str,
    pub x_description: &'a str,
    pub y_description: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub diagonal: bool,
    /// Mark each point (reliability bins) instead of only joining them.
    pub markers: bool,
}

/// Draws a [`UnitPlot`].
pub fn unit_plot(plot: &UnitPlot) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(plot.title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(plot.x_description)
            .y_desc(plot.y_description)
            .label_style((FONT, 12))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(plot_error)?;
        if plot.diagonal {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    RGBColor(170, 170, 170).stroke_width(1),
                ))
                .map_err(plot_error)?;
        }
        for (index, (name, points)) in plot.series.iter().enumerate() {
            let colour = SERIES[index % SERIES.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            if plot.markers {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(plot_error)?;
            }
        }
        if !plot.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 12))
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// PR curve as the step function whose area is the average precision:
/// precision `P_k` held from recall `R_{k-1}` to `R_k`.
pub fn precision_recall_steps(points: &[CurvePoint]) -> Vec<(f64, f64)> {
    let mut steps = Vec::with_capacity(points.len() * 2);
    let mut previous_recall = 0.0;
    for point in points {
        steps.push((previous_recall, point.y));
        steps.push((point.x, point.y));
        previous_recall = point.x;
    }
    steps
}

/// Reliability diagram of several calibration methods.
pub fn reliability_plot(methods: &[MethodResult], title: &str) -> Result<String> {
    let series = methods
        .iter()
        .map(|m| {
            let name = format!(
                "{} (ECE {:.3})",
                method_name(m),
                m.expected_calibration_error
            );
            let points = m
                .reliability
                .bins
                .iter()
                .map(|b| (b.mean_confidence, b.frequency))
                .collect();
            (name, points)
        })
        .collect();
    unit_plot(&UnitPlot {
        title,
        x_description: "mean predicted probability",
        y_description: "observed frequency",
        series,
        diagonal: true,
        markers: true,
    })
}

pub(crate) fn method_name(method: &MethodResult) -> &'static str {
    match method.method {
        crate::calibration::CalibrationMethod::Uncalibrated => "uncalibrated",
        crate::calibration::CalibrationMethod::Temperature => "temperature",
        crate::calibration::CalibrationMethod::Isotonic => "isotonic",
    }
}

/// The sweep as a surface: one cell per (review, demote) pair coloured by the objective
/// (darker is better), cells over the review cap grey, the chosen point ringed.
pub fn sweep_surface(result: &crate::policy::SweepResult) -> Result<String> {
    use crate::policy::SweepObjective;
    let value = |p: &crate::policy::OperatingPoint| match &result.objective {
        SweepObjective::MacroF1 { .. } => p.macro_f1,
        SweepObjective::ExpectedCost(_) => -p.expected_cost.unwrap_or(f64::INFINITY),
    };
    let feasible = |p: &crate::policy::OperatingPoint| match &result.objective {
        SweepObjective::MacroF1 {
            max_review_fraction,
        } => p.review_fraction <= *max_review_fraction + 1e-12,
        SweepObjective::ExpectedCost(_) => true,
    };
    let values: Vec<f64> = result
        .points
        .iter()
        .filter(|p| feasible(p))
        .map(value)
        .filter(|v| v.is_finite())
        .collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let half = result.step / 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let title = match &result.objective {
            SweepObjective::MacroF1 { .. } => "sweep: macro-F1 after review (darker is better)",
            SweepObjective::ExpectedCost(_) => "sweep: expected cost (darker is cheaper)",
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 14))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(-half..1.0 + half, -half..1.0 + half)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("review threshold")
            .y_desc("demote threshold")
            .label_style((FONT, 12))
            .draw()
            .map_err(plot_error)?;
        let cells = result.points.iter().map(|p| {
            let (x, y) = (p.thresholds.review, p.thresholds.demote);
            let colour = if !feasible(p) || !value(p).is_finite() {
                RGBColor(225, 225, 225)
            } else {
                let share = if high > low {
                    (value(p) - low) / (high - low)
                } else {
                    1.0
                };
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)).round() as u8;
                RGBColor(shade(8), shade(69), shade(148))
            };
            Rectangle::new(
                [(x - half, y - half), (x + half, y + half)],
                colour.filled(),
            )
        });
        chart.draw_series(cells).map_err(plot_error)?;
        if let Some(best) = &result.best {
            let point = (best.thresholds.review, best.thresholds.demote);
            chart
                .draw_series([Circle::new(point, 7, SERIES[3].stroke_width(3))])
                .map_err(plot_error)?
                .label(format!("chosen ({:.2}, {:.2})", point.0, point.1))
                .legend(|(x, y)| Circle::new((x + 8, y), 5, SERIES[3].stroke_width(2)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 12))
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
