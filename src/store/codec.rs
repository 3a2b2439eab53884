//! The domain's vocabularies as PostgreSQL text: `Grade`, `Flag`, `DeliveryState`,
//! `ResultStatus`, `Role`, `Meaning`, `PlateRole` and `QcState` are read from rows and bound as parameters as
//! themselves, so no query result carries them as loose strings, and a value outside the
//! vocabulary is a decode error naming it rather than a string that travels on.

use crate::domain::{DeliveryState, Flag, Grade, Meaning, PlateRole, QcState, ResultStatus, Role};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

macro_rules! text_codec {
    ($t:ty, $what:literal, $parse:expr, $text:expr) => {
        impl Type<Postgres> for $t {
            fn type_info() -> PgTypeInfo {
                <str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $t {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
            fn array_compatible(ty: &PgTypeInfo) -> bool {
                <&str as PgHasArrayType>::array_compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $t {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let s = <&str as Decode<Postgres>>::decode(value)?;
                let parse: fn(&str) -> Option<$t> = $parse;
                parse(s)
                    .ok_or_else(|| format!("stored {} {s:?} is not one iari knows", $what).into())
            }
        }

        impl Encode<'_, Postgres> for $t {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                let text: fn(&$t) -> &'static str = $text;
                <&str as Encode<Postgres>>::encode(text(self), buf)
            }
        }
    };
}

text_codec!(Grade, "grade", |s| s.parse().ok(), |g| g.label());
text_codec!(Flag, "flag", Flag::parse, |f| f.as_str());
text_codec!(DeliveryState, "delivery state", DeliveryState::parse, |d| d
    .as_str());
text_codec!(ResultStatus, "result status", ResultStatus::parse, |r| r
    .code());
text_codec!(Role, "role", Role::parse, |r| r.as_str());
text_codec!(Meaning, "signature meaning", Meaning::parse, |m| m.as_str());
text_codec!(PlateRole, "plate role", PlateRole::parse, |r| r.as_str());
text_codec!(QcState, "plate QC state", QcState::parse, |q| q.as_str());
