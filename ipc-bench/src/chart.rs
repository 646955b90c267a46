//! chart.svg: every measured row as a bar of its ratio to the group's floor (log scale),
//! drawn with plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::catalog::{Kind, Metric};
use crate::report::{Report, Status};

struct Bar {
    label: String,
    ratio: f64,
    kind: Kind,
}

fn bars(r: &Report) -> Vec<Bar> {
    let mut out = Vec::new();
    for g in &r.groups {
        for row in &g.rows {
            let (Some(v), Status::Ok) = (row.vs_floor, row.status) else { continue };
            if Some(&row.id) == g.floor.as_ref() {
                continue;
            }
            // Throughput ratios are inverted so that, as for times, longer bars are slower.
            let ratio = if g.metric == Metric::Throughput && v > 0.0 { 1.0 / v } else { v };
            out.push(Bar { label: format!("{} · {}", g.id, row.label), ratio, kind: row.kind });
        }
    }
    out
}

/// Draw the chart to `path`.
///
/// # Errors
/// The plotting backend's error, as text.
pub fn draw(r: &Report, path: &Path) -> Result<(), String> {
    let bars = bars(r);
    let n = bars.len().max(1);
    let height = (80 + 18 * n) as u32;
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let lo = bars.iter().map(|b| b.ratio).fold(1.0f64, f64::min).max(1e-3) / 1.5;
    let hi = bars.iter().map(|b| b.ratio).fold(1.0f64, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ipc-bench: time relative to the floor of the same run (log; 1 = floor; throughput inverted) · blue ours, orange peers, grey floors",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(520)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        // Not 0: plotters loops computing key points for zero labels; the text is ours.
        .y_labels(1)
        .y_label_formatter(&|_| String::new())
        .x_labels(8)
        .x_desc("ratio to floor")
        .draw()
        .map_err(|e| e.to_string())?;
    // Row labels drawn at each bar's own centre (plotters' segmented key points can repeat).
    let style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, b) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, SegmentValue::CenterOf(n - 1 - i)));
        root.draw(&Text::new(b.label.clone(), (x - 6, y), style.clone()))
            .map_err(|e| e.to_string())?;
    }
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let y = n - 1 - i;
            let color = match b.kind {
                Kind::Ours => RGBColor(0x1f, 0x77, 0xb4),
                Kind::Peer => RGBColor(0xff, 0x7f, 0x0e),
                Kind::Floor => RGBColor(0x7f, 0x7f, 0x7f),
            };
            let mut rect = Rectangle::new(
                [(lo, SegmentValue::Exact(y)), (b.ratio.max(lo), SegmentValue::Exact(y + 1))],
                color.filled(),
            );
            rect.set_margin(2, 2, 0, 0);
            rect
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
