//! `berth robot`: creating and listing robot accounts.

use std::str::FromStr;

use berth_app::manage::{RobotRequest, Robots, level_name};
use berth_meta::{ListQuery, RobotGrant};
use clap::Subcommand;

use super::DataArgs;
use super::offline::{self, show_secret};
use super::output::{table, utc, yes_no};

/// The namespace of system permissions.
const SYSTEM_NAMESPACE: &str = "/";

/// The `robot` commands.
#[derive(Subcommand)]
pub enum RobotCommand {
    /// Create a robot account. Its full name, then its secret (generated, shown only
    /// this once), are printed on standard output, each on a line of its own.
    Create(CreateArgs),
    /// List the robot accounts.
    List(ListArgs),
}

/// `berth robot create`.
#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("permissions")
        .args(["permission", "project_permission", "system_permission"])
        .required(true)
        .multiple(true)
))]
pub struct CreateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Short name: lower-case letters and digits, separated by '.', '_' or '-'. It logs
    /// in as robot$<project>+<name> (project robots) or robot$<name> (system robots),
    /// with the configured prefix.
    name: String,
    /// Make it a robot of this project, holding --permission there. Without it, the
    /// robot is system-level and holds --project-permission and --system-permission.
    #[arg(long, value_name = "PROJECT", requires = "permission")]
    project: Option<String>,
    /// A permission in the robot's project (repeatable), e.g. repository:pull.
    #[arg(long, value_name = "RESOURCE:ACTION", requires = "project")]
    permission: Vec<Access>,
    /// A permission of a system robot in one project, or in every project with '*'
    /// (repeatable), e.g. '*:repository:pull'.
    #[arg(
        long,
        value_name = "PROJECT:RESOURCE:ACTION",
        conflicts_with = "project"
    )]
    project_permission: Vec<ProjectAccess>,
    /// A system-wide permission of a system robot (repeatable), e.g. project:create.
    #[arg(long, value_name = "RESOURCE:ACTION", conflicts_with = "project")]
    system_permission: Vec<Access>,
    /// Lifetime in days (by default the system's robot token duration).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    duration_days: Option<u32>,
    /// The robot never expires.
    #[arg(long, conflicts_with = "duration_days")]
    never_expires: bool,
    /// Free text.
    #[arg(long, default_value = "")]
    description: String,
}

/// `berth robot list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// A permission as a flag gives it: `<resource>:<action>`. Whether the robot may be
/// granted it is for the use case to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    resource: String,
    action: String,
}

/// A system robot's permission in a project: `<project|*>:<resource>:<action>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectAccess {
    project: String,
    access: Access,
}

/// A permission flag that is not of the form its value name shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not of the form {1}")]
pub struct MalformedPermission(String, &'static str);

impl FromStr for Access {
    type Err = MalformedPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split(':').collect::<Vec<_>>()[..] {
            [resource, action] if !resource.is_empty() && !action.is_empty() => Ok(Access {
                resource: resource.to_owned(),
                action: action.to_owned(),
            }),
            _ => Err(MalformedPermission(s.to_owned(), "RESOURCE:ACTION")),
        }
    }
}

impl FromStr for ProjectAccess {
    type Err = MalformedPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || MalformedPermission(s.to_owned(), "PROJECT:RESOURCE:ACTION");
        let (project, access) = s.split_once(':').ok_or_else(malformed)?;
        if project.is_empty() {
            return Err(malformed());
        }
        Ok(ProjectAccess {
            project: project.to_owned(),
            access: access.parse().map_err(|_| malformed())?,
        })
    }
}

impl CreateArgs {
    /// The robot's level and permissions: one grant per project (in the order the
    /// flags first name them), then the system's.
    fn grants(&self) -> (&'static str, Vec<RobotGrant>) {
        if let Some(project) = &self.project {
            let grant = grant("project", project, &self.permission);
            return ("project", vec![grant]);
        }
        let mut grants: Vec<RobotGrant> = Vec::new();
        for p in &self.project_permission {
            let access = (p.access.resource.clone(), p.access.action.clone());
            match grants.iter_mut().find(|g| g.namespace == p.project) {
                Some(g) => g.access.push(access),
                None => grants.push(RobotGrant {
                    kind: "project".into(),
                    namespace: p.project.clone(),
                    access: vec![access],
                }),
            }
        }
        if !self.system_permission.is_empty() {
            grants.push(grant("system", SYSTEM_NAMESPACE, &self.system_permission));
        }
        ("system", grants)
    }

    /// Harbor's duration: days, -1 for never, 0 for the system default.
    fn duration(&self) -> i64 {
        match (self.never_expires, self.duration_days) {
            (true, _) => -1,
            (false, Some(days)) => i64::from(days),
            (false, None) => 0,
        }
    }
}

fn grant(kind: &str, namespace: &str, access: &[Access]) -> RobotGrant {
    RobotGrant {
        kind: kind.into(),
        namespace: namespace.into(),
        access: access
            .iter()
            .map(|a| (a.resource.clone(), a.action.clone()))
            .collect(),
    }
}

