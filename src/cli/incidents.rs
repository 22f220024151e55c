//! `gema incidents`: incidents (a brand's spike, trends and negative comments as one story),
//! newest and most severe first, and their acknowledge / resolve / reopen.

use chrono::{DateTime, Utc};
use gema::config::Config;
use gema::display::Display;
use gema::query::incidents::{self, StoredIncident};
use gema::query::table;
use gema::store;

use super::query::time_arg;

#[derive(Debug, clap::Args)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    pub action: Option<IncidentAction>,
    /// Incidents active since: a duration ago (15m, 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "24h", value_parser = time_arg)]
    pub since: DateTime<Utc>,
    /// Only this status: open, acknowledged or resolved.
    #[arg(long, value_parser = incidents::STATUSES)]
    pub status: Option<String>,
    /// Most incidents to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub limit: u64,
    /// One JSON object per line instead of a table (times in RFC 3339, UTC, each beside the same
    /// time in the display zone as `<field>_local`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum IncidentAction {
    /// Mark an incident as acknowledged (someone is on it).
    Ack { id: String },
    /// Mark an incident as resolved.
    Resolve { id: String },
    /// Mark an incident as open again.
    Reopen { id: String },
}

/// The incidents as a table: severity, status, movement, when it opened and its newest alert
/// (in the display zone), id, summary, top post. The summary and the top post are the story:
/// they are never cut.
pub fn incidents_table(rows: &[StoredIncident], display: &Display) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|i| {
            let top = i
                .top_post()
                .map(|s| format!("@{} ({}): {}", s.author_handle, s.author_followers, s.url))
                .unwrap_or_default();
            vec![
                i.severity.clone(),
                i.status.clone(),
                i.movement.clone(),
                display.short(i.opened_at),
                display.short(i.last_event_at),
                i.id.clone(),
                i.summary.clone(),
                top,
            ]
        })
        .collect();
    if body.is_empty() {
        return "No incidents.\n".into();
    }
    table::render(
        &[
            "severity",
            "status",
            "movement",
            &display.header("opened"),
            &display.header("last"),
            "id",
            "summary",
            "top post",
        ],
        &body,
        UNCUT,
    )
}

/// Wide enough for any summary and top post: the table never cuts them.
const UNCUT: usize = 1000;

pub async fn run(config: &Config, args: &IncidentsArgs) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    if let Some(action) = &args.action {
        let (id, status) = match action {
            IncidentAction::Ack { id } => (id, "acknowledged"),
            IncidentAction::Resolve { id } => (id, "resolved"),
            IncidentAction::Reopen { id } => (id, "open"),
        };
        anyhow::ensure!(
            incidents::set_status(&store, id, status).await?,
            "no incident with id {id:?} (see `gema incidents`)"
        );
        println!("Incident {id} is now {status}.");
        return Ok(());
    }
    let rows = incidents::list(
        &store,
        args.since,
        Utc::now() + chrono::Duration::minutes(1),
        args.status.as_deref(),
        args.limit,
    )
    .await?;
    let display = config.display();
    if args.json {
        for r in gema::display::json_rows(rows, &display) {
            println!("{r}");
        }
    } else {
        print!("{}", incidents_table(&rows, &display));
    }
    Ok(())
}
