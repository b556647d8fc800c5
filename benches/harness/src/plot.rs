//! `--plot FILE`: messages/s (and the offered rate) above, p99 message latency (and the
//! SLO) below, per second of the run, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::report::LoadReport;

/// The offered rate and the SLO, apart from the black grid.
const GUIDE: RGBColor = RGBColor(0, 140, 60);
const WIDTH: u32 = 960;
const HEIGHT: u32 = 640;

pub fn draw(path: &Path, r: &LoadReport) -> Result<(), String> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    draw_on(&root, r).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_on(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    r: &LoadReport,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    let end = r.series.len().max(1) as f64;
    let full: Vec<_> = r.series.iter().filter(|p| p.span >= 0.5).collect();

    let rate_max = full
        .iter()
        .map(|p| p.messages_per_s.max(p.offered_rate.unwrap_or(0.0)))
        .fold(1.0, f64::max)
        * 1.1;
    let mut rate = ChartBuilder::on(&top)
        .caption(
            format!("{}: {} connections, tls {}", r.target, r.connections, r.tls),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..rate_max)?;
    rate.configure_mesh()
        .x_desc("seconds")
        .y_desc("messages/s")
        .draw()?;
    rate.draw_series(LineSeries::new(
        full.iter().map(|p| (p.t as f64 + 0.5, p.messages_per_s)),
        BLUE.stroke_width(2),
    ))?
    .label("accepted")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    if full.iter().any(|p| p.offered_rate.is_some()) {
        rate.draw_series(LineSeries::new(
            full.iter()
                .filter_map(|p| p.offered_rate.map(|o| (p.t as f64 + 0.5, o))),
            GUIDE.stroke_width(1),
        ))?
        .label("offered")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GUIDE));
    }
    rate.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;

    let slo = r.slo.as_ref().map(|s| s.p99_ms);
    let p99_max = full
        .iter()
        .filter_map(|p| p.p99_ms)
        .fold(slo.unwrap_or(1.0), f64::max)
        * 1.1;
    let mut lat = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..p99_max)?;
    lat.configure_mesh()
        .x_desc("seconds")
        .y_desc("p99 message latency, ms")
        .draw()?;
    lat.draw_series(LineSeries::new(
        full.iter()
            .filter_map(|p| p.p99_ms.map(|q| (p.t as f64 + 0.5, q))),
        RED.stroke_width(2),
    ))?
    .label("p99")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    if let Some(limit) = slo {
        lat.draw_series(LineSeries::new([(0.0, limit), (end, limit)], GUIDE))?
            .label("SLO")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GUIDE));
    }
    lat.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}
