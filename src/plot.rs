//! The backtest picture: actuals, forecast means and CI95 bands as a PNG. The only module
//! that knows plotters.
//!
//! Text goes through plotters' `ab_glyph` feature with a font read at run time, because the `ttf`
//! feature needs fontconfig/freetype. Without any font the picture is still drawn, only without
//! title, axis labels and legend: a missing font must never fail a `validate` or `run`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use chrono::{Days, NaiveDate};
use plotters::chart::SeriesAnno;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One origin's forecast path for the picture.
pub struct PathForecast {
    pub origin_date: NaiveDate,
    pub dates: Vec<NaiveDate>,
    pub mean: Vec<f64>,
    pub ci95: Vec<[f64; 2]>,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;

/// Family name plotters looks up for every text style used here.
const FONT_FAMILY: &str = "sans-serif";

/// Regular sans fonts at their usual places (Debian/Ubuntu, Arch, Fedora, macOS, Windows).
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

const ACTUAL_COLOR: RGBColor = RGBColor(25, 25, 25);
/// One colour per origin, cycled; distinct enough to tell overlapping bands apart.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
/// Opacity of a CI95 band: light enough that the actuals and other bands show through.
const BAND_ALPHA: f64 = 0.15;

/// Writes the PNG (creates parent directories). `actual` is (date, value) over the window, NaN = missing.
pub fn backtest_png(
    path: &Path,
    title: &str,
    actual: &[(NaiveDate, f64)],
    paths: &[PathForecast],
) -> Result<()> {
    draw(path, title, actual, paths, font_available())
}

/// Registers the first readable font once per process; false when none could be used.
fn font_available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let found = FONT_PATHS
            .iter()
            .any(|candidate| register_font(Path::new(candidate)));
        if !found {
            tracing::warn!(
                "no font found in {}; backtest pictures are drawn without text",
                FONT_PATHS.join(", ")
            );
        }
        found
    })
}

fn register_font(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // plotters keeps registered fonts for the whole process and borrows them as 'static; this runs
    // inside a OnceLock, so at most one buffer per candidate path is leaked.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok()
}

/// Draws with or without text; separate from [`backtest_png`] so both cases are testable in one process.
fn draw(
    path: &Path,
    title: &str,
    actual: &[(NaiveDate, f64)],
    paths: &[PathForecast],
    text: bool,
) -> Result<()> {
    // The bitmap backend picks its encoder from the extension; say so before drawing anything.
    if !path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("png"))
    {
        bail!("backtest picture {} must have a .png extension", path.display());
    }
    for p in paths {
        if p.mean.len() != p.dates.len() || p.ci95.len() != p.dates.len() {
            bail!(
                "cannot draw {}: the path from origin {} has {} dates, {} means and {} CI95 bounds \
                 (they must be equal)",
                path.display(),
                p.origin_date,
                p.dates.len(),
                p.mean.len(),
                p.ci95.len()
            );
        }
    }
    let (x_range, y_range) = extents(actual, paths).ok_or_else(|| {
        anyhow!(
            "cannot draw {}: neither actuals nor forecasts have any date",
            path.display()
        )
    })?;
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|err| {
            anyhow!(
                "cannot create directory {} for backtest picture {}: {err} \
                 (check that it is a writable directory)",
                parent.display(),
                path.display()
            )
        })?;
    }
    render(path, title, actual, paths, text, x_range, y_range).map_err(|err| {
        anyhow!(
            "cannot write backtest picture {}: {err:#} (check that the directory is writable)",
            path.display()
        )
    })
}

