//! E.164 phone normalisation, with a cache: parsing a number costs more than mapping the rest of
//! the event, and a user's phone repeats on every event they send.
//!
//! The metadata is loaded a country calling code at a time. The `phonenumber` crate's own database
//! checks the syntax of every region's patterns when it is built (some 600 million instructions,
//! 70 ms), which a `signal map` of one event would pay in full for the one or two regions it reads.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use phonenumber::country::Id as Region;
use phonenumber::metadata::{Database, loader};
use quick_cache::sync::Cache;

/// The `phonenumber` crate's metadata as it builds its database from, in postcard, listed by
/// calling code (each code's regions in the crate's order). Written from the crate's own database by
/// the test `the_committed_metadata_is_the_phonenumber_crates_own`, which fails when they differ.
const METADATA: &[u8] = include_bytes!("../metadata/phone.postcard");

/// Builds past which the whole database is loaded: each build loads every code asked for so far,
/// so a stream of numbers from many countries stops paying for partial builds.
const PARTIAL_BUILDS: u32 = 8;

/// The metadata, read but not yet built into a database (reading it costs about 1 ms).
struct Catalogue {
    by_code: HashMap<u16, Vec<loader::Metadata>>,
    regions: HashMap<Region, (u16, Box<str>)>,
    lengths: HashMap<u16, Lengths>,
}

/// The national number lengths the regions of one calling code allow, as bit sets: a length
/// allowed by every region, or by none, needs no pattern matched to learn the number's region.
#[derive(Debug, Clone, Copy)]
struct Lengths {
    any: u64,
    every: u64,
}

impl Lengths {
    fn of(regions: &[loader::Metadata]) -> Lengths {
        let mut lengths = Lengths { any: 0, every: u64::MAX };
        for region in regions {
            let possible = possible_lengths(region);
            lengths.any |= possible;
            lengths.every &= possible;
        }
        lengths
    }
}

/// The lengths a region allows: its general ones, or those of its number types where the metadata
/// leaves the general ones empty (as it often does), as [`e164_if_possible`] reads them.
fn possible_lengths(region: &loader::Metadata) -> u64 {
    let bits = |descriptor: &loader::Descriptor| {
        descriptor.possible_length.iter().filter(|&&length| length < 64).fold(0u64, |bits, &length| bits | 1 << length)
    };
    let general = region.general.as_ref().map_or(0, bits);
    if general != 0 {
        return general;
    }
    [
        &region.fixed_line,
        &region.mobile,
        &region.toll_free,
        &region.premium_rate,
        &region.shared_cost,
        &region.personal_number,
        &region.voip,
        &region.pager,
        &region.uan,
        &region.voicemail,
    ]
    .into_iter()
    .flatten()
    .fold(0, |all, descriptor| all | bits(descriptor))
}

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    // The file is the crate's own metadata, checked by a test; it cannot differ at run time.
    #[allow(clippy::expect_used)]
    let all: Vec<loader::Metadata> =
        postcard::from_bytes(METADATA).expect("the embedded phone metadata is readable (see its drift test)");
    let mut by_code: HashMap<u16, Vec<loader::Metadata>> = HashMap::new();
    let mut regions = HashMap::new();
    for metadata in all {
        let Some(code) = metadata.country_code else { continue };
        if let Some(region) = metadata.id.as_deref().and_then(|id| Region::from_str(id).ok()) {
            regions.entry(region).or_insert((code, Box::from(metadata.id.as_deref().unwrap_or_default())));
        }
        by_code.entry(code).or_default().push(metadata);
    }
    let lengths = by_code.iter().map(|(&code, regions)| (code, Lengths::of(regions))).collect();
    Catalogue { by_code, regions, lengths }
});

/// What follows a number's `+`.
#[derive(Debug, PartialEq, Eq)]
enum AfterPlus {
    /// No `+`, or characters this module does not read as digits.
    Unread,
    /// The calling code its first digits name.
    Code(u16),
    /// Three digits that name no calling code: not a number in any metadata.
    NoCode,
}

