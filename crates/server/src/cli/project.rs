//! `berth project`: creating and listing projects.

use berth_app::manage::{ProjectRequest, Projects};
use berth_meta::ListQuery;
use clap::Subcommand;

use super::DataArgs;
use super::offline;
use super::output::{table, utc, yes_no};

/// The `project` commands.
#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create(CreateArgs),
    /// List the projects.
    List(ListArgs),
}

/// `berth project create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Name: lower-case letters and digits, separated by '.', '_' or '-'.
    name: String,
    /// Anyone, anonymous callers included, may pull from it.
    #[arg(long)]
    public: bool,
    /// The user who owns it and becomes its project administrator (by default it has
    /// no owner, and only system administrators manage it).
    #[arg(long, value_name = "USER")]
    owner: Option<String>,
    /// Storage limit in bytes, -1 for none (by default the `storage_per_project`
    /// setting's).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    storage_limit: Option<i64>,
}

/// `berth project list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// Runs a `project` command.
pub fn run(command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create(args) => create(args),
        ProjectCommand::List(args) => list(&args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    offline::run(&args.data, async |offline| {
        let request = ProjectRequest {
            name: args.name.clone(),
            public: Some(args.public),
            owner: args.owner,
            storage_limit: args.storage_limit,
            ..ProjectRequest::default()
        };
        let id = Projects::new(offline.identity.clone())
            .create(&offline.who, request)
            .await?;
        eprintln!("Created the project {:?} (id {id}).", args.name);
        Ok(())
    })
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    offline::run(&args.data, async |offline| {
        let projects = Projects::new(offline.identity.clone())
            .list(&offline.who, &ListQuery::default())
            .await?;
        let rows: Vec<_> = projects
            .items
            .iter()
            .map(|p| {
                [
                    p.id.to_string(),
                    p.name.clone(),
                    yes_no(p.public),
                    p.owner_name.clone(),
                    p.repo_count.to_string(),
                    utc(p.created_at),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                [
                    "ID",
                    "NAME",
                    "PUBLIC",
                    "OWNER",
                    "REPOSITORIES",
                    "CREATED (UTC)"
                ],
                &rows
            )
        );
        Ok(())
    })
}
