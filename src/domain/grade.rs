//! The five reaction grades, in the fixed order used by model outputs, storage and reports.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A reaction intensity grade. The discriminant is the model output index and the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Grade {
    Neg = 0,
    P1 = 1,
    P2 = 2,
    P3 = 3,
    P4 = 4,
}

impl Grade {
    pub const ALL: [Grade; 5] = [Grade::Neg, Grade::P1, Grade::P2, Grade::P3, Grade::P4];
    pub const COUNT: usize = 5;

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Grade> {
        Self::ALL.get(i).copied()
    }

    /// The label used in reports, JSON and the CLI: `neg`, `1+` … `4+`.
    pub fn label(self) -> &'static str {
        match self {
            Grade::Neg => "neg",
            Grade::P1 => "1+",
            Grade::P2 => "2+",
            Grade::P3 => "3+",
            Grade::P4 => "4+",
        }
    }

    pub fn is_positive(self) -> bool {
        self != Grade::Neg
    }

    /// OBX-8 abnormal flag: `N` for negative, `A` for any positive grade.
    pub fn abnormal_flag(self) -> &'static str {
        if self.is_positive() { "A" } else { "N" }
    }

    /// How many grades apart two grades are (0 = same, 1 = neighbours).
    pub fn distance(self, other: Grade) -> usize {
        self.index().abs_diff(other.index())
    }

    /// Parses a labelled-folder name: `neg`, `1+` … `4+`, or `1p` … `4p`.
    pub fn from_folder_name(name: &str) -> Option<Grade> {
        match name {
            "1p" => Some(Grade::P1),
            "2p" => Some(Grade::P2),
            "3p" => Some(Grade::P3),
            "4p" => Some(Grade::P4),
            other => other.parse().ok(),
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid grade {0:?}: expected one of neg, 1+, 2+, 3+, 4+")]
pub struct InvalidGrade(pub String);

impl FromStr for Grade {
    type Err = InvalidGrade;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "neg" | "NEG" | "-" => Ok(Grade::Neg),
            "1+" => Ok(Grade::P1),
            "2+" => Ok(Grade::P2),
            "3+" => Ok(Grade::P3),
            "4+" => Ok(Grade::P4),
            other => Err(InvalidGrade(other.to_string())),
        }
    }
}

impl TryFrom<String> for Grade {
    type Error = InvalidGrade;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Grade> for String {
    fn from(g: Grade) -> String {
        g.label().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_in_fixed_order() {
        for (i, g) in Grade::ALL.iter().enumerate() {
            assert_eq!(g.index(), i);
            assert_eq!(g.label().parse::<Grade>().unwrap(), *g);
            assert_eq!(Grade::from_index(i), Some(*g));
        }
        assert_eq!(Grade::from_index(5), None);
    }

    #[test]
    fn folder_names_accept_p_suffix() {
        assert_eq!(Grade::from_folder_name("3p"), Some(Grade::P3));
        assert_eq!(Grade::from_folder_name("neg"), Some(Grade::Neg));
        assert_eq!(Grade::from_folder_name("5+"), None);
    }

    #[test]
    fn abnormal_flags_and_distance() {
        assert_eq!(Grade::Neg.abnormal_flag(), "N");
        assert_eq!(Grade::P1.abnormal_flag(), "A");
        assert_eq!(Grade::P1.distance(Grade::P4), 3);
    }
}
