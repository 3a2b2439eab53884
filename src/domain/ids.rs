//! Identifiers parsed at the edge: capture ids, plate wells and SHA-256 digests.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A capture id: 1–64 characters of `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaptureId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("capture_id must be 1-64 characters of A-Z a-z 0-9 . _ : -")]
    CaptureId,
    #[error("well {0:?} is not on a {1}-row x {2}-column plate")]
    Well(String, u8, u8),
    #[error("sha256 must be 64 hexadecimal characters")]
    Sha256,
}

impl CaptureId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(CaptureId(s.to_string()))
        } else {
            Err(IdError::CaptureId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaptureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CaptureId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        CaptureId::parse(&s)
    }
}

impl From<CaptureId> for String {
    fn from(c: CaptureId) -> String {
        c.0
    }
}

/// Rows and columns of a microplate; the default is the 96-well 8 × 12 plate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateFormat {
    pub rows: u8,
    pub columns: u8,
}

impl Default for PlateFormat {
    fn default() -> Self {
        PlateFormat {
            rows: 8,
            columns: 12,
        }
    }
}

/// A well position such as `A1` or `H12`, valid for the plate format it was parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Well {
    row: u8,
    column: u8,
}

impl Well {
    /// Parses `A1`…`H12` (letters case-insensitive; `A01` accepted) for the given plate format.
    pub fn parse(s: &str, plate: PlateFormat) -> Result<Self, IdError> {
        let err = || IdError::Well(s.to_string(), plate.rows, plate.columns);
        let mut chars = s.chars();
        let letter = chars.next().ok_or_else(err)?.to_ascii_uppercase();
        if !letter.is_ascii_uppercase() {
            return Err(err());
        }
        let row = letter as u8 - b'A';
        let digits = chars.as_str();
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let column: u8 = digits.parse().map_err(|_| err())?;
        if row >= plate.rows || column == 0 || column > plate.columns {
            return Err(err());
        }
        Ok(Well { row, column })
    }

    pub fn row_letter(self) -> char {
        (b'A' + self.row) as char
    }

    pub fn column(self) -> u8 {
        self.column
    }
}

impl fmt::Display for Well {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.row_letter(), self.column)
    }
}

impl Serialize for Well {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A SHA-256 digest, shown as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(Sha256Digest)
    }
}

impl FromStr for Sha256Digest {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(IdError::Sha256);
        }
        hex::decode_to_slice(s.to_ascii_lowercase(), &mut out).map_err(|_| IdError::Sha256)?;
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_ids() {
        assert!(CaptureId::parse("PLT0042-A01-20261126T101500Z").is_ok());
        assert!(CaptureId::parse("a.b_c:d-e").is_ok());
        assert!(CaptureId::parse("").is_err());
        assert!(CaptureId::parse(&"x".repeat(65)).is_err());
        assert!(CaptureId::parse("has space").is_err());
        assert!(CaptureId::parse("ünï").is_err());
        assert!(CaptureId::parse("../x").is_err());
    }

    #[test]
    fn wells_on_a_96_plate() {
        let p = PlateFormat::default();
        assert_eq!(Well::parse("A1", p).unwrap().to_string(), "A1");
        assert_eq!(Well::parse("h12", p).unwrap().to_string(), "H12");
        assert_eq!(Well::parse("B07", p).unwrap().to_string(), "B7");
        for bad in ["", "A", "A0", "A13", "I1", "1A", "A1x", "A123", "Ä1"] {
            assert!(Well::parse(bad, p).is_err(), "{bad}");
        }
        let p384 = PlateFormat {
            rows: 16,
            columns: 24,
        };
        assert!(Well::parse("P24", p384).is_ok());
    }

    #[test]
    fn digests() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(
            d.to_hex().to_uppercase().parse::<Sha256Digest>().unwrap(),
            d
        );
        assert!("abc".parse::<Sha256Digest>().is_err());
        assert!("zz".repeat(32).parse::<Sha256Digest>().is_err());
    }
}
