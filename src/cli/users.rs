//! `iari users …`: accounts, roles and API tokens (docs/workstation.md). Passwords come from the
//! terminal or standard input (`cli::prompt`), never from the command line; `--one-time`
//! generates one instead, prints it once, and the user must replace it at first sign-in.

use super::prompt::Input;
use crate::auth::{events, password, tokens, users};
use crate::config::Settings;
use crate::domain::Role;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an account (password from the terminal or stdin, or --one-time).
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        /// The printed name shown with every signature ("Given Family" or "Family, Given").
        #[arg(long)]
        full_name: String,
        /// Generate a one-time password, print it once; it must be changed at first sign-in.
        #[arg(long)]
        one_time: bool,
    },
    /// List accounts.
    List,
    /// Disable an account: its sessions end, its tokens stop working, it cannot sign.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Change an account's role (its sessions end).
    SetRole { name: String, role: Role },
    /// Set a new password (from the terminal or stdin, or --one-time); clears a lock-out.
    ResetPassword {
        name: String,
        #[arg(long)]
        one_time: bool,
    },
    /// Issue an API token for the user; shown once, stored as a hash.
    Token {
        name: String,
        #[arg(long, default_value = "")]
        label: String,
    },
}

/// The password to set: generated (and printed) or read.
fn new_password(input: &mut Input, name: &str, one_time: bool) -> anyhow::Result<String> {
    if one_time {
        return Ok(password::generate()?);
    }
    let pw = input.new_secret(&format!("new password for {name}"))?;
    password::check_policy(name, &pw)?;
    Ok(pw)
}

pub async fn run(
    settings: &Settings,
    cmd: UsersCommand,
    input: &mut Input,
) -> anyhow::Result<ExitCode> {
    let pool = crate::store::pool(&settings.database)?;
    let actor = events::cli_actor();
    let out = async {
        match cmd {
            UsersCommand::Add {
                name,
                role,
                full_name,
                one_time,
            } => {
                let name = users::check_username(&name)?;
                let pw = new_password(input, &name, one_time)?;
                users::add(&pool, &name, &full_name, role, &pw, one_time, &actor).await?;
                println!("user {name} added ({role})");
                if one_time {
                    println!(
                        "one-time password for {name}: {pw}  (to be changed at first sign-in)"
                    );
                }
            }
            UsersCommand::List => {
                println!(
                    "{:<20} {:<13} {:<9} {:<30} locked until",
                    "user", "role", "state", "full name"
                );
                for a in users::list(&pool).await? {
                    let state = if a.disabled {
                        "disabled"
                    } else if a.must_change_password {
                        "new"
                    } else {
                        "active"
                    };
                    let locked = a
                        .locked_until
                        .filter(|t| *t > chrono::Utc::now())
                        .map_or("-".to_string(), |t| t.to_rfc3339());
                    println!(
                        "{:<20} {:<13} {:<9} {:<30} {locked}",
                        a.username, a.role, state, a.full_name
                    );
                }
            }
            UsersCommand::Disable { name } => {
                users::set_disabled(&pool, &name, true, &actor).await?;
                println!("user {name} disabled");
            }
            UsersCommand::Enable { name } => {
                users::set_disabled(&pool, &name, false, &actor).await?;
                println!("user {name} enabled");
            }
            UsersCommand::SetRole { name, role } => {
                users::set_role(&pool, &name, role, &actor).await?;
                println!("user {name} is now {role}");
            }
            UsersCommand::ResetPassword { name, one_time } => {
                let name = users::check_username(&name)?;
                let pw = new_password(input, &name, one_time)?;
                users::set_password(&pool, &name, &pw, one_time, &actor).await?;
                if one_time {
                    println!(
                        "one-time password for {name}: {pw}  (to be changed at first sign-in)"
                    );
                } else {
                    println!("password for {name} set");
                }
            }
            UsersCommand::Token { name, label } => {
                let t = tokens::issue(&pool, &name, &label, &actor).await?;
                println!("{t}");
                eprintln!("API token for {name}: shown once, stored only as a hash");
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    }
    .await;
    pool.close().await;
    out
}
