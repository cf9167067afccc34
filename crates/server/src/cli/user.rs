//! `berth user`: creating and listing users.

use berth_app::manage::{NewAccount, Users};
use berth_meta::ListQuery;
use clap::Subcommand;

use super::DataArgs;
use super::offline::{self, PasswordArgs};
use super::output::{table, utc, yes_no};

/// The `user` commands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. Without a password, one is generated and printed once.
    Add(AddArgs),
    /// List the users.
    List(ListArgs),
}

/// `berth user add`.
#[derive(clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Login name.
    name: String,
    /// E-mail address.
    #[arg(long, default_value = "")]
    email: String,
    /// Full name.
    #[arg(long, default_value = "")]
    realname: String,
    /// Make the user a system administrator.
    #[arg(long)]
    admin: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

/// `berth user list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// Runs a `user` command.
pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(args),
        UserCommand::List(args) => list(&args),
    }
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let password = args.password.password()?;
    offline::run(&args.data, async |offline| {
        let account = NewAccount {
            username: args.name.clone(),
            email: args.email,
            realname: args.realname,
            comment: String::new(),
            password: password.secret().to_owned(),
            sysadmin: args.admin,
        };
        let id = Users::new(offline.identity.clone())
            .create(&offline.who, account)
            .await?;
        let what = if args.admin { "administrator" } else { "user" };
        eprintln!("Created the {what} {:?} (id {id}).", args.name);
        password.show_if_generated(&args.name);
        Ok(())
    })
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    offline::run(&args.data, async |offline| {
        let users = Users::new(offline.identity.clone())
            .list(&offline.who, &ListQuery::default())
            .await?;
        let rows: Vec<_> = users
            .items
            .iter()
            .map(|u| {
                [
                    u.id.to_string(),
                    u.username.clone(),
                    u.email.clone(),
                    yes_no(u.sysadmin),
                    utc(u.created_at),
                ]
            })
            .collect();
        print!(
            "{}",
            table(["ID", "USERNAME", "EMAIL", "ADMIN", "CREATED (UTC)"], &rows)
        );
        Ok(())
    })
}