/// Runs a `robot` command.
pub fn run(command: RobotCommand) -> anyhow::Result<()> {
    match command {
        RobotCommand::Create(args) => create(args),
        RobotCommand::List(args) => list(&args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let (level, grants) = args.grants();
    let request = RobotRequest {
        name: args.name.clone(),
        description: args.description.clone(),
        level: level.into(),
        duration: args.duration(),
        grants,
        ..RobotRequest::default()
    };
    offline::run(&args.data, async |offline| {
        let created = Robots::new(offline.identity.clone())
            .create(&offline.who, request)
            .await?;
        let expires = match created.robot.expires_at {
            ms if ms < 0 => "never expires".to_owned(),
            ms => format!("expires at {} UTC", utc(ms)),
        };
        eprintln!(
            "Created the {level} robot {:?} (id {}), which {expires}.",
            created.full_name, created.robot.id
        );
        println!("{}", created.full_name);
        show_secret(
            &format!("The secret of {:?}", created.full_name),
            &created.secret,
        );
        Ok(())
    })
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    offline::run(&args.data, async |offline| {
        let robots = Robots::new(offline.identity.clone());
        let listed = robots.list(&offline.who, ListQuery::default()).await?;
        let mut rows = Vec::with_capacity(listed.items.len());
        for r in &listed.items {
            rows.push([
                r.id.to_string(),
                robots.full_name(r).await?,
                level_name(r.level).to_owned(),
                yes_no(r.disabled),
                expiry(r.expires_at),
                permissions(&r.grants),
            ]);
        }
        print!(
            "{}",
            table(
                [
                    "ID",
                    "NAME",
                    "LEVEL",
                    "DISABLED",
                    "EXPIRES (UTC)",
                    "PERMISSIONS"
                ],
                &rows
            )
        );
        Ok(())
    })
}

/// `never`, or the expiry in UTC.
fn expiry(expires_at: i64) -> String {
    if expires_at < 0 {
        "never".into()
    } else {
        utc(expires_at)
    }
}

/// Every permission as `<namespace>:<resource>:<action>` (the namespace is a project,
/// `*` for every project or `/` for the system), comma-separated.
fn permissions(grants: &[RobotGrant]) -> String {
    grants
        .iter()
        .flat_map(|g| {
            g.access
                .iter()
                .map(move |(resource, action)| format!("{}:{resource}:{action}", g.namespace))
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: RobotCommand,
    }

    fn create_args(args: &[&str]) -> Result<CreateArgs, clap::Error> {
        let argv = ["berth", "create"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            RobotCommand::Create(args) => Ok(args),
            RobotCommand::List(_) => unreachable!(),
        }
    }

    #[test]
    fn permissions_parse_from_their_flag_forms() {
        let access: Access = "repository:pull".parse().unwrap();
        assert_eq!((&*access.resource, &*access.action), ("repository", "pull"));
        for bad in ["repository", "repository:", ":pull", "a:b:c", ""] {
            assert!(bad.parse::<Access>().is_err(), "{bad}");
        }
        let p: ProjectAccess = "*:repository:push".parse().unwrap();
        assert_eq!(p.project, "*");
        assert_eq!(p.access.action, "push");
        for bad in [
            "repository:pull",
            ":repository:pull",
            "p:repository",
            "p::pull",
        ] {
            assert!(bad.parse::<ProjectAccess>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_project_robot_has_one_grant_in_its_project() {
        let args = create_args(&[
            "ci",
            "--project",
            "team",
            "--permission",
            "repository:pull",
            "--permission",
            "repository:push",
            "--never-expires",
        ])
        .unwrap();
        let (level, grants) = args.grants();
        assert_eq!(level, "project");
        assert_eq!(grants, [grant("project", "team", &args.permission)]);
        assert_eq!(grants[0].access.len(), 2);
        assert_eq!(args.duration(), -1);
    }

    #[test]
    fn a_system_robot_has_one_grant_per_namespace() {
        let args = create_args(&[
            "ops",
            "--project-permission",
            "a:repository:pull",
            "--project-permission",
            "*:repository:pull",
            "--project-permission",
            "a:repository:push",
            "--system-permission",
            "project:create",
            "--duration-days",
            "7",
        ])
        .unwrap();
        let (level, grants) = args.grants();
        assert_eq!(level, "system");
        let summary: Vec<_> = grants
            .iter()
            .map(|g| (g.kind.as_str(), g.namespace.as_str(), g.access.len()))
            .collect();
        assert_eq!(
            summary,
            [("project", "a", 2), ("project", "*", 1), ("system", "/", 1)]
        );
        assert_eq!(args.duration(), 7);
        assert_eq!(
            permissions(&grants),
            "a:repository:pull,a:repository:push,*:repository:pull,/:project:create"
        );
    }

    #[test]
    fn contradictory_or_missing_flags_are_refused() {
        for bad in [
            &["ci"][..],
            &["ci", "--project", "team"],
            &["ci", "--permission", "repository:pull"],
            &[
                "ci",
                "--project",
                "t",
                "--permission",
                "repository:pull",
                "--system-permission",
                "project:create",
            ],
            &[
                "ci",
                "--project",
                "t",
                "--permission",
                "repository:pull",
                "--project-permission",
                "t:repository:pull",
            ],
            &[
                "ci",
                "--system-permission",
                "project:create",
                "--never-expires",
                "--duration-days",
                "3",
            ],
            &[
                "ci",
                "--system-permission",
                "project:create",
                "--duration-days",
                "0",
            ],
            &["ci", "--system-permission", "project"],
        ] {
            assert!(create_args(bad).is_err(), "{bad:?}");
        }
    }
}
