//! User accounts: create (by an administrator, or by anyone when self-registration
//! is on), list, search, read, update profile, change password, grant administration,
//! delete.

use std::sync::Arc;

use berth_authz::{Action, Permission, Resource};
use berth_meta::{ListQuery, Listed, Match, NewUser, ProfileUpdate, User, UserField};

use super::{ManageError, Requester};
use crate::identity::{Identity, check_policy};

const USER_LIST: Permission = Permission::new(Resource::User, Action::List);
const USER_CREATE: Permission = Permission::new(Resource::User, Action::Create);
const USER_UPDATE: Permission = Permission::new(Resource::User, Action::Update);
const USER_DELETE: Permission = Permission::new(Resource::User, Action::Delete);

/// A user to create, as a request gives it.
/// Not `Debug`: it holds a password.
#[derive(Clone, Default)]
pub struct NewAccount {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Full name.
    pub realname: String,
    /// Free text.
    pub comment: String,
    /// Password, checked against the policy.
    pub password: String,
    /// Make them a system administrator (only an administrator may).
    pub sysadmin: bool,
}

/// A password change.
/// Not `Debug`: it holds passwords.
#[derive(Clone, Default)]
pub struct PasswordChange {
    /// The current password (needed when users change their own).
    pub old_password: String,
    /// The new password.
    pub new_password: String,
}

/// The user use cases.
pub struct Users {
    identity: Arc<Identity>,
}

impl Users {
    /// Users over `identity`.
    pub fn new(identity: Arc<Identity>) -> Self {
        Users { identity }
    }

    /// Creates a user; returns its id.
    pub async fn create(&self, who: &Requester, new: NewAccount) -> Result<i64, ManageError> {
        if who.account.is_some() {
            who.require_system(USER_CREATE)?;
        } else if !self.identity.settings.current().await?.self_registration {
            return Err(ManageError::Unauthenticated);
        }
        if new.sysadmin && !who.is_sysadmin() {
            return Err(ManageError::Forbidden(
                "only a system administrator may create an administrator".into(),
            ));
        }
        validate_username(&new.username, &self.robot_prefix().await?)?;
        validate_email(&new.email)?;
        check_policy(&new.password).map_err(|e| ManageError::Invalid(e.to_string()))?;
        let hash = self.hash(new.password).await;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("create", "user", &new.username, None, now);
        let user = NewUser {
            username: new.username,
            email: new.email,
            realname: new.realname,
            comment: new.comment,
            password_hash: hash,
            sysadmin: new.sysadmin,
        };
        Ok(self
            .identity
            .stores
            .users
            .create_user(&user, now, &audit)
            .await?)
    }

    /// A page of users (administrators only).
    pub async fn list(
        &self,
        who: &Requester,
        query: &ListQuery<UserField>,
    ) -> Result<Listed<User>, ManageError> {
        who.require_system(USER_LIST)?;
        Ok(self.identity.stores.users.list_users(query).await?)
    }

