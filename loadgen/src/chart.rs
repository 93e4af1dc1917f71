//! `chart`: the sweep's figure: offered start rate against p50/p99 start latency and CPU,
//! one panel per scenario, one colour per shard count; SVG and PNG.
//!
//! Input: the sweep's [`Series`]. Output: an SVG text and PNG bytes. Never touches: the
//! file system (the caller writes the files).
//!
//! Drawn with plotters. Text in the PNG needs a font: DejaVu Sans is compiled in
//! (`loadgen/fonts/`, with its license), so a chart looks the same on every machine and
//! nothing depends on the fonts a system happens to have. The SVG names the font family
//! and leaves the rendering to the viewer.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::sweep::Series;

const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const PANEL: (u32, u32) = (640, 420);
const COLOURS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure here is a build problem.
        register_font("sans-serif", FontStyle::Normal, FONT).unwrap_or_else(|_| panic!("the bundled font is invalid"));
    });
}

/// The chart as SVG text and PNG bytes.
pub fn render(series: &[Series], bound_us: f64, caption: &str) -> Result<(String, Vec<u8>), String> {
    font();
    let scenarios = scenario_order(series);
    let cols = if scenarios.len() > 1 { 2 } else { 1 };
    let rows = scenarios.len().div_ceil(cols).max(1);
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + 40);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, series, &scenarios, (rows, cols), bound_us, caption)
            .map_err(|e| format!("drawing the SVG: {e}"))?;
        root.present().map_err(|e| format!("drawing the SVG: {e}"))?;
    }
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(&root, series, &scenarios, (rows, cols), bound_us, caption)
            .map_err(|e| format!("drawing the PNG: {e}"))?;
        root.present().map_err(|e| format!("drawing the PNG: {e}"))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| format!("encoding the PNG: {e}"))?;
        w.write_image_data(&rgb).map_err(|e| format!("encoding the PNG: {e}"))?;
    }
    Ok((svg, png_bytes))
}

fn scenario_order(series: &[Series]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in series {
        if !v.contains(&s.scenario) {
            v.push(s.scenario.clone());
        }
    }
    v
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[Series],
    scenarios: &[String],
    (rows, cols): (usize, usize),
    bound_us: f64,
    caption: &str,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(caption, ("sans-serif", 16))?;
    let panels = body.split_evenly((rows, cols));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    for (panel, name) in panels.iter().zip(scenarios) {
        let mine: Vec<&Series> = series.iter().filter(|s| &s.scenario == name).collect();
        let pts = mine.iter().flat_map(|s| s.points.iter());
        let (mut lo, mut hi, mut top) = (f64::MAX, 0f64, bound_us * 2.0);
        for p in pts {
            lo = lo.min(p.rate);
            hi = hi.max(p.rate);
            top = top.max(p.p99_us);
        }
        if lo > hi {
            continue;
        }
        // At least a decade, so the log axis has labelled ticks.
        let widen = (10.0 / (hi / lo)).max(1.69).sqrt();
        let (lo, hi) = (lo / widen, hi * widen);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{name}: start latency and CPU vs offered rate"), ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .right_y_label_area_size(44)
            .build_cartesian_2d((lo..hi).log_scale(), (1.0..top * 1.5).log_scale())?
            .set_secondary_coord((lo..hi).log_scale(), 0.0..cores + 0.5);
        chart
            .configure_mesh()
            .x_desc("offered starts/s")
            .y_desc("start latency, µs")
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| short(*y))
            .label_style(("sans-serif", 11))
            .draw()?;
        chart.configure_secondary_axes().y_desc("CPU, cores").label_style(("sans-serif", 11)).draw()?;
        chart
            .draw_series(LineSeries::new([(lo, bound_us), (hi, bound_us)], BLACK.mix(0.4)))?
            .label(format!("p99 bound {} µs", bound_us))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
        for (i, s) in mine.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let mut pts: Vec<_> = s.points.iter().collect();
            pts.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.rate, p.p99_us.max(1.0))), c.stroke_width(2)))?
                .label(format!("{} shard(s) p99", s.shards))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.rate, p.p50_us.max(1.0))), c.mix(0.5)))?
                .label(format!("{} shard(s) p50", s.shards))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.mix(0.5)));
            // Unsustainable points: hollow; sustainable: filled.
            chart.draw_series(pts.iter().map(|p| {
                let style = if p.sustainable { c.filled() } else { c.stroke_width(1) };
                Circle::new((p.rate, p.p99_us.max(1.0)), 3, style)
            }))?;
            chart
                .draw_secondary_series(LineSeries::new(
                    pts.iter().filter_map(|p| p.cpu_cores.map(|cpu| (p.rate, cpu))),
                    c.mix(0.35).stroke_width(1),
                ))?
                .label(format!("{} shard(s) CPU (right axis)", s.shards))
                .legend(move |(x, y)| Rectangle::new([(x, y - 2), (x + 16, y + 2)], c.mix(0.35).filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 10))
            .draw()?;
    }
    Ok(())
}

fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::Point;

    #[test]
    fn a_chart_renders_to_svg_and_png() {
        let point = |rate: f64, p99: f64, ok: bool| Point {
            scenario: "rider".into(),
            shards: 2,
            rate,
            achieved: rate,
            p50_us: p99 / 3.0,
            p99_us: p99,
            cpu_cores: Some(rate / 1e6),
            steal_cores: Some(0.0),
            sustainable: ok,
            why_not: vec![],
        };
        let s = Series {
            scenario: "rider".into(),
            shards: 2,
            points: vec![point(10_000.0, 40.0, true), point(20_000.0, 80.0, true), point(40_000.0, 5000.0, false)],
            max_rate: Some(20_000.0),
            capped: false,
        };
        let (svg, png_bytes) = render(&[s], 1000.0, "test chart").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("test chart") && svg.contains("rider"), "{}", &svg[..200]);
        assert_eq!(&png_bytes[1..4], b"PNG");
        // The PNG has text drawn: some pixels are neither white nor a series colour... at
        // least it is not blank.
        assert!(png_bytes.len() > 5_000, "{} bytes", png_bytes.len());
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(1_000_000.0), "1M");
        assert_eq!(short(250_000.0), "250k");
        assert_eq!(short(1_500.0), "1.5k");
        assert_eq!(short(12.0), "12");
    }
}
