//! `berth admin`: recovering administrative access.

use berth_app::identity::FIRST_ADMIN;
use berth_app::manage::{PasswordChange, Users};
use clap::Subcommand;

use super::DataArgs;
use super::offline::{self, PasswordArgs};

/// The `admin` commands.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Set a user's password (by default the administrator's). Without a password, one
    /// is generated and printed once. A running server may still accept the old
    /// password for up to 10 s.
    ResetPassword(ResetPasswordArgs),
}

/// `berth admin reset-password`.
#[derive(clap::Args)]
pub struct ResetPasswordArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The user whose password is set.
    #[arg(long, default_value = FIRST_ADMIN)]
    user: String,
    #[command(flatten)]
    password: PasswordArgs,
}

/// Runs an `admin` command.
pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::ResetPassword(args) => reset_password(args),
    }
}

fn reset_password(args: ResetPasswordArgs) -> anyhow::Result<()> {
    let password = args.password.password()?;
    offline::run(&args.data, async |offline| {
        let user = offline.user_named(&args.user).await?;
        let change = PasswordChange {
            old_password: String::new(),
            new_password: password.secret().to_owned(),
        };
        Users::new(offline.identity.clone())
            .change_password(&offline.who, user.id, change)
            .await?;
        eprintln!(
            "Set a new password for {:?}. A running server may accept the old one for up \
             to 10 s more.",
            user.username
        );
        password.show_if_generated(&user.username);
        Ok(())
    })
}
