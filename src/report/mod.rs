//! Reports: what was said about the tracked queries over a window, against the window before
//! it (`gema report`), and the daily email digest that sends one (`[digest]`).
//!
//! [`data::build`] reads a [`data::Report`] from ClickHouse; `text` renders it as Markdown or
//! CSV, `html` as a self-contained page with the [`chart`] as a PNG; `email` and `digest` send
//! it by SMTP, now or once a day.

pub mod chart;
pub mod config;
pub mod data;
pub mod digest;
pub mod email;
pub mod html;
pub mod text;

use chrono::{DateTime, Utc};

pub use config::{DigestConfig, SmtpSecurity};
pub use data::{build, Report, ReportOptions};

impl Report {
    /// How the report shows a time to people: date and minute in the display zone, named
    /// (`2026-12-07 15:00 WIB`).
    pub fn show_time(&self, t: DateTime<Utc>) -> String {
        self.display.full(t)
    }
}

/// The output formats of `gema report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Html,
}

/// `report` in `format`: text for Markdown, CSV and HTML (the chart embedded as a data URI).
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Markdown => text::markdown(report),
        Format::Csv => text::csv(report),
        Format::Html => html::page(
            report,
            &chart::draw(&report.chart),
            &html::ChartSrc::Embedded,
        ),
    }
}