/// Date and value ranges covering everything drawn, padded so lines do not touch the frame.
fn extents(
    actual: &[(NaiveDate, f64)],
    paths: &[PathForecast],
) -> Option<((NaiveDate, NaiveDate), (f64, f64))> {
    let dates = actual
        .iter()
        .map(|(d, _)| *d)
        .chain(paths.iter().flat_map(|p| p.dates.iter().copied()));
    let (first, last) = dates.fold(None, |acc: Option<(NaiveDate, NaiveDate)>, d| match acc {
        None => Some((d, d)),
        Some((lo, hi)) => Some((lo.min(d), hi.max(d))),
    })?;
    // A one-day window would be an empty coordinate range.
    let last = if last == first { first + Days::new(1) } else { last };

    let values = actual.iter().map(|(_, v)| *v).chain(paths.iter().flat_map(|p| {
        p.mean
            .iter()
            .copied()
            .chain(p.ci95.iter().flat_map(|b| b.iter().copied()))
    }));
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        // Nothing finite at all: an empty but valid frame.
        .unwrap_or((0.0, 1.0));
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.05 * span
    } else {
        0.01 * lo.abs().max(1.0)
    };
    Some(((first, last), (lo - pad, hi + pad)))
}

/// Consecutive runs of the present items: a missing value breaks a line instead of bridging it.
fn runs<T>(items: impl IntoIterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut current = Vec::new();
    for item in items {
        if let Some(item) = item {
            current.push(item);
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn render(
    path: &Path,
    title: &str,
    actual: &[(NaiveDate, f64)],
    paths: &[PathForecast],
    text: bool,
    (first, last): (NaiveDate, NaiveDate),
    (y_lo, y_hi): (f64, f64),
) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;

    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    // Label areas are where axis text goes; without a font they must not exist at all, since
    // plotters would try to lay out text in them and fail.
    if text {
        builder
            .caption(title, (FONT_FAMILY, 22))
            .x_label_area_size(40)
            .y_label_area_size(75)
            // Room for the last date label, which is centred on the right edge.
            .margin_right(40);
    }
    let mut chart = builder.build_cartesian_2d(first..last, y_lo..y_hi)?;

    let date_label = |d: &NaiveDate| d.format("%Y-%m-%d").to_string();
    let clp_label = |v: &f64| format!("{v:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(8)
        .y_labels(8)
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240));
    if text {
        mesh.x_label_formatter(&date_label)
            .y_label_formatter(&clp_label)
            .y_desc("CLP per USD")
            .label_style((FONT_FAMILY, 13))
            .axis_desc_style((FONT_FAMILY, 14));
    }
    mesh.draw()?;

    // Bands first, so every line stays visible on top of every band.
    for (i, p) in paths.iter().enumerate() {
        let band_style = PALETTE[i % PALETTE.len()].mix(BAND_ALPHA).filled();
        let bands = runs(
            p.dates
                .iter()
                .zip(&p.ci95)
                .map(|(d, [lo, hi])| (lo.is_finite() && hi.is_finite()).then_some((*d, *lo, *hi))),
        );
        for band in bands {
            if let [(d, lo, hi)] = band[..] {
                // A one-day band has no width: show it as a vertical bar.
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(d, lo), (d, hi)],
                    band_style,
                )))?;
            } else {
                let outline: Vec<(NaiveDate, f64)> = band
                    .iter()
                    .map(|(d, _, hi)| (*d, *hi))
                    .chain(band.iter().rev().map(|(d, lo, _)| (*d, *lo)))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(outline, band_style)))?;
            }
        }
    }

    for (i, p) in paths.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // A thin mark where the forecast was made, when the window shows that day.
        if (first..=last).contains(&p.origin_date) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(p.origin_date, y_lo), (p.origin_date, y_hi)],
                color.mix(0.5).stroke_width(1),
            )))?;
        }
        let lines = runs(
            p.dates
                .iter()
                .zip(&p.mean)
                .map(|(d, m)| m.is_finite().then_some((*d, *m))),
        );
        draw_runs(&mut chart, &lines, color, |anno| {
            if text {
                anno.label(format!("origin {}: mean and CI95", p.origin_date))
                    .legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + Rectangle::new([(0, -6), (20, 6)], color.mix(BAND_ALPHA).filled())
                            + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(2))
                    });
            }
        })?;
    }

    let lines = runs(actual.iter().map(|(d, v)| v.is_finite().then_some((*d, *v))));
    draw_runs(&mut chart, &lines, ACTUAL_COLOR, |anno| {
        if text {
            anno.label("actual")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ACTUAL_COLOR.stroke_width(2)));
        }
    })?;
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT_FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

type DateChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedDate<NaiveDate>, RangedCoordf64>>;

/// Draws each run as a 2 px line (a lone point as a dot); `legend` may label the line series.
fn draw_runs<'a, 'b>(
    chart: &mut DateChart<'a, 'b>,
    lines: &[Vec<(NaiveDate, f64)>],
    color: RGBColor,
    legend: impl FnOnce(&mut SeriesAnno<'a, BitMapBackend<'b>>),
) -> Result<()> {
    let dots: Vec<(NaiveDate, f64)> = lines.iter().filter(|l| l.len() == 1).map(|l| l[0]).collect();
    chart.draw_series(
        dots.into_iter()
            .map(|point| Circle::new(point, 2, color.filled())),
    )?;
    let anno = chart.draw_series(
        lines
            .iter()
            .filter(|l| l.len() > 1)
            .map(|l| PathElement::new(l.clone(), color.stroke_width(2))),
    )?;
    legend(anno);
    Ok(())
}

/// One line of the cumulative-error picture.
pub struct Curve {
    pub label: String,
    pub points: Vec<(NaiveDate, f64)>,
}

/// The replay picture: one panel per horizon stacked vertically, each with its curves
/// (cumulative squared error of policy, static configs and random walk) and a vertical mark
/// at every deploy.
pub fn cumulative_png(path: &Path, panels: &[(String, Vec<Curve>, Vec<NaiveDate>)]) -> Result<()> {
    if !path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("png"))
    {
        bail!("replay picture {} must have a .png extension", path.display());
    }
    if panels.is_empty() {
        bail!("cannot draw {}: no horizon to show", path.display());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|err| anyhow!("cannot create directory {}: {err}", parent.display()))?;
    }
    let text = font_available();
    let height = 300 * panels.len() as u32;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))?;
    for (area, (title, curves, marks)) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        cumulative_panel(area, title, curves, marks, text)
            .map_err(|e| anyhow!("cannot draw {}: {e:#}", path.display()))?;
    }
    root.present()
        .map_err(|e| anyhow!("cannot write replay picture {}: {e}", path.display()))?;
    Ok(())
}

