//! E.164 phone normalisation, with a cache: parsing a number costs more than mapping the rest of
//! the event, and a user's phone repeats on every event they send.

use std::str::FromStr;
use std::sync::Arc;

use phonenumber::Mode;
use phonenumber::country::Id as Region;
use phonenumber::metadata::DATABASE;
use quick_cache::sync::Cache;

/// A two-letter region such as `GB`, checked against the phone metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhoneRegion(Region);

impl PhoneRegion {
    /// The region named by an ISO 3166 code (`GB`, `us`), if the phone metadata knows it.
    pub fn parse(code: &str) -> Option<PhoneRegion> {
        let region = PhoneRegion::parse_code(code)?;
        DATABASE.by_id(region.0.as_ref())?;
        Some(region)
    }

    /// A CLDR region id, without asking the metadata (a region it lacks just normalises nothing);
    /// cheap enough for every event's locale.
    fn parse_code(code: &str) -> Option<PhoneRegion> {
        let &[first, second] = code.trim().as_bytes() else {
            return None;
        };
        let upper = [first.to_ascii_uppercase(), second.to_ascii_uppercase()];
        Region::from_str(std::str::from_utf8(&upper).ok()?).ok().map(PhoneRegion)
    }

    /// The country of a locale such as `en-GB`, `en_GB` or `sr-Latn-RS`.
    pub fn from_locale(locale: &str) -> Option<PhoneRegion> {
        locale
            .split(['-', '_'])
            .skip(1)
            .find(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_alphabetic()))
            .and_then(PhoneRegion::parse_code)
    }

    /// The ISO code.
    pub fn code(self) -> &'static str {
        // The id's own `as_ref` borrows from `self`; the metadata's copy lives as long as the program.
        DATABASE.by_id(self.0.as_ref()).map_or("??", |meta| meta.id())
    }
}

/// Normalises phone numbers to E.164 and remembers the answers.
pub struct PhoneNormaliser {
    cache: Cache<PhoneKey, Option<Arc<str>>>,
}

/// A number as written, with the region it is read in (`None` for `+CC` numbers).
#[derive(Clone, PartialEq, Eq, Hash)]
struct PhoneKey {
    region: Option<PhoneRegion>,
    raw: Box<str>,
}

/// The same key, borrowed, so that a cache hit allocates nothing. Hashes exactly as [`PhoneKey`].
#[derive(Hash)]
struct PhoneKeyRef<'a> {
    region: Option<PhoneRegion>,
    raw: &'a str,
}

impl quick_cache::Equivalent<PhoneKey> for PhoneKeyRef<'_> {
    fn equivalent(&self, key: &PhoneKey) -> bool {
        self.region == key.region && self.raw == &*key.raw
    }
}

impl Default for PhoneNormaliser {
    fn default() -> Self {
        PhoneNormaliser::with_capacity(100_000)
    }
}

impl std::fmt::Debug for PhoneNormaliser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneNormaliser").field("cached", &self.cache.len()).finish()
    }
}

impl PhoneNormaliser {
    /// A normaliser that remembers up to `capacity` numbers.
    pub fn with_capacity(capacity: usize) -> Self {
        PhoneNormaliser { cache: Cache::new(capacity.max(16)) }
    }

    /// Loads the phone metadata now, so that the first event does not pay for it (~150 ms).
    pub fn warm_up(&self, regions: &[PhoneRegion]) {
        let _ = normalise_uncached("+447700900123", None);
        for region in regions {
            let _ = normalise_uncached("0", Some(*region));
        }
    }

    /// `raw` in E.164, or `None` when it is not a phone number of a possible length. `region` is
    /// used for numbers without a `+CC` prefix.
    pub fn normalise(&self, raw: &str, region: Option<PhoneRegion>) -> Option<Arc<str>> {
        let raw = raw.trim();
        let region = if raw.starts_with('+') { None } else { region };
        if let Some(answer) = self.cache.get(&PhoneKeyRef { region, raw }) {
            return answer;
        }
        let answer = normalise_uncached(raw, region);
        self.cache.insert(PhoneKey { region, raw: raw.into() }, answer.clone());
        answer
    }
}

/// Kept when it parses and has a possible length for its region: numbers in ranges that are not
/// allocated (such as the UK's drama range, +447700900xxx) are still real numbers to a user.
fn normalise_uncached(raw: &str, region: Option<PhoneRegion>) -> Option<Arc<str>> {
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    let number = phonenumber::parse(region.map(|r| r.0), raw).ok()?;
    // Numbers outside allocated ranges match no region's patterns; their country code still names
    // the metadata whose lengths apply.
    let metadata = number
        .metadata(&DATABASE)
        .or_else(|| DATABASE.by_code(&number.code().value()).and_then(|all| all.into_iter().next()))?;
    let national = number.national();
    let digits = national.value().checked_ilog10().map_or(1, |log| log + 1) + u32::from(national.zeros());
    let digits = u16::try_from(digits).ok()?;
    let descriptors = metadata.descriptors();
    let general = descriptors.general().possible_length();
    // The metadata often leaves the general lengths empty and lists them per number type instead.
    let possible = if general.is_empty() {
        [
            descriptors.fixed_line(),
            descriptors.mobile(),
            descriptors.toll_free(),
            descriptors.premium_rate(),
            descriptors.shared_cost(),
            descriptors.personal_number(),
            descriptors.voip(),
            descriptors.pager(),
            descriptors.uan(),
            descriptors.voicemail(),
        ]
        .into_iter()
        .flatten()
        .any(|descriptor| descriptor.possible_length().contains(&digits))
    } else {
        general.contains(&digits)
    };
    if !possible {
        return None;
    }
    Some(Arc::from(number.format().mode(Mode::E164).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Option<PhoneRegion> {
        PhoneRegion::parse(code)
    }

    #[test]
    fn documents_drama_range_number_is_kept() {
        let normaliser = PhoneNormaliser::default();
        assert_eq!(normaliser.normalise("+447700900123", None).as_deref(), Some("+447700900123"));
        assert_eq!(normaliser.normalise("+44 7700 900123", None).as_deref(), Some("+447700900123"));
    }

    #[test]
    fn national_numbers_use_the_region() {
        let normaliser = PhoneNormaliser::default();
        assert_eq!(normaliser.normalise("07700 900123", region("GB")).as_deref(), Some("+447700900123"));
        assert_eq!(normaliser.normalise("(415) 555-2671", region("US")).as_deref(), Some("+14155552671"));
        assert_eq!(normaliser.normalise("07700 900123", None), None);
        // The `+CC` of the number wins over the region.
        assert_eq!(normaliser.normalise("+1 415 555 2671", region("GB")).as_deref(), Some("+14155552671"));
    }

    #[test]
    fn impossible_numbers_are_refused() {
        let normaliser = PhoneNormaliser::default();
        assert_eq!(normaliser.normalise("12", region("GB")), None);
        assert_eq!(normaliser.normalise("not a phone", region("GB")), None);
        assert_eq!(normaliser.normalise("+44 7700 900123 999 999", None), None);
        assert_eq!(normaliser.normalise("", region("GB")), None);
    }

    #[test]
    fn regions_come_from_codes_and_locales() {
        assert_eq!(PhoneRegion::from_locale("en-GB"), region("GB"));
        assert_eq!(PhoneRegion::from_locale("en_us"), region("US"));
        assert_eq!(PhoneRegion::from_locale("sr-Latn-RS"), region("RS"));
        assert_eq!(PhoneRegion::from_locale("en"), None);
        assert_eq!(region("NO").map(PhoneRegion::code), Some("NO"));
        assert_eq!(region("XX"), None);
    }
}