    /// Users whose name contains `name`, for any logged-in caller (only ids and names
    /// are shown to them).
    pub async fn search(
        &self,
        who: &Requester,
        name: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<User>, ManageError> {
        who.account()?;
        let query = ListQuery {
            filters: vec![berth_meta::FieldFilter {
                field: UserField::Username,
                matching: Match::Fuzzy(name.to_owned()),
            }],
            offset,
            limit,
            ..ListQuery::default()
        };
        Ok(self.identity.stores.users.list_users(&query).await?)
    }

    /// A user: the caller themselves, or anyone for an administrator.
    pub async fn get(&self, who: &Requester, id: i64) -> Result<User, ManageError> {
        self.self_or_admin(who, id)?;
        self.identity
            .stores
            .users
            .user(id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// The caller's own account.
    pub async fn current(&self, who: &Requester) -> Result<User, ManageError> {
        let id = who
            .account()?
            .user_id()
            .ok_or_else(|| ManageError::Forbidden("a robot account has no user profile".into()))?;
        self.get(who, id).await
    }

    /// Changes profile fields.
    pub async fn update_profile(
        &self,
        who: &Requester,
        id: i64,
        update: ProfileUpdate,
    ) -> Result<(), ManageError> {
        self.self_or_admin(who, id)?;
        if let Some(email) = &update.email {
            validate_email(email)?;
        }
        let user = self.get(who, id).await?;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("update", "user", &user.username, None, now);
        let users = &self.identity.stores.users;
        if !users.update_profile(id, &update, now, &audit).await? {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Changes a password: users change their own with the current one; an
    /// administrator sets anyone else's without it.
    pub async fn change_password(
        &self,
        who: &Requester,
        id: i64,
        change: PasswordChange,
    ) -> Result<(), ManageError> {
        self.self_or_admin(who, id)?;
        let user = self.get(who, id).await?;
        let own = who.account()?.user_id() == Some(id);
        if own {
            let ok = self
                .identity
                .authenticator
                .login(&user.username, &change.old_password, who.client)
                .await
                .is_ok();
            if !ok {
                return Err(ManageError::Forbidden("the old password is wrong".into()));
            }
            if change.old_password == change.new_password {
                return Err(ManageError::Invalid(
                    "the new password must differ from the old one".into(),
                ));
            }
        }
        check_policy(&change.new_password).map_err(|e| ManageError::Invalid(e.to_string()))?;
        let hash = self.hash(change.new_password).await;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("update", "user", &user.username, None, now);
        self.identity
            .stores
            .users
            .set_password(id, &hash, now, &audit)
            .await?;
        // Sessions opened with the old password end; refresh tokens issued with it
        // no longer match the account's stamp.
        self.identity
            .stores
            .sessions
            .end_sessions_of(&user.username)
            .await?;
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// Grants or revokes system administration (administrators only, not on
    /// themselves).
    pub async fn set_sysadmin(
        &self,
        who: &Requester,
        id: i64,
        sysadmin: bool,
    ) -> Result<(), ManageError> {
        who.require_system(USER_UPDATE)?;
        self.not_self(who, id, "change your own administrator flag")?;
        let user = self.get(who, id).await?;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("update", "user", &user.username, None, now);
        self.identity
            .stores
            .users
            .set_sysadmin(id, sysadmin, now, &audit)
            .await?;
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// Deletes a user (administrators only, not themselves).
    pub async fn delete(&self, who: &Requester, id: i64) -> Result<(), ManageError> {
        who.require_system(USER_DELETE)?;
        self.not_self(who, id, "delete yourself")?;
        let user = self.get(who, id).await?;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("delete", "user", &user.username, None, now);
        if !self.identity.stores.users.delete_user(id, &audit).await? {
            return Err(not_found(id));
        }
        self.identity
            .stores
            .sessions
            .end_sessions_of(&user.username)
            .await?;
        self.identity.authenticator.forget_all();
        Ok(())
    }

    fn self_or_admin(&self, who: &Requester, id: i64) -> Result<(), ManageError> {
        let account = who.account()?;
        if account.principal.is_sysadmin() || account.user_id() == Some(id) {
            Ok(())
        } else {
            Err(ManageError::Forbidden(
                "only the user themselves or an administrator may do this".into(),
            ))
        }
    }

    fn not_self(&self, who: &Requester, id: i64, what: &str) -> Result<(), ManageError> {
        if who.account()?.user_id() == Some(id) {
            return Err(ManageError::Forbidden(format!("you may not {what}")));
        }
        Ok(())
    }

    async fn robot_prefix(&self) -> Result<String, ManageError> {
        Ok(self
            .identity
            .settings
            .current()
            .await?
            .robot_name_prefix
            .clone())
    }

    async fn hash(&self, password: String) -> String {
        let passwords = self.identity.passwords.clone();
        tokio::task::spawn_blocking(move || passwords.hash(&password))
            .await
            .expect("hashing does not panic")
    }
}

fn not_found(id: i64) -> ManageError {
    ManageError::NotFound(format!("user {id} not found"))
}

/// Harbor's rules for login names, and what Basic auth and robots need.
fn validate_username(name: &str, robot_prefix: &str) -> Result<(), ManageError> {
    let bad = |why: &str| Err(ManageError::Invalid(format!("username {name:?}: {why}")));
    if name.is_empty() || name.chars().count() > 255 {
        return bad("must be 1 to 255 characters long");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || ",\"~#$%:/\\".contains(c))
    {
        return bad("may not contain spaces or any of , \" ~ # $ % : / \\");
    }
    if name.starts_with(robot_prefix) {
        return bad("may not start with the robot name prefix");
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<(), ManageError> {
    if email.is_empty() {
        return Ok(());
    }
    let valid = email.len() <= 255
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "{email:?} is not an e-mail address"
        )))
    }
}
