//! Warnings: a part of a delivered event that was cut or left out, with its stable code. The
//! interpreter and `keep` both raise them.

use std::fmt;

/// Kinds of warning: the event is still sent, without the part warned about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningCode {
    /// An attribute whose name begins with `moe_` was removed.
    ReservedAttribute,
    /// A phone number could not be normalised to E.164 and was left out.
    InvalidPhone,
    /// `context.timezone` is not an IANA time zone; no offset was sent.
    InvalidTimezone,
    /// A `timestamp` in the future was replaced by the time Signal received the event.
    FutureTimestamp,
    /// A string value over MoEngage's 512 characters was cut to 512, as MoEngage would cut it.
    ValueTruncated,
    /// A URL over 512 characters was left out: MoEngage refuses it rather than cut it.
    UrlTooLong,
    /// An action or attribute name over MoEngage's 200 characters was cut to 200.
    NameTruncated,
    /// An array over MoEngage's 50 elements was cut to its first 50.
    ArrayTruncated,
    /// An array of values of different kinds (or of arrays) was left out: MoEngage keeps arrays of
    /// one kind only, and making it one would change values.
    MixedArray,
    /// Attributes past MoEngage's 100 per event were left out.
    TooManyAttributes,
    /// A `.` in the action name was sent as a space, as MoEngage stores it.
    PeriodInName,
}

impl WarningCode {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::ReservedAttribute => "reserved_attribute",
            WarningCode::InvalidPhone => "invalid_phone",
            WarningCode::InvalidTimezone => "invalid_timezone",
            WarningCode::FutureTimestamp => "future_timestamp",
            WarningCode::ValueTruncated => "value_truncated",
            WarningCode::UrlTooLong => "url_too_long",
            WarningCode::NameTruncated => "name_truncated",
            WarningCode::ArrayTruncated => "array_truncated",
            WarningCode::MixedArray => "mixed_array",
            WarningCode::TooManyAttributes => "too_many_attributes",
            WarningCode::PeriodInName => "period_in_name",
        }
    }

    /// Every code, in documentation order.
    pub const ALL: [WarningCode; 11] = [
        WarningCode::ReservedAttribute,
        WarningCode::InvalidPhone,
        WarningCode::InvalidTimezone,
        WarningCode::FutureTimestamp,
        WarningCode::ValueTruncated,
        WarningCode::UrlTooLong,
        WarningCode::NameTruncated,
        WarningCode::ArrayTruncated,
        WarningCode::MixedArray,
        WarningCode::TooManyAttributes,
        WarningCode::PeriodInName,
    ];
}

/// Something left out of a delivered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The kind.
    pub code: WarningCode,
    /// What was left out, and why.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning[{}]: {}", self.code.as_str(), self.message)
    }
}