fn cumulative_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    curves: &[Curve],
    marks: &[NaiveDate],
    text: bool,
) -> Result<()> {
    let dates = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let (first, last) = dates
        .fold(None, |acc: Option<(NaiveDate, NaiveDate)>, d| match acc {
            None => Some((d, d)),
            Some((lo, hi)) => Some((lo.min(d), hi.max(d))),
        })
        .ok_or_else(|| anyhow!("panel {title} has no points"))?;
    let last = if last == first { first + Days::new(1) } else { last };
    let top = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.05;
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(title, (FONT_FAMILY, 18))
            .x_label_area_size(30)
            .y_label_area_size(80)
            .margin_right(40);
    }
    let mut chart = builder.build_cartesian_2d(first..last, 0.0..top)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(8)
        .y_labels(6)
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240));
    // Month labels repeat over a short period: show days there.
    let long = (last - first).num_days() > 365;
    let date_label = move |d: &NaiveDate| d.format(if long { "%Y-%m" } else { "%Y-%m-%d" }).to_string();
    let value_label = |v: &f64| format!("{v:.0}");
    if text {
        mesh.x_label_formatter(&date_label)
            .y_label_formatter(&value_label)
            .y_desc("cumulative squared error (CLP²)")
            .label_style((FONT_FAMILY, 12))
            .axis_desc_style((FONT_FAMILY, 12));
    }
    mesh.draw()?;
    for d in marks.iter().filter(|d| (first..=last).contains(*d)) {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(*d, 0.0), (*d, top)],
            PALETTE[3].mix(0.35).stroke_width(1),
        )))?;
    }
    for (i, c) in curves.iter().enumerate() {
        let color = [PALETTE[0], PALETTE[2], ACTUAL_COLOR][i % 3];
        let s = chart.draw_series(std::iter::once(PathElement::new(
            c.points.clone(),
            color.stroke_width(2),
        )))?;
        if text {
            let label = c.label.clone();
            s.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT_FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 1).unwrap() + Days::new(n)
    }

    /// Forty days of a wavy series with a two-day hole, and three origins a week apart.
    fn sample() -> (Vec<(NaiveDate, f64)>, Vec<PathForecast>) {
        let actual: Vec<(NaiveDate, f64)> = (0..40_u32)
            .map(|i| {
                let v = if (17..19).contains(&i) {
                    f64::NAN
                } else {
                    930.0 + 12.0 * (f64::from(i) / 4.0).sin()
                };
                (day(u64::from(i)), v)
            })
            .collect();
        let paths = [10_u32, 20, 30]
            .iter()
            .map(|&origin| {
                let dates: Vec<NaiveDate> = (1..=7).map(|h| day(u64::from(origin + h))).collect();
                let mean: Vec<f64> = (1..=7)
                    .map(|h| 925.0 + f64::from(origin) * 0.3 + f64::from(h))
                    .collect();
                let ci95 = (1..=7_u32)
                    .zip(&mean)
                    .map(|(h, m)| [m - 4.0 * f64::from(h), m + 4.0 * f64::from(h)])
                    .collect();
                PathForecast {
                    origin_date: day(u64::from(origin)),
                    dates,
                    mean,
                    ci95,
                }
            })
            .collect();
        (actual, paths)
    }

    fn count(img: &image::RgbImage, pred: impl Fn([u8; 3]) -> bool) -> usize {
        img.pixels().filter(|p| pred(p.0)).count()
    }

    /// What a band of `c` alone looks like over the white background.
    fn band_over_white(c: RGBColor) -> [u8; 3] {
        let blend = |x: u8| (f64::from(x) * BAND_ALPHA + 255.0 * (1.0 - BAND_ALPHA)).round() as u8;
        [blend(c.0), blend(c.1), blend(c.2)]
    }

    fn near(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 2)
    }

    /// The PNG signature, the IHDR size, and every drawn element visible in the decoded pixels.
    fn check_picture(file: &Path) -> image::RgbImage {
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1000, 500));

        let img = image::open(file).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1000, 500));
        let white = count(&img, |p| p == [255, 255, 255]);
        assert!(
            white > 250_000,
            "background should be mostly white, {white} white pixels"
        );
        let actual = count(&img, |p| p == [ACTUAL_COLOR.0, ACTUAL_COLOR.1, ACTUAL_COLOR.2]);
        assert!(actual > 800, "actual line: {actual} pixels");
        for (i, c) in PALETTE.iter().take(3).enumerate() {
            let line = count(&img, |p| p == [c.0, c.1, c.2]);
            assert!(line > 100, "mean line of origin {i}: {line} pixels");
            let band = count(&img, |p| near(p, band_over_white(*c)));
            assert!(band > 1000, "CI95 band of origin {i}: {band} pixels");
        }
        // Only three origins were given, so the fourth colour must not appear.
        let c = PALETTE[3];
        assert_eq!(count(&img, |p| p == [c.0, c.1, c.2]), 0);
        img
    }

    /// Pixels matching `pred` inside columns `xs` and rows `ys`.
    fn count_in(
        img: &image::RgbImage,
        xs: std::ops::Range<u32>,
        ys: std::ops::Range<u32>,
        pred: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| pred(img.get_pixel(x, y).0))
            .count()
    }

    /// Darker than mid-grey: text, axes and the actuals.
    fn dark(p: [u8; 3]) -> bool {
        p.iter().all(|&c| c < 128)
    }

    #[test]
    fn writes_a_1000x500_png_with_actuals_means_and_bands() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reports/run-1/7d.png");
        let (actual, paths) = sample();
        backtest_png(&file, "USD/CLP 7d backtest", &actual, &paths).unwrap();
        let img = check_picture(&file);
        if font_available() {
            // The title above the plot, the CLP tick labels left of it and the dates below it.
            assert!(count_in(&img, 0..1000, 0..40, dark) > 100, "title");
            assert!(count_in(&img, 0..60, 40..440, dark) > 100, "y tick labels");
            assert!(count_in(&img, 0..1000, 460..500, dark) > 100, "x tick labels");
        } else {
            assert_eq!(
                count_in(&img, 0..1000, 0..40, dark),
                0,
                "no font, yet something was written as a title"
            );
        }
    }

    #[test]
    fn draws_without_any_font() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("no-text.png");
        let (actual, paths) = sample();
        draw(&file, "a title that must not appear", &actual, &paths, false).unwrap();
        let img = check_picture(&file);
        // Only the 15 px margin surrounds the plot: no caption, no label areas. So the actuals start
        // at the left margin (the first date is the left edge), and the three origin marks (25 rows
        // each) and the top of the last band are where a caption would otherwise be.
        let is_actual = |p: [u8; 3]| p == [ACTUAL_COLOR.0, ACTUAL_COLOR.1, ACTUAL_COLOR.2];
        let coloured = |p: [u8; 3]| p.iter().max().unwrap() - p.iter().min().unwrap() > 20;
        assert!(
            count_in(&img, 12..25, 0..500, is_actual) > 0,
            "the plot does not start at the left margin"
        );
        assert!(
            count_in(&img, 0..1000, 12..40, coloured) > 60,
            "the plot does not start at the top margin"
        );
        assert_eq!(
            count_in(&img, 0..1000, 0..12, dark),
            0,
            "something was drawn in the top margin"
        );
    }

    #[test]
    fn unwritable_location_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"a file, not a directory").unwrap();
        let file = blocker.join("7d.png");
        let (actual, paths) = sample();
        let err = backtest_png(&file, "t", &actual, &paths).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn inconsistent_path_lengths_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.png");
        let (actual, mut paths) = sample();
        paths[1].ci95.pop();
        let err = backtest_png(&file, "t", &actual, &paths).unwrap_err().to_string();
        assert!(
            err.contains(&file.display().to_string()) && err.contains("2024-03-21"),
            "{err}"
        );
        assert!(!file.exists());
    }

    #[test]
    fn nothing_dated_and_non_png_names_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.png");
        let err = backtest_png(&empty, "t", &[], &[]).unwrap_err().to_string();
        assert!(err.contains(&empty.display().to_string()), "{err}");
        let jpeg = dir.path().join("x.jpg");
        let (actual, paths) = sample();
        let err = backtest_png(&jpeg, "t", &actual, &paths).unwrap_err().to_string();
        assert!(
            err.contains(&jpeg.display().to_string()) && err.contains(".png"),
            "{err}"
        );
    }

    #[test]
    fn missing_values_split_runs() {
        let got = runs([Some(1), Some(2), None, None, Some(3), None, Some(4), Some(5)]);
        assert_eq!(got, vec![vec![1, 2], vec![3], vec![4, 5]]);
        assert!(runs(std::iter::empty::<Option<u8>>()).is_empty());
    }

    #[test]
    fn extents_pad_values_and_widen_a_single_day() {
        let (x, y) = extents(&[(day(0), 100.0)], &[]).unwrap();
        assert_eq!(x, (day(0), day(1)));
        assert!((y.0 - 99.0).abs() < 1e-9 && (y.1 - 101.0).abs() < 1e-9, "{y:?}");
        let (_, paths) = sample();
        let (x, y) = extents(&[], &paths).unwrap();
        assert_eq!(x, (day(11), day(37)));
        // Origin 10, step 7: mean 928 + 7, low bound 935 - 28; origin 30, step 7: high bound 941 + 28.
        let (lo, hi) = (907.0, 969.0);
        let pad = 0.05 * (hi - lo);
        assert!(
            (y.0 - (lo - pad)).abs() < 1e-9 && (y.1 - (hi + pad)).abs() < 1e-9,
            "{y:?}"
        );
    }
}