impl Catalogue {
    fn after_plus(&self, raw: &str) -> AfterPlus {
        let Some((_, after)) = raw.split_once('+') else {
            return AfterPlus::Unread;
        };
        let mut code = 0u16;
        for digit in after.bytes().filter(|b| !matches!(b, b' ' | b'-' | b'.' | b'(' | b')')).take(3) {
            if !digit.is_ascii_digit() {
                return AfterPlus::Unread;
            }
            code = code * 10 + u16::from(digit - b'0');
            if self.by_code.contains_key(&code) {
                return AfterPlus::Code(code);
            }
        }
        if code >= 100 { AfterPlus::NoCode } else { AfterPlus::Unread }
    }
}

/// The codes loaded so far, built into one database (its patterns compiled as they are first used).
struct Loaded {
    codes: BTreeSet<u16>,
    database: Arc<Database>,
    builds: u32,
}

static LOADED: RwLock<Option<Loaded>> = RwLock::new(None);

/// A database holding at least the metadata of `codes` (all of it when `codes` is `None`).
fn database_with(codes: Option<&[u16]>) -> Option<Arc<Database>> {
    let catalogue = &*CATALOGUE;
    let holds = |loaded: &Loaded| match codes {
        Some(codes) => codes.iter().all(|code| loaded.codes.contains(code)),
        None => loaded.codes.len() == catalogue.by_code.len(),
    };
    if let Some(loaded) = &*LOADED.read().unwrap_or_else(PoisonError::into_inner)
        && holds(loaded)
    {
        return Some(Arc::clone(&loaded.database));
    }
    let mut slot = LOADED.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(loaded) = &*slot
        && holds(loaded)
    {
        return Some(Arc::clone(&loaded.database));
    }
    let builds = slot.as_ref().map_or(0, |loaded| loaded.builds) + 1;
    let codes: BTreeSet<u16> = match codes {
        Some(codes) if builds < PARTIAL_BUILDS => slot
            .as_ref()
            .map(|loaded| loaded.codes.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(codes.iter().copied().filter(|code| catalogue.by_code.contains_key(code)))
            .collect(),
        _ => catalogue.by_code.keys().copied().collect(),
    };
    let database = Arc::new(database_of(&codes)?);
    *slot = Some(Loaded { codes, database: Arc::clone(&database), builds });
    Some(database)
}

/// The metadata of `codes` built into a database, its patterns reading ASCII digits.
fn database_of<'c>(codes: impl IntoIterator<Item = &'c u16>) -> Option<Database> {
    let catalogue = &*CATALOGUE;
    let metadata = codes
        .into_iter()
        .filter_map(|code| catalogue.by_code.get(code))
        .flat_map(|regions| regions.iter().cloned().map(with_ascii_digits))
        .collect();
    Database::from(metadata).ok()
}

/// The patterns with `[0-9]` for `\d`: they are matched against digits the parser has already made
/// ASCII (a number whose digits stay otherwise is refused when read as an integer), and a Unicode
/// `\d` makes each pattern several times costlier to compile.
fn with_ascii_digits(mut region: loader::Metadata) -> loader::Metadata {
    fn ascii(pattern: &mut String) {
        if pattern.contains("\\d") {
            *pattern = pattern.replace("\\d", "[0-9]");
        }
    }
    for descriptor in [
        &mut region.general,
        &mut region.fixed_line,
        &mut region.mobile,
        &mut region.toll_free,
        &mut region.premium_rate,
        &mut region.shared_cost,
        &mut region.personal_number,
        &mut region.voip,
        &mut region.pager,
        &mut region.uan,
        &mut region.emergency,
        &mut region.voicemail,
        &mut region.short_code,
        &mut region.standard_rate,
        &mut region.carrier,
        &mut region.no_international,
    ]
    .into_iter()
    .flatten()
    {
        descriptor.national_number.iter_mut().for_each(ascii);
    }
    for format in region.formats.iter_mut().chain(region.international_formats.iter_mut()) {
        format.pattern.iter_mut().for_each(ascii);
        format.leading_digits.iter_mut().for_each(ascii);
    }
    region.international_prefix.iter_mut().for_each(ascii);
    region.national_prefix_for_parsing.iter_mut().for_each(ascii);
    region.leading_digits.iter_mut().for_each(ascii);
    region
}

