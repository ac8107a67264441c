//! `--plot FILE.svg|FILE.png`: the time series as a line chart (plotters).
//!
//! Without group fields every aggregate column is a line (hits and unique IPs per minute on
//! one chart); with group fields, each group (the first ten) is a line of the last aggregate.
//! Text is laid out (both formats) and rasterised (PNG) with ab_glyph from a TrueType font
//! found on the system (DejaVu Sans on Debian: fonts-dejavu-core, which scripts/test
//! installs), so neither fontconfig nor freetype is needed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;

use crate::output::Table;
use crate::timefmt;

const SIZE: (u32, u32) = (1200, 600);
const MAX_LINES: usize = 10;

/// TrueType fonts tried for PNG text, in order.
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

type Series = Vec<(String, Vec<(i64, f64)>)>;

fn series(t: &Table) -> Result<Series> {
    if !t.time_series {
        bail!("--plot needs a time series: add --by minute (or another span)");
    }
    let ngroup = t.header.len() - 1 - t.rows.first().map_or(0, |_| count_aggs(t));
    let time = |r: &[crate::agg::Cell]| -> Option<i64> {
        timefmt::parse_iso(crate::output::text(&r[0]).as_bytes())
    };
    let mut out: Series = Vec::new();
    if ngroup == 0 {
        for (c, name) in t.header.iter().enumerate().skip(1) {
            let pts = t
                .rows
                .iter()
                .filter_map(|r| Some((time(r)?, r[c].sort_num().unwrap_or(0.0))))
                .collect();
            out.push((name.clone(), pts));
        }
    } else {
        let mut by: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for r in &t.rows {
            let key: Vec<String> = r[1..=ngroup].iter().map(crate::output::text).collect();
            if let Some(ts) = time(r) {
                let v = r.last().and_then(|c| c.sort_num()).unwrap_or(0.0);
                by.entry(key.join(" ")).or_default().push((ts, v));
            }
        }
        out.extend(by.into_iter().take(MAX_LINES));
    }
    Ok(out)
}

/// Aggregate columns are the trailing ones that are all numeric or empty.
fn count_aggs(t: &Table) -> usize {
    (1..t.header.len())
        .rev()
        .take_while(|&c| {
            t.rows
                .iter()
                .all(|r| !matches!(r[c], crate::agg::Cell::Text(_)))
        })
        .count()
        .max(1)
}

/// Axis ticks on round times (every 1, 2, 5, 10, 15, 30 minutes, 1, 2, 3, 6, 12 hours or
/// N days), about ten of them, so labels read 06:00, 06:05, ... rather than odd seconds.
fn time_ticks(x0: i64, x1: i64) -> Vec<i64> {
    const STEPS: [i64; 17] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    ];
    let span = (x1 - x0).max(1);
    let step = STEPS
        .iter()
        .map(|s| s * 60)
        .find(|s| span / s <= 12)
        .unwrap_or_else(|| (span / 12 / 86400 + 1) * 86400);
    let mut t = x0.div_euclid(step) * step;
    if t < x0 {
        t += step;
    }
    let mut ticks = Vec::new();
    while t <= x1 && ticks.len() < 100 {
        ticks.push(t);
        t += step;
    }
    ticks
}

fn register_font() -> Result<()> {
    for p in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(p) {
            // plotters keeps registered fonts for the process lifetime.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| anyhow!("{p}: not a usable TrueType font"))?;
            return Ok(());
        }
    }
    bail!("--plot needs a TrueType font such as DejaVu Sans (Debian: apt-get install fonts-dejavu-core)")
}

/// A tick value as people read it: `950`, `1.5k`, `2M`, `0.25`.
fn human(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

/// The y axis' name: with groups, the aggregate each group's line shows; else the one
/// aggregate, or "value" for several.
fn y_label(t: &Table, s: &Series) -> String {
    let grouped = t.header.len() - 1 > count_aggs(t);
    match (grouped, s.len()) {
        (true, _) => t.header.last().cloned().unwrap_or_default(),
        (false, 1) => s[0].0.clone(),
        _ => "value".to_string(),
    }
}

pub fn render(t: &Table, path: &Path, title: Option<&str>) -> Result<()> {
    let s = series(t)?;
    let y = y_label(t, &s);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => {
            register_font()?;
            draw(
                SVGBackend::new(path, SIZE).into_drawing_area(),
                &s,
                title,
                &y,
            )
        }
        Some("png") => {
            register_font()?;
            draw(
                BitMapBackend::new(path, SIZE).into_drawing_area(),
                &s,
                title,
                &y,
            )
        }
        _ => bail!("--plot {}: use a .svg or .png file name", path.display()),
    }
    .with_context(|| format!("drawing {}", path.display()))
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    s: &Series,
    title: Option<&str>,
    y_desc: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    area.fill(&WHITE).map_err(err)?;
    let pts = s.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut ymax) = (i64::MAX, i64::MIN, 0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        ymax = ymax.max(y);
    }
    if x0 > x1 {
        bail!("nothing to plot");
    }
    if x0 == x1 {
        x1 = x0 + 60;
    }
    let span = x1 - x0;
    let label = move |x: &i64| {
        let s = timefmt::format_time(*x);
        if span < 86400 {
            s.get(11..16).unwrap_or(&s).to_string()
        } else {
            s.get(..16).unwrap_or(&s).to_string()
        }
    };
    let default_title = s
        .iter()
        .map(|x| x.0.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut chart = ChartBuilder::on(&area)
        .caption(title.unwrap_or(&default_title), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0..x1).with_key_points(time_ticks(x0, x1)),
            0f64..(ymax * 1.05).max(1.0),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&label)
        .x_desc(format!("time ({})", crate::zone::label()))
        .y_label_formatter(&|v: &f64| human(*v))
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for (i, (name, p)) in s.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::time_ticks;

    #[test]
    fn tick_values_read_well() {
        use super::human;
        assert_eq!(human(950.0), "950");
        assert_eq!(human(15_000.0), "15k");
        assert_eq!(human(1_250_000.0), "1.25M");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(3.0e9), "3G");
    }

    #[test]
    fn ticks_fall_on_round_times() {
        // 06:00:30 .. 06:12:00 → every minute from 06:01.
        let base = 1_795_413_600; // a whole hour
        let t = time_ticks(base + 30, base + 720);
        assert_eq!(t.first(), Some(&(base + 60)));
        assert!(t.windows(2).all(|w| w[1] - w[0] == 60));
        // A day → every 2 hours, on the hour.
        let t = time_ticks(base, base + 86_400);
        assert!(t.iter().all(|x| x % 7200 == 0) && t.len() <= 13, "{t:?}");
        // A year → whole days.
        let t = time_ticks(base, base + 365 * 86_400);
        assert!(t.iter().all(|x| x % 86_400 == 0) && t.len() <= 13, "{t:?}");
    }
}
