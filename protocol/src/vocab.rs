//! The vocabulary of the protocol: every enum-valued word that crosses the wire or sits in a
//! database column, defined once. Each enum has one spelling per variant, given to
//! [`wire_enum!`], which derives from it `as_str`, `FromStr`, `Display`, serde, the list of
//! every variant ([`Vocabulary::ALL`]) and, with the `sql` feature, rusqlite's `ToSql` and
//! `FromSql`. The phone core maps its exported enums to these with exhaustive `From` impls; the
//! server validates by parsing into them.

use std::fmt;
use std::str::FromStr;

/// A word that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {of}")]
pub struct UnknownWord {
    /// The enum that was being parsed (its Rust name).
    pub of: &'static str,
}

/// What every vocabulary enum offers, for code that walks all of them.
pub trait Vocabulary: Copy + Eq + fmt::Debug + FromStr<Err = UnknownWord> + 'static {
    /// Every variant, in declaration order.
    const ALL: &'static [Self];
    /// The one spelling of this variant.
    fn as_str(self) -> &'static str;
}

/// Defines a vocabulary enum from `Variant = "spelling"` pairs.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The one spelling of this variant, on the wire and in SQL columns.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl Vocabulary for $name {
            const ALL: &'static [Self] = &[ $( $name::$variant, )+ ];
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownWord { of: stringify!($name) }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Words;
                impl serde::de::Visitor<'_> for Words {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "one of {:?}", [ $( $text ),+ ])
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        // The unknown word itself is not echoed: it may be content.
                        v.parse().map_err(|_| E::custom(concat!("not a valid ", stringify!($name))))
                    }
                }
                d.deserialize_str(Words)
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::Borrowed(
                    rusqlite::types::ValueRef::Text(self.as_str().as_bytes()),
                ))
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(
                v: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e: UnknownWord| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

wire_enum! {
    /// What a record is.
    pub enum Kind {
        /// An SOS alarm.
        Sos = "sos",
        /// A follow-up position for an SOS.
        SosLocation = "sos_location",
        /// The cancellation of an SOS.
        SosCancel = "sos_cancel",
        /// An incident report.
        IncidentReport = "incident_report",
        /// A lone-worker check-in: "expect this crew to check in by T" (no parent).
        CheckInStart = "check_in_start",
        /// More time for an open check-in (parent: the `check_in_start`).
        CheckInExtend = "check_in_extend",
        /// The crew checked in: the check-in is closed (parent: the `check_in_start`).
        CheckInDone = "check_in_done",
    }
}

impl Kind {
    /// The lane this kind must travel in.
    pub fn lane(self) -> Lane {
        match self {
            Kind::IncidentReport => Lane::Report,
            Kind::Sos
            | Kind::SosLocation
            | Kind::SosCancel
            | Kind::CheckInStart
            | Kind::CheckInExtend
            | Kind::CheckInDone => Lane::Sos,
        }
    }

    /// Whether this kind refers to a parent record.
    pub fn needs_parent(self) -> bool {
        self.parent_kind().is_some()
    }

    /// The kind a record of this kind must name as its parent, if it has one.
    pub fn parent_kind(self) -> Option<Kind> {
        match self {
            Kind::SosLocation | Kind::SosCancel => Some(Kind::Sos),
            Kind::CheckInExtend | Kind::CheckInDone => Some(Kind::CheckInStart),
            Kind::Sos | Kind::IncidentReport | Kind::CheckInStart => None,
        }
    }
}

wire_enum! {
    /// Delivery lane.
    pub enum Lane {
        /// SOS alarms and follow-ups: always first.
        Sos = "sos",
        /// Incident reports.
        Report = "report",
    }
}

wire_enum! {
    /// Outcome for one record of a batch.
    pub enum ItemStatus {
        /// Stored now.
        Accepted = "accepted",
        /// Already stored with the same content: same answer as the first time.
        Duplicate = "duplicate",
        /// Already stored with different content: permanent failure.
        Conflict = "conflict",
        /// Refused by validation: permanent failure; `reason` says why.
        Rejected = "rejected",
    }
}

wire_enum! {
    /// How far dispatch has got with an SOS.
    pub enum DispatchStatus {
        /// Stored on the server; no dispatcher has looked yet.
        Delivered = "delivered",
        /// A dispatcher has seen the alarm.
        Acknowledged = "acknowledged",
        /// Dispatch closed the alarm.
        Resolved = "resolved",
    }
}

wire_enum! {
    /// What raised an alarm on the dispatcher's side.
    pub enum AlarmKind {
        /// A crew pressed SOS.
        Sos = "sos",
        /// A lone-worker check-in was not closed in time: the server raised the alarm itself.
        MissedCheckIn = "missed_check_in",
    }
}

wire_enum! {
    /// What an attachment of a report holds.
    pub enum AttachmentKind {
        /// A still image.
        Photo = "photo",
        /// A sound recording.
        Audio = "audio",
        /// A video recording.
        Video = "video",
        /// Any other file.
        Other = "other",
    }
}

impl Default for AlarmKind {
    /// Alarms stored before check-ins existed were all SOS alarms.
    fn default() -> Self {
        AlarmKind::Sos
    }
}

wire_enum! {
    /// Where a location fix came from.
    pub enum LocationProvider {
        /// Satellite fix.
        Gps = "gps",
        /// Cell or Wi-Fi positioning.
        Network = "network",
        /// The platform's fused provider.
        Fused = "fused",
        /// Entered or picked on a map by a person.
        Manual = "manual",
    }
}

wire_enum! {
    /// Why an SOS was cancelled.
    pub enum CancelReason {
        /// Pressed by mistake.
        FalseAlarm = "false_alarm",
        /// The danger passed.
        ThreatOver = "threat_over",
        /// Help is there.
        HelpArrived = "help_arrived",
        /// Something else (see the note).
        Other = "other",
    }
}

wire_enum! {
    /// The role of a harmed staff member.
    pub enum StaffRole {
        /// Doctor.
        Doctor = "doctor",
        /// Paramedic (feldsher).
        Paramedic = "paramedic",
        /// Nurse.
        Nurse = "nurse",
        /// Driver.
        Driver = "driver",
        /// Someone else.
        Other = "other",
    }
}

wire_enum! {
    /// What happened to the crew.
    pub enum IncidentKind {
        /// Insults, shouting.
        VerbalAbuse = "verbal_abuse",
        /// Threats of violence.
        Threat = "threat",
        /// Physical assault.
        PhysicalAssault = "physical_assault",
        /// Assault with a weapon.
        ArmedAssault = "armed_assault",
        /// Damage to the ambulance or equipment.
        DamageToVehicleOrEquipment = "damage_to_vehicle_or_equipment",
        /// The crew was kept from working.
        ObstructionOfCrew = "obstruction_of_crew",
        /// Something else.
        Other = "other",
    }
}

wire_enum! {
    /// How serious an incident was.
    pub enum Severity {
        /// No harm.
        Low = "low",
        /// Minor harm.
        Moderate = "moderate",
        /// Injury needing treatment.
        Serious = "serious",
        /// Life-threatening.
        Critical = "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Vocabulary + serde::Serialize + serde::de::DeserializeOwned>() {
        let mut seen = std::collections::HashSet::new();
        for &v in T::ALL {
            let word = v.as_str();
            assert!(seen.insert(word), "{word} spelled twice");
            assert_eq!(word.parse::<T>(), Ok(v));
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
        assert!("Not A Word".parse::<T>().is_err());
        let err = serde_json::from_str::<T>("\"secret text\"").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn every_word_round_trips() {
        round_trips::<Kind>();
        round_trips::<Lane>();
        round_trips::<ItemStatus>();
        round_trips::<DispatchStatus>();
        round_trips::<AlarmKind>();
        round_trips::<AttachmentKind>();
        round_trips::<LocationProvider>();
        round_trips::<CancelReason>();
        round_trips::<StaffRole>();
        round_trips::<IncidentKind>();
        round_trips::<Severity>();
    }

    #[test]
    fn every_kind_travels_in_its_lane() {
        for &k in Kind::ALL {
            assert_eq!(k.lane() == Lane::Report, k == Kind::IncidentReport);
            if let Some(parent) = k.parent_kind() {
                assert_eq!(parent.lane(), k.lane());
                assert!(!parent.needs_parent());
            }
        }
    }
}