/// A two-letter region such as `GB`, checked against the phone metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhoneRegion(Region);

/// Each two-letter code's region, `AA` to `ZZ`: the crate's own reading of a code compares it with
/// every region's in turn, and every event's locale names one.
static REGIONS_BY_CODE: LazyLock<Vec<Option<Region>>> = LazyLock::new(|| {
    (b'A'..=b'Z')
        .flat_map(|first| (b'A'..=b'Z').map(move |second| [first, second]))
        .map(|code| std::str::from_utf8(&code).ok().and_then(|code| Region::from_str(code).ok()))
        .collect()
});

impl PhoneRegion {
    /// The region named by an ISO 3166 code (`GB`, `us`), if the phone metadata knows it.
    pub fn parse(code: &str) -> Option<PhoneRegion> {
        let region = PhoneRegion::parse_code(code)?;
        CATALOGUE.regions.contains_key(&region.0).then_some(region)
    }

    /// A CLDR region id, without asking the metadata (a region it lacks just normalises nothing);
    /// cheap enough for every event's locale.
    fn parse_code(code: &str) -> Option<PhoneRegion> {
        let &[first, second] = code.trim().as_bytes() else {
            return None;
        };
        let (first, second) = (first.to_ascii_uppercase(), second.to_ascii_uppercase());
        if !(first.is_ascii_uppercase() && second.is_ascii_uppercase()) {
            return None;
        }
        let at = usize::from(first - b'A') * 26 + usize::from(second - b'A');
        REGIONS_BY_CODE.get(at).copied().flatten().map(PhoneRegion)
    }

