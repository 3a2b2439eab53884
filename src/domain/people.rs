//! The vocabulary of people and their signatures (docs/workstation.md): the role an account has,
//! what it may do, and what a signature means. Parsed at the edge like every domain type; the
//! store reads and binds them as text (`store::codec`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Technologist,
    Supervisor,
    Director,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Technologist,
        Role::Supervisor,
        Role::Director,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Technologist => "technologist",
            Role::Supervisor => "supervisor",
            Role::Director => "director",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Sees decisions, images, plates and patient data (everyone but the account admin).
    pub fn reads_results(self) -> bool {
        self != Role::Admin
    }

    /// Signs `confirmed` / `corrected` on a preliminary result.
    pub fn signs_preliminary(self) -> bool {
        matches!(self, Role::Technologist | Role::Supervisor | Role::Director)
    }

    /// Signs `corrected` on a result the LIS already has as final (and `retracted`).
    pub fn signs_final(self) -> bool {
        matches!(self, Role::Supervisor | Role::Director)
    }

    /// Signs `policy_activated`: puts a release policy in force (release.md).
    pub fn activates_policy(self) -> bool {
        self == Role::Director
    }

    /// Signs `policy_suspended` / `policy_resumed`.
    pub fn suspends_policy(self) -> bool {
        matches!(self, Role::Supervisor | Role::Director)
    }

    /// Searches the audit trail and exports it.
    pub fn searches_audit(self) -> bool {
        matches!(self, Role::Auditor | Role::Supervisor | Role::Director)
    }

    /// Reads the sign-in log.
    pub fn reads_sign_ins(self) -> bool {
        matches!(self, Role::Auditor | Role::Director)
    }

    /// Manages accounts.
    pub fn manages_users(self) -> bool {
        self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| {
            let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role {s:?} (one of {})", all.join(", "))
        })
    }
}

/// What a signature means (21 CFR Part 11 §11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    /// The reported grade is right.
    Confirmed,
    /// The grade is changed to the one signed.
    Corrected,
    /// The result is withdrawn.
    Retracted,
    /// A release policy is put in force.
    PolicyActivated,
    /// The release policy in force is suspended: every result needs review.
    PolicySuspended,
    /// A suspension is lifted.
    PolicyResumed,
}

impl Meaning {
    pub const ALL: [Meaning; 6] = [
        Meaning::Confirmed,
        Meaning::Corrected,
        Meaning::Retracted,
        Meaning::PolicyActivated,
        Meaning::PolicySuspended,
        Meaning::PolicyResumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Meaning::Confirmed => "confirmed",
            Meaning::Corrected => "corrected",
            Meaning::Retracted => "retracted",
            Meaning::PolicyActivated => "policy_activated",
            Meaning::PolicySuspended => "policy_suspended",
            Meaning::PolicyResumed => "policy_resumed",
        }
    }

    pub fn parse(s: &str) -> Option<Meaning> {
        Meaning::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// A reason code is required (Part 11 asks why a record was changed).
    pub fn needs_reason(self) -> bool {
        matches!(self, Meaning::Corrected | Meaning::Retracted)
    }

    /// In words, for pages and notes.
    pub fn words(self) -> &'static str {
        match self {
            Meaning::Confirmed => "Confirmed",
            Meaning::Corrected => "Corrected",
            Meaning::Retracted => "Retracted",
            Meaning::PolicyActivated => "Policy activated",
            Meaning::PolicySuspended => "Policy suspended",
            Meaning::PolicyResumed => "Policy resumed",
        }
    }
}

impl fmt::Display for Meaning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's name as HL7 XCN wants it: family and given, split from the printed full name
/// ("Family, Given" when it has a comma, else the last word is the family name).
pub fn split_full_name(full: &str) -> (String, String) {
    let full = full.trim();
    if let Some((family, given)) = full.split_once(',') {
        return (family.trim().to_string(), given.trim().to_string());
    }
    match full.rsplit_once(char::is_whitespace) {
        Some((given, family)) => (family.trim().to_string(), given.trim().to_string()),
        None => (full.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_meanings_round_trip_and_say_what_they_may() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for m in Meaning::ALL {
            assert_eq!(Meaning::parse(m.as_str()), Some(m));
        }
        assert!(
            "nurse"
                .parse::<Role>()
                .unwrap_err()
                .contains("technologist")
        );
        assert!(Role::Technologist.signs_preliminary() && !Role::Technologist.signs_final());
        assert!(!Role::Auditor.signs_preliminary() && Role::Auditor.searches_audit());
        assert!(!Role::Admin.reads_results() && Role::Admin.manages_users());
        assert!(Meaning::Corrected.needs_reason() && !Meaning::Confirmed.needs_reason());
        assert!(Role::Director.activates_policy() && !Role::Supervisor.activates_policy());
        assert!(Role::Supervisor.suspends_policy() && !Role::Technologist.suspends_policy());
    }

    #[test]
    fn full_names_split_into_family_and_given() {
        assert_eq!(
            split_full_name("Jane Q. Doe"),
            ("Doe".into(), "Jane Q.".into())
        );
        assert_eq!(split_full_name("Doe, Jane"), ("Doe".into(), "Jane".into()));
        assert_eq!(split_full_name("Plato"), ("Plato".into(), String::new()));
    }
}
