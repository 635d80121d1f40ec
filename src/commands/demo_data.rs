//! `demo-data`: writes the seeded synthetic USD/CLP-like series that the repository embeds as
//! `data/usdclp.parquet` (never real data).

use serde::Serialize;

use crate::exit::ExitCode;
use crate::hiargs::DemoDataRequest;
use crate::output::{self, Render};

#[derive(Debug, Serialize)]
struct DemoDataReport {
    file: String,
    rows: usize,
    first: String,
    last: String,
    seed: u64,
}

impl Render for DemoDataReport {
    fn render(&self) -> String {
        format!(
            "wrote {} ({} synthetic business days, {} to {}, seed {})\n",
            self.file, self.rows, self.first, self.last, self.seed
        )
    }
}

pub fn run(args: &DemoDataRequest) -> anyhow::Result<ExitCode> {
    let series = crate::data::demo::synthetic_usdclp(args.seed, args.days, crate::data::demo::DEFAULT_START);
    let dir = &args.out;
    std::fs::create_dir_all(dir)?;
    let file = dir.join("usdclp.parquet");
    crate::data::write_series_parquet(&file, &series)?;
    output::emit(
        args.json,
        &DemoDataReport {
            file: file.display().to_string(),
            rows: series.len(),
            first: series.dates.first().map(ToString::to_string).unwrap_or_default(),
            last: series.dates.last().map(ToString::to_string).unwrap_or_default(),
            seed: args.seed,
        },
    )?;
    Ok(ExitCode::Success)
}