    /// The country of a locale such as `en-GB`, `en_GB` or `sr-Latn-RS`.
    pub fn from_locale(locale: &str) -> Option<PhoneRegion> {
        // Most locales are a language and a country, `en-GB`.
        if let &[_, _, b'-' | b'_', first, second] = locale.as_bytes()
            && first.is_ascii_alphabetic()
            && second.is_ascii_alphabetic()
        {
            return locale.get(3..).and_then(PhoneRegion::parse_code);
        }
        locale
            .split(['-', '_'])
            .skip(1)
            .find(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_alphabetic()))
            .and_then(PhoneRegion::parse_code)
    }

    /// The ISO code.
    pub fn code(self) -> &'static str {
        // The id's own `as_ref` borrows from `self`; the catalogue's copy lives as long as the program.
        CATALOGUE.regions.get(&self.0).map_or("??", |(_, id)| id)
    }

    /// The calling code of the region, if the metadata knows it.
    fn calling_code(self) -> Option<u16> {
        CATALOGUE.regions.get(&self.0).map(|&(code, _)| code)
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

    /// Loads the metadata of `regions` now, so that the first event does not pay for it.
    pub fn warm_up(&self, regions: &[PhoneRegion]) {
        let codes: Vec<u16> = regions.iter().filter_map(|region| region.calling_code()).collect();
        let _ = database_with(Some(&codes));
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
    normalise_in(raw, region, &database_with)
}

/// [`normalise_uncached`] with the metadata of the codes asked for (all of it for `None`) from `load`.
fn normalise_in(raw: &str, region: Option<PhoneRegion>, load: &Load<'_>) -> Option<Arc<str>> {
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    let region_code = region.and_then(PhoneRegion::calling_code);
    // A region the metadata lacks reads no national number.
    let region = region.filter(|_| region_code.is_some());
    let after_plus = CATALOGUE.after_plus(raw);
    let plus_code = match after_plus {
        AfterPlus::Code(code) => Some(code),
        AfterPlus::Unread | AfterPlus::NoCode => None,
    };
    let codes: Vec<u16> = region_code.into_iter().chain(plus_code).collect();
    let mut database = load(Some(&codes))?;
    let number = match phonenumber::parse_with(&database, region.map(|r| r.0), raw) {
        Ok(number) => number,
        // Written with an international prefix (`00 33 …`) or a `+` this module did not read:
        // the code it names is found in the whole metadata, as the crate itself would.
        Err(phonenumber::ParseError::InvalidCountryCode) if after_plus != AfterPlus::NoCode => {
            database = load(None)?;
            phonenumber::parse_with(&database, region.map(|r| r.0), raw).ok()?
        }
        Err(_) => return None,
    };
    let national = number.national();
    let digits = national.value().checked_ilog10().map_or(1, |log| log + 1) + u32::from(national.zeros());
    match CATALOGUE.lengths.get(&number.code().value()) {
        Some(lengths) if digits >= 64 || lengths.any & 1 << digits == 0 => None,
        Some(lengths) if lengths.every & 1 << digits != 0 => Some(e164(&number)),
        // Finding the region means matching its number patterns, each compiled on first use.
        _ => e164_if_possible(&number, &database),
    }
}

fn e164(number: &phonenumber::PhoneNumber) -> Arc<str> {
    Arc::from(format!("+{}{}", number.code().value(), number.national()))
}

/// Loads a database holding the metadata of some codes, or of all of them for `None`.
type Load<'a> = dyn Fn(Option<&[u16]>) -> Option<Arc<Database>> + 'a;

/// The number in E.164 when it has a possible length for its country.
fn e164_if_possible(number: &phonenumber::PhoneNumber, database: &Database) -> Option<Arc<str>> {
    // Numbers outside allocated ranges match no region's patterns; their country code still names
    // the metadata whose lengths apply.
    let metadata = number
        .metadata(&database)
        .or_else(|| database.by_code(&number.code().value()).and_then(|all| all.into_iter().next()))?;
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
    Some(e164(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata as the `phonenumber` crate's whole database holds it, by calling code.
    fn crates_own_metadata() -> Vec<loader::Metadata> {
        use phonenumber::metadata::{DATABASE, Descriptor, Format};
        let descriptor = |d: &Descriptor| loader::Descriptor {
            national_number: Some(d.national_number().as_str().to_owned()),
            possible_length: d.possible_length().to_vec(),
            possible_local_length: d.possible_local_length().to_vec(),
            example: d.example().map(str::to_owned),
        };
        let format = |f: &Format| loader::Format {
            pattern: Some(f.pattern().as_str().to_owned()),
            format: Some(f.format().to_owned()),
            leading_digits: f.leading_digits().iter().map(|r| r.as_str().to_owned()).collect(),
            national_prefix_formatting_rule: f.national_prefix().map(str::to_owned),
            national_prefix_optional_when_formatting: f.is_national_prefix_optional(),
            domestic_carrier: f.domestic_carrier().map(str::to_owned),
        };
        let mut codes: Vec<u16> = DATABASE.iter().map(|m| m.country_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        let mut all = Vec::new();
        for code in codes {
            for m in DATABASE.by_code(&code).unwrap_or_default() {
                let d = m.descriptors();
                all.push(loader::Metadata {
                    general: Some(descriptor(d.general())),
                    fixed_line: d.fixed_line().map(descriptor),
                    mobile: d.mobile().map(descriptor),
                    toll_free: d.toll_free().map(descriptor),
                    premium_rate: d.premium_rate().map(descriptor),
                    shared_cost: d.shared_cost().map(descriptor),
                    personal_number: d.personal_number().map(descriptor),
                    voip: d.voip().map(descriptor),
                    pager: d.pager().map(descriptor),
                    uan: d.uan().map(descriptor),
                    emergency: d.emergency().map(descriptor),
                    voicemail: d.voicemail().map(descriptor),
                    short_code: d.short_code().map(descriptor),
                    standard_rate: d.standard_rate().map(descriptor),
                    carrier: d.carrier().map(descriptor),
                    no_international: d.no_international().map(descriptor),
                    id: Some(m.id().to_owned()),
                    country_code: Some(code),
                    international_prefix: m.international_prefix().map(|r| r.as_str().to_owned()),
                    preferred_international_prefix: m.preferred_international_prefix().map(str::to_owned),
                    national_prefix: m.national_prefix().map(str::to_owned),
                    preferred_extension_prefix: m.preferred_extension_prefix().map(str::to_owned),
                    national_prefix_for_parsing: m.national_prefix_for_parsing().map(|r| r.as_str().to_owned()),
                    national_prefix_transform_rule: m.national_prefix_transform_rule().map(str::to_owned),
                    formats: m.formats().iter().map(format).collect(),
                    international_formats: m.international_formats().iter().map(format).collect(),
                    main_country_for_code: m.is_main_country_for_code(),
                    leading_digits: m.leading_digits().map(|r| r.as_str().to_owned()),
                    mobile_number_portable: m.is_mobile_number_portable(),
                    defaults: loader::Defaults::default(),
                });
            }
        }
        all
    }

    #[test]
    fn the_committed_metadata_is_the_phonenumber_crates_own() {
        let written = postcard::to_allocvec(&crates_own_metadata()).expect("serialisable");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/phone.postcard");
        if std::env::var_os("SIGNAL_WRITE_PHONE_METADATA").is_some() {
            std::fs::write(path, &written).expect("write the metadata");
        }
        assert!(
            written == METADATA,
            "crates/blueprint/metadata/phone.postcard differs from the phonenumber crate's metadata \
             (was the crate updated?): run `SIGNAL_WRITE_PHONE_METADATA=1 cargo test -p blueprint --lib \
             the_committed_metadata` and commit the file"
        );
    }

    fn codes_of(catalogue: &Catalogue) -> Vec<u16> {
        let mut codes: Vec<u16> = catalogue.by_code.keys().copied().collect();
        codes.sort_unstable();
        codes
    }

    /// The number as the crate's whole database reads it, formatted by the crate.
    fn with_the_whole_database(raw: &str, region: Option<PhoneRegion>) -> Option<String> {
        use phonenumber::metadata::DATABASE;
        let number = phonenumber::parse(region.map(|r| r.0), raw).ok()?;
        e164_if_possible(&number, &DATABASE)?;
        Some(number.format().mode(phonenumber::Mode::E164).to_string())
    }

    #[test]
    fn each_calling_code_alone_reads_its_numbers_as_the_whole_database_does() {
        let catalogue = &*CATALOGUE;
        let gb = region("GB").expect("GB");
        let us = region("US").expect("US");
        let whole = Arc::new(database_of(&codes_of(catalogue)).expect("the whole database"));
        let codes = codes_of(catalogue);
        let (mut compared, mut differences) = (0, Vec::new());
        for code in codes {
            // Only this code's metadata and the reading region's: anything else asked for is a miss.
            let alone = Arc::new(database_of(&[code, 44, 1]).expect("a database"));
            let load = |codes: Option<&[u16]>| match codes {
                Some(codes) if codes.iter().all(|c| [code, 44, 1].contains(c)) => Some(Arc::clone(&alone)),
                Some(codes) => panic!("asked for {codes:?} reading a number of +{code}"),
                None => Some(Arc::clone(&whole)),
            };
            for metadata in &catalogue.by_code[&code] {
                let own = metadata.id.as_deref().and_then(region);
                let prefix = metadata.national_prefix.clone().unwrap_or_default();
                let descriptors = [&metadata.general, &metadata.fixed_line, &metadata.mobile, &metadata.toll_free, &metadata.voip];
                for example in descriptors.into_iter().flatten().filter_map(|d| d.example.as_deref()) {
                    let cases = [
                        (format!("+{code} {example}"), None),
                        (format!("+{code}{example}"), Some(gb)),
                        (format!("tel:+{code}-{example}"), None),
                        (format!("00 {code} {example}"), Some(gb)),
                        (format!("011{code}{example}"), Some(us)),
                        (format!("{prefix}{example}"), own),
                        (example.to_owned(), own),
                        (format!("{prefix}{example}"), Some(gb)),
                        // A digit more or one fewer: a length some regions of the code allow and others not.
                        (format!("+{code}{example}4"), None),
                        (format!("+{code}{}", example.get(1..).unwrap_or_default()), None),
                        (format!("{prefix}{example}4"), own),
                        // Digits of another script, which the parser reads as their ASCII digits.
                        (format!("+{code}{}", example.chars().map(|c| c.to_digit(10).and_then(|d| char::from_u32(0x0660 + d)).unwrap_or(c)).collect::<String>()), None),
                        (format!("{prefix}{}", example.chars().map(|c| c.to_digit(10).and_then(|d| char::from_u32(0xFF10 + d)).unwrap_or(c)).collect::<String>()), own),
                    ];
                    for (raw, reading) in cases {
                        let expected = with_the_whole_database(&raw, reading);
                        let got = normalise_in(&raw, reading, &load).map(|n| n.to_string());
                        compared += 1;
                        if got != expected {
                            differences.push(format!("{raw:?} in {reading:?}: {got:?}, whole database {expected:?}"));
                        }
                    }
                }
            }
        }
        assert!(compared > 5_000, "{compared} numbers compared");
        assert!(differences.is_empty(), "{} of {compared} differ:\n{}", differences.len(), differences.join("\n"));
    }

    #[test]
    fn a_number_after_an_international_prefix_is_found_in_the_whole_metadata() {
        let database = |codes: &[u16]| Arc::new(database_of(codes).expect("a database"));
        let (gb_alone, gb_and_france) = (database(&[44]), database(&[44, 33]));
        let asked_for_all = std::cell::Cell::new(false);
        let load = |codes: Option<&[u16]>| match codes {
            Some(codes) => {
                assert_eq!(codes, [44], "only the region's code is known before parsing");
                Some(Arc::clone(&gb_alone))
            }
            None => {
                asked_for_all.set(true);
                Some(Arc::clone(&gb_and_france))
            }
        };
        let normalised = normalise_in("00 33 1 23 45 67 89", region("GB"), &load);
        assert_eq!(normalised.as_deref(), Some("+33123456789"));
        assert!(asked_for_all.get());
        // A `+` and three digits that name no calling code: no metadata reads it, none is loaded.
        asked_for_all.set(false);
        assert_eq!(normalise_in("+999 123 4567", region("GB"), &load), None);
        assert!(!asked_for_all.get());
    }

    #[test]
    fn a_number_loads_only_the_codes_it_names() {
        // The codes asked for, through a loader of its own: the process-wide one is shared with
        // every other test, which load codes of their own.
        let asked = std::cell::RefCell::new(Vec::new());
        let load = |codes: Option<&[u16]>| {
            asked.borrow_mut().push(codes.map(<[u16]>::to_vec));
            database_of(codes.unwrap_or(&[])).map(Arc::new)
        };
        assert_eq!(normalise_in("+33 1 23 45 67 89", None, &load).as_deref(), Some("+33123456789"));
        assert_eq!(*asked.borrow(), [Some(vec![33])]);
        asked.borrow_mut().clear();
        assert_eq!(normalise_in("07700 900123", region("GB"), &load).as_deref(), Some("+447700900123"));
        assert_eq!(*asked.borrow(), [Some(vec![44])]);
        // And the process-wide loader holds what it was asked for.
        let normaliser = PhoneNormaliser::default();
        assert_eq!(normaliser.normalise("+33 1 23 45 67 89", None).as_deref(), Some("+33123456789"));
        let loaded = LOADED.read().unwrap_or_else(PoisonError::into_inner);
        assert!(loaded.as_ref().is_some_and(|loaded| loaded.codes.contains(&33)));
    }

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
