//! A validating JSON scanner that records where values are instead of building them. An event is
//! read once: members become (name, span) pairs, and each span remembers whether it is already
//! compact, so a value that passes through to MoEngage is copied, never re-parsed or rebuilt.
//!
//! It accepts what `serde_json` accepts for a borrowed `RawValue` (a property test holds it to that),
//! except that it refuses nesting deeper than [`MAX_DEPTH`], and member names it must read as text
//! (the event's top level, `properties`, `traits`, `context`) that are not text: a lone surrogate
//! escape such as `"\ud800"`, which no Rust or MoEngage string can hold. Values that are valid JSON
//! but that MoEngage cannot read (a lone surrogate in a value, a number beyond a double) are noted
//! in [`TopLevel::unreadable`], so that an event is refused alone, never a whole batch.

use std::borrow::Cow;
use std::fmt;

/// The deepest nesting accepted, as in `serde_json`'s own limit.
pub const MAX_DEPTH: usize = 128;

/// The JSON kind of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// Its bit in [`ItemSummary::kinds`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// How error messages name it.
    pub fn name(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        }
    }
}

/// What the scan of an array saw of its items, so that a check of their kinds, number or length
/// need not scan the array again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ItemSummary {
    /// How many items.
    pub count: u32,
    /// One bit per [`JsonKind`] present (see [`JsonKind::bit`]).
    pub kinds: u8,
    /// The JSON length, quotes included, of the longest string item.
    pub longest_string: u32,
    /// For an array of objects that is a member of an event's `properties`, `traits` or `context`:
    /// where its items' members are in the event's [`ItemMember`] list (from, to).
    pub members: Option<(u32, u32)>,
}

/// One member of an object in an array, as the event's scan found it: the array's flattening
/// reads these rather than walking the array's text again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemMember<'a> {
    /// The item's index in the array.
    pub item: u32,
    /// The member's name.
    pub name: Cow<'a, str>,
    /// The member's value.
    pub value: Raw<'a>,
}

impl ItemSummary {
    /// Counts one more item.
    pub fn add(&mut self, item: &Raw<'_>) {
        self.count = self.count.saturating_add(1);
        let kind = item.kind();
        self.kinds |= kind.bit();
        if kind == JsonKind::String {
            self.longest_string = self.longest_string.max(u32::try_from(item.json.len()).unwrap_or(u32::MAX));
        }
    }
}

/// The text of one valid JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a> {
    json: &'a str,
    shape: Shape,
}

/// What a scan learnt of a value besides its text, in one word.
// One word rather than a struct of flags and counts: values are copied by the thousand, and a
// struct written field by field then copied whole stalls the copy's wide loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Shape(u64);

impl Shape {
    /// No white space outside strings.
    const COMPACT: u64 = 1;
    /// A string with at least one escape (so it cannot be borrowed as is).
    const ESCAPED: u64 = 1 << 1;
    /// An array scanned as part of a document: the fields below say what its items are.
    const SUMMED: u64 = 1 << 2;
    /// Its object items' members are listed in the event's [`ItemMember`]s, from `FROM` to `TO`.
    const LISTED: u64 = 1 << 3;
    const KINDS: (u32, u32) = (4, 6);
    // Counts saturate: they are compared with MoEngage's limits (50 items, 512 characters), far below.
    const COUNT: (u32, u32) = (10, 14);
    const LONGEST: (u32, u32) = (24, 10);
    // Lists past these positions are not kept: their arrays are walked again instead.
    const FROM: (u32, u32) = (34, 15);
    const TO: (u32, u32) = (49, 15);

    fn of(compact: bool, escaped: bool) -> Shape {
        Shape(u64::from(compact) | (u64::from(escaped) << 1))
    }

    fn has(self, flag: u64) -> bool {
        self.0 & flag != 0
    }

    fn field(self, (at, bits): (u32, u32)) -> u32 {
        u32::try_from((self.0 >> at) & ((1 << bits) - 1)).unwrap_or(u32::MAX)
    }

    fn with_field(self, (at, bits): (u32, u32), value: u32) -> Shape {
        let most = (1u64 << bits) - 1;
        Shape(self.0 | (u64::from(value).min(most) << at))
    }

    /// With an array's summary; the members' positions only when they fit.
    fn summed(self, summary: &ItemSummary) -> Shape {
        let mut shape = Shape(self.0 | Shape::SUMMED)
            .with_field(Shape::KINDS, u32::from(summary.kinds))
            .with_field(Shape::COUNT, summary.count)
            .with_field(Shape::LONGEST, summary.longest_string);
        if let Some((from, to)) = summary.members
            && to < 1 << Shape::TO.1
        {
            shape = Shape(shape.0 | Shape::LISTED).with_field(Shape::FROM, from).with_field(Shape::TO, to);
        }
        shape
    }

    fn summary(self) -> Option<ItemSummary> {
        self.has(Shape::SUMMED).then(|| ItemSummary {
            count: self.field(Shape::COUNT),
            kinds: u8::try_from(self.field(Shape::KINDS)).unwrap_or(u8::MAX),
            longest_string: self.field(Shape::LONGEST),
            members: self.has(Shape::LISTED).then(|| (self.field(Shape::FROM), self.field(Shape::TO))),
        })
    }
}

impl<'a> Raw<'a> {
    /// A value known to be valid, compact JSON (for example from `serde_json::to_string`).
    pub fn trusted(json: &'a str) -> Raw<'a> {
        Raw { json, shape: Shape::of(true, memchr::memchr(b'\\', json.as_bytes()).is_some()) }
    }

    fn compact(&self) -> bool {
        self.shape.has(Shape::COMPACT)
    }

    fn escaped(&self) -> bool {
        self.shape.has(Shape::ESCAPED)
    }

    /// For an array scanned as part of a document, what its items are; `None` otherwise. Its
    /// count and longest string saturate (at 16,383 items and 1,023 bytes): enough to compare with
    /// MoEngage's limits.
    pub fn item_summary(&self) -> Option<ItemSummary> {
        self.shape.summary()
    }

    /// The members of this array's object items, from `scanned` (the [`ItemMember`] list of the
    /// event it was scanned in); `None` when the scan did not list them, or `scanned` is another's.
    pub fn item_members<'t>(&self, scanned: &'t [ItemMember<'a>]) -> Option<&'t [ItemMember<'a>]> {
        let (from, to) = self.item_summary()?.members?;
        let listed = scanned.get(usize::try_from(from).ok()?..usize::try_from(to).ok()?)?;
        // Each value lies inside this array's text, or the list is another event's.
        let inside = |member: &ItemMember<'a>| {
            let (outer, inner) = (self.json.as_bytes().as_ptr_range(), member.value.json.as_bytes().as_ptr_range());
            outer.start <= inner.start && inner.end <= outer.end
        };
        (listed.first().is_none_or(inside) && listed.last().is_none_or(inside)).then_some(listed)
    }

    /// The JSON text.
    pub fn get(&self) -> &'a str {
        self.json
    }

    /// Its kind, from the first byte.
    #[inline]
    pub fn kind(&self) -> JsonKind {
        kind_of(self.json)
    }

    /// The string's text, borrowed when it has no escapes; `None` for other kinds.
    #[inline(always)]
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if self.kind() != JsonKind::String {
            return None;
        }
        if !self.escaped() {
            return self.json.get(1..self.json.len().saturating_sub(1)).map(Cow::Borrowed);
        }
        serde_json::from_str::<String>(self.json).ok().map(Cow::Owned)
    }

    /// Appends the value as compact JSON.
    pub fn write_compact(&self, out: &mut Vec<u8>) {
        if self.compact() {
            out.extend_from_slice(self.json.as_bytes());
        } else {
            minify(out, self.json.as_bytes());
        }
    }

    /// Appends the value as compact JSON to text.
    pub fn push_compact(&self, out: &mut String) {
        if self.compact() {
            out.push_str(self.json);
        } else {
            let mut bytes = Vec::with_capacity(self.json.len());
            minify(&mut bytes, self.json.as_bytes());
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    /// The members of an object value.
    pub fn members(&self) -> Result<Vec<(Cow<'a, str>, Raw<'a>)>, ScanError> {
        let mut scanner = Scanner::new(self.json);
        let members = scanner.object_members(0)?;
        scanner.end()?;
        Ok(members)
    }

    /// Calls `member` with each member of each object in an array value, in order: the item's
    /// index, the member's name and its value. An item that is not an object is passed whole, with
    /// no name. The text was checked when it was scanned, so this walks it without checking it
    /// again, several times faster; text that is not valid JSON ends the walk early, never a panic.
    pub fn each_item_member(&self, mut member: impl FnMut(usize, Option<&str>, Raw<'a>)) {
        let (text, bytes) = (self.json, self.json.as_bytes());
        let mut walk = Walk { bytes, pos: 0 };
        walk.blank();
        if !walk.eat(b'[') {
            return;
        }
        let mut index = 0;
        loop {
            walk.blank();
            match walk.peek() {
                Some(b']') | None => return,
                Some(b'{') => {
                    let whole = walk.members(text, |key, value| {
                        if let Some(name) = key.as_str() {
                            member(index, Some(&name), value);
                        }
                    });
                    if !whole {
                        return;
                    }
                }
                Some(_) => {
                    let Some(value) = walk.value(text) else { return };
                    member(index, None, value);
                }
            }
            index += 1;
            walk.blank();
            if !walk.eat(b',') {
                return;
            }
        }
    }

    /// The value of member `name` of an object value (the last, when the name is repeated, as JSON
    /// parsers read it); `None` for other kinds. Like [`Raw::each_item_member`], it walks text
    /// already checked, with nothing allocated.
    pub fn member(&self, name: &str) -> Option<Raw<'a>> {
        let mut walk = Walk { bytes: self.json.as_bytes(), pos: 0 };
        walk.blank();
        if walk.peek() != Some(b'{') {
            return None;
        }
        let mut found = None;
        walk.members(self.json, |key, value| {
            let named = if key.escaped() {
                key.as_str().is_some_and(|key| same_name(&key, name))
            } else {
                key.json.get(1..key.json.len().saturating_sub(1)).is_some_and(|key| same_name(key, name))
            };
            if named {
                found = Some(value);
            }
        });
        found
    }

    /// The items of an array value.
    pub fn items(&self) -> Result<Vec<Raw<'a>>, ScanError> {
        let mut scanner = Scanner::new(self.json);
        let mut items = Vec::new();
        scanner.whitespace();
        scanner.items(|scanner| {
            items.push(scanner.value(1)?);
            Ok(())
        })?;
        scanner.end()?;
        Ok(items)
    }
}

/// Where and why the text is not valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
    /// What was expected or found.
    pub message: &'static str,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {}, column {}", self.message, self.line, self.column)
    }
}

/// A member of the top level whose value may be an object that is read member by member.
pub enum Member<'a> {
    /// Not present.
    Absent,
    /// An object, with its members.
    Object(Vec<(Cow<'a, str>, Raw<'a>)>),
    /// Present, but not an object.
    Other(JsonKind),
}

/// An event's top level: members as spans, except the named objects, which are read one level
/// deeper in the same pass.
pub struct TopLevel<'a, const N: usize> {
    /// Other members, in order.
    pub members: Vec<(Cow<'a, str>, Raw<'a>)>,
    /// The named members, in the order of the names given.
    pub objects: [Member<'a>; N],
    /// The named members' values as written, for writing the object back.
    pub spans: [Option<Raw<'a>>; N],
    /// The first value in the text that MoEngage cannot read, if any.
    pub unreadable: Option<Unreadable>,
    /// The members of the object items of arrays in the named objects (see
    /// [`ItemSummary::members`]).
    pub item_members: Vec<ItemMember<'a>>,
}

/// A whole JSON text, read one level deep: a request body that is one event or a batch of them.
pub enum Document<'a> {
    /// An object's members, in order.
    Object(Vec<(Cow<'a, str>, Raw<'a>)>),
    /// An array's items, in order.
    Array(Vec<Raw<'a>>),
    /// A value of another kind.
    Other(JsonKind),
}

/// Scans `text`, which must be exactly one JSON value, and reads its first level.
pub fn document(text: &str) -> Result<Document<'_>, ScanError> {
    let mut scanner = Scanner::new(text);
    scanner.whitespace();
    let document = match scanner.peek() {
        Some(b'{') => Document::Object(scanner.object_members(0)?),
        Some(b'[') => {
            let mut items = Vec::new();
            scanner.items(|scanner| {
                items.push(scanner.value(1)?);
                Ok(())
            })?;
            Document::Array(items)
        }
        _ => Document::Other(scanner.value(0)?.kind()),
    };
    scanner.end()?;
    Ok(document)
}

/// Scans `text`, which must be one JSON object; `objects` names the members to read a level deeper.
pub fn top_level<'a, const N: usize>(
    text: &'a str,
    objects: [&str; N],
) -> Result<TopLevel<'a, N>, ScanError> {
    let mut scanner = Scanner::new(text);
    let mut top = TopLevel {
        members: Vec::with_capacity(12),
        objects: std::array::from_fn(|_| Member::Absent),
        spans: [None; N],
        unreadable: None,
        item_members: Vec::new(),
    };
    scanner.whitespace();
    if scanner.peek() != Some(b'{') {
        // A value of another kind is valid JSON of the wrong shape; tell the two apart.
        let value = scanner.value(0)?;
        scanner.end()?;
        return Err(ScanError { line: 1, column: 1, message: not_an_object(value.kind()) });
    }
    scanner.members(|scanner, key| {
        let key = scanner.decode_key(key)?;
        // Later duplicates replace earlier ones, as JSON parsers do.
        match objects.iter().position(|name| same_name(name, &key)) {
            Some(slot) if scanner.peek() == Some(b'{') => {
                let start = scanner.pos;
                let outer_spaced = std::mem::replace(&mut scanner.spaced, false);
                scanner.list_item_members = true;
                top.objects[slot] = Member::Object(scanner.object_members(1)?);
                scanner.list_item_members = false;
                let compact = !scanner.spaced;
                scanner.spaced = outer_spaced || !compact;
                let json = scanner.text.get(start..scanner.pos).unwrap_or_default();
                top.spans[slot] = Some(Raw { json, shape: Shape::of(compact, false) });
            }
            Some(slot) => {
                let value = scanner.value(1)?;
                top.objects[slot] = Member::Other(value.kind());
                top.spans[slot] = Some(value);
            }
            None => {
                let value = scanner.value(1)?;
                top.members.push((key, value));
            }
        }
        Ok(())
    })?;
    scanner.end()?;
    top.unreadable = scanner.unreadable;
    top.item_members = scanner.item_members;
    Ok(top)
}

fn not_an_object(kind: JsonKind) -> &'static str {
    match kind {
        JsonKind::Array => "the event is an array, not an object",
        JsonKind::String => "the event is a string, not an object",
        JsonKind::Number => "the event is a number, not an object",
        JsonKind::Bool => "the event is a boolean, not an object",
        JsonKind::Null | JsonKind::Object => "the event is null, not an object",
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Set whenever white space is skipped; containers read it to know whether they are compact.
    spaced: bool,
    /// The first value found that is valid JSON but that MoEngage cannot read.
    unreadable: Option<Unreadable>,
    /// Whether the members of a named object are being scanned: the object items of arrays
    /// among them have their members listed in `item_members`.
    list_item_members: bool,
    item_members: Vec<ItemMember<'a>>,
}

/// Valid JSON that no MoEngage request can carry: refused per event, never for a whole body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// A `\uD800`–`\uDFFF` escape without its pair: no text can hold it.
    LoneSurrogate,
    /// A number beyond what a double can hold, such as `1e400`.
    NumberOutOfRange,
}

impl Unreadable {
    /// What is wrong, in a sentence.
    pub fn message(self) -> &'static str {
        match self {
            Unreadable::LoneSurrogate => {
                "a string holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text: MoEngage would refuse the event"
            }
            Unreadable::NumberOutOfRange => {
                "a number is beyond what a double can hold (such as 1e400): MoEngage would refuse the event"
            }
        }
    }
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            spaced: false,
            unreadable: None,
            list_item_members: false,
            item_members: Vec::new(),
        }
    }

    fn unreadable(&mut self, what: Unreadable) {
        self.unreadable.get_or_insert(what);
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
            self.spaced = true;
        }
    }

    fn expect(&mut self, byte: u8, message: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    fn end(&mut self) -> Result<(), ScanError> {
        self.whitespace();
        if self.pos == self.bytes.len() { Ok(()) } else { Err(self.error("unexpected text after the value")) }
    }

    fn error(&self, message: &'static str) -> ScanError {
        let before = self.text.get(..self.pos.min(self.text.len())).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(1, |rest| rest.chars().count() + 1);
        let message = if self.pos >= self.bytes.len() { "unexpected end of input" } else { message };
        ScanError { line, column, message }
    }

    /// A member name as text; a name that cannot be text (a lone surrogate escape) is refused.
    // Inlined for a name without escapes, borrowed as it is: nearly every name.
    #[inline(always)]
    fn decode_key(&self, key: Raw<'a>) -> Result<Cow<'a, str>, ScanError> {
        if !key.escaped()
            && let Some(name) = key.json.get(1..key.json.len().saturating_sub(1))
        {
            return Ok(Cow::Borrowed(name));
        }
        self.decode_escaped_key(key)
    }

    #[inline(never)]
    fn decode_escaped_key(&self, key: Raw<'a>) -> Result<Cow<'a, str>, ScanError> {
        key.as_str().ok_or_else(|| self.error("a member name is not valid text"))
    }

    fn object_members(&mut self, depth: usize) -> Result<Vec<(Cow<'a, str>, Raw<'a>)>, ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested deeper than 128 levels"));
        }
        let mut members = Vec::with_capacity(8);
        self.whitespace();
        self.members(|scanner, key| {
            let key = scanner.decode_key(key)?;
            members.push((key, scanner.value(depth + 1)?));
            Ok(())
        })?;
        Ok(members)
    }

    /// Scans an object whose `{` is the current byte, calling `member` with each name (undecoded)
    /// and the scanner at the start of its value, which `member` must scan.
    fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, Raw<'a>) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        self.expect(b'{', "expected `{`")?;
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        // Each step first tries the byte compact JSON has there, and skips white space only when
        // that is not it.
        loop {
            if self.peek() != Some(b'"') {
                self.whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a member name in double quotes"));
                }
            }
            let key = self.string()?;
            if self.peek() == Some(b':') {
                self.pos += 1;
            } else {
                self.whitespace();
                self.expect(b':', "expected `:`")?;
            }
            self.whitespace();
            member(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    self.whitespace();
                    match self.next_byte() {
                        Some(b',') => {}
                        Some(b'}') => return Ok(()),
                        _ => return Err(self.error("expected `,` or `}`")),
                    }
                }
            }
        }
    }

    /// Scans an array whose `[` is the current byte, calling `item` with the scanner at the start
    /// of each item, which `item` must scan.
    fn items(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), ScanError>) -> Result<(), ScanError> {
        self.expect(b'[', "expected `[`")?;
        self.whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            item(self)?;
            // As in `members`, written out rather than shared: one helper for both measured 0.8%
            // more instructions and 4% more time per event.
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    self.whitespace();
                    match self.next_byte() {
                        Some(b',') => {}
                        Some(b']') => return Ok(()),
                        _ => return Err(self.error("expected `,` or `]`")),
                    }
                }
            }
        }
    }

    /// Scans one value starting at the current byte (no leading white space).
    // Most values are strings: theirs is the path kept in the caller, without a call.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Result<Raw<'a>, ScanError> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let start = self.pos;
        let shape = self.other_value(depth)?;
        Ok(Raw { json: self.text.get(start..self.pos).unwrap_or_default(), shape })
    }

    /// [`Scanner::value`] for a value that is not a string: what it learnt, the scanner past it.
    // Its caller builds the value from its end and this word, so that the two paths meet on
    // numbers rather than on a value in memory, written in parts and read whole.
    #[inline(never)]
    fn other_value(&mut self, depth: usize) -> Result<Shape, ScanError> {
        let outer_spaced = std::mem::replace(&mut self.spaced, false);
        let mut items = None;
        match self.peek() {
            Some(b'{') => self.object(depth)?,
            Some(b'[') => items = Some(self.array(depth)?),
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.error("expected a value")),
        }
        let compact = !self.spaced;
        // White space inside this value is also inside whatever contains it.
        self.spaced = outer_spaced || !compact;
        let shape = Shape::of(compact, false);
        Ok(items.map_or(shape, |items| shape.summed(&items)))
    }

    fn array(&mut self, depth: usize) -> Result<ItemSummary, ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested deeper than 128 levels"));
        }
        let mut summary = ItemSummary::default();
        // A member of a named object (depth 2): the array a blueprint flattens.
        if self.list_item_members && depth == 2 {
            if self.item_members.capacity() == 0 {
                // An order's products: a few items of ten or so members each.
                self.item_members.reserve(64);
            }
            let from = self.item_members.len();
            let mut index = 0u32;
            self.items(|scanner| {
                let item = match scanner.peek() {
                    Some(b'{') => {
                        let start = scanner.pos;
                        let shape = scanner.listed_object(depth + 1, index)?;
                        Raw { json: scanner.text.get(start..scanner.pos).unwrap_or_default(), shape }
                    }
                    _ => scanner.value(depth + 1)?,
                };
                summary.add(&item);
                index = index.saturating_add(1);
                Ok(())
            })?;
            let listed = (u32::try_from(from), u32::try_from(self.item_members.len()));
            match listed {
                (Ok(from), Ok(to)) if summary.kinds == JsonKind::Object.bit() => summary.members = Some((from, to)),
                _ => self.item_members.truncate(from),
            }
            return Ok(summary);
        }
        self.items(|scanner| {
            summary.add(&scanner.value(depth + 1)?);
            Ok(())
        })?;
        Ok(summary)
    }

    /// Scans an object item of an array, as [`Scanner::value`] would, listing its members.
    fn listed_object(&mut self, depth: usize, item: u32) -> Result<Shape, ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested deeper than 128 levels"));
        }
        let outer_spaced = std::mem::replace(&mut self.spaced, false);
        self.members(|scanner, key| {
            let value = scanner.value(depth + 1)?;
            // A name that is not text is passed over, as a walk of the text does.
            if let Some(name) = key.as_str() {
                scanner.item_members.push(ItemMember { item, name, value });
            }
            Ok(())
        })?;
        let compact = !self.spaced;
        self.spaced = outer_spaced || !compact;
        Ok(Shape::of(compact, false))
    }

    fn object(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested deeper than 128 levels"));
        }
        self.members(|scanner, _| scanner.value(depth + 1).map(|_| ()))
    }

    /// Scans a string whose opening quote is the current byte.
    // Inlined for its common case, a string without escapes: the call cost more than the scan.
    #[inline(always)]
    fn string(&mut self) -> Result<Raw<'a>, ScanError> {
        let start = self.pos;
        let end = skip_plain_string_bytes(self.bytes, start + 1);
        // Both ways end in numbers, the value built once from them (see `other_value`).
        let (end, escaped) = if self.bytes.get(end) == Some(&b'"') { (end, false) } else { self.string_from(end)? };
        self.pos = end + 1;
        Ok(Raw { json: self.text.get(start..end + 1).unwrap_or_default(), shape: Shape::of(true, escaped) })
    }

    /// The rest of a string with a special byte at `pos`: an escape, the end of the input or a
    /// control character. Where its closing quote is, and whether it has escapes.
    #[cold]
    #[inline(never)]
    fn string_from(&mut self, mut pos: usize) -> Result<(usize, bool), ScanError> {
        let bytes = self.bytes;
        let mut escaped = false;
        loop {
            match bytes.get(pos) {
                Some(b'"') => return Ok((pos, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    match bytes.get(pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                        Some(b'u') => {
                            let Some(unit) = hex_unit(bytes, pos + 2) else {
                                self.pos = pos;
                                return Err(self.error("invalid \\u escape"));
                            };
                            pos += 6;
                            match unit {
                                0xD800..=0xDBFF => {
                                    let low = (bytes.get(pos..pos + 2) == Some(b"\\u".as_slice()))
                                        .then(|| hex_unit(bytes, pos + 2))
                                        .flatten()
                                        .filter(|low| (0xDC00..=0xDFFF).contains(low));
                                    match low {
                                        Some(_) => pos += 6,
                                        None => self.unreadable(Unreadable::LoneSurrogate),
                                    }
                                }
                                0xDC00..=0xDFFF => self.unreadable(Unreadable::LoneSurrogate),
                                _ => {}
                            }
                        }
                        _ => {
                            self.pos = pos;
                            return Err(self.error("invalid escape"));
                        }
                    }
                    pos = skip_plain_string_bytes(bytes, pos);
                }
                Some(_) => {
                    self.pos = pos;
                    return Err(self.error("control character in a string"));
                }
                None => {
                    self.pos = pos;
                    return Err(self.error("unterminated string"));
                }
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let mut whole = 0;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                whole = self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            self.out_of_range(start);
        } else if whole > 308 {
            self.out_of_range(start);
        }
        Ok(())
    }

    /// Notes the number from `start` to here when no double can hold it. Only numbers with an
    /// exponent or over 308 digits are read: the others always fit.
    fn out_of_range(&mut self, start: usize) {
        let text = self.text.get(start..self.pos).unwrap_or_default();
        if text.parse::<f64>().is_ok_and(|number| number.is_infinite()) {
            self.unreadable(Unreadable::NumberOutOfRange);
        }
    }
}

/// The UTF-16 unit of the four hex digits at `at`.
fn hex_unit(bytes: &[u8], at: usize) -> Option<u32> {
    let hex = bytes.get(at..at + 4)?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// A walk over text already scanned as JSON: it finds where values end without checking them.
struct Walk<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl Walk<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.pos += usize::from(found);
        found
    }

    fn blank(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Past a string whose quote is the current byte; whether it holds an escape.
    fn skip_string(&mut self) -> bool {
        let mut escaped = false;
        self.pos += 1;
        loop {
            self.pos = skip_plain_string_bytes(self.bytes, self.pos);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return escaped;
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
                None => return escaped,
            }
        }
    }

    /// Past the object whose `{` is the current byte, calling `member` with each name (as
    /// written) and value; whether it reached the object's `}` (text cut short ends the walk).
    fn members<'t>(&mut self, text: &'t str, mut member: impl FnMut(Raw<'t>, Raw<'t>)) -> bool {
        self.pos += 1;
        loop {
            self.blank();
            if self.peek() != Some(b'"') {
                break;
            }
            let key_start = self.pos;
            let escaped = self.skip_string();
            let Some(json) = text.get(key_start..self.pos) else { return false };
            self.blank();
            if !self.eat(b':') {
                return false;
            }
            self.blank();
            let Some(value) = self.value(text) else { return false };
            member(Raw { json, shape: Shape::of(true, escaped) }, value);
            self.blank();
            if !self.eat(b',') {
                break;
            }
        }
        self.blank();
        self.eat(b'}')
    }

    /// The value at the current byte, and the walk past it.
    fn value<'t>(&mut self, text: &'t str) -> Option<Raw<'t>> {
        let start = self.pos;
        let (mut compact, mut escaped) = (true, false);
        match self.peek()? {
            b'"' => escaped = self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                break;
                            }
                        }
                        b' ' | b'\n' | b'\r' | b'\t' => compact = false,
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while let Some(byte) = self.peek() {
                    if matches!(byte, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.pos += 1;
                }
            }
        }
        let json = text.get(start..self.pos)?;
        Some(Raw { json, shape: Shape::of(compact, escaped) })
    }
}

/// Bytes that end a run of plain string content: `"`, `\` and control characters.
static STRING_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The position of the first byte at or after `pos` that is special inside a string (or the end).
/// Sixteen bytes are tested at a time where the processor can (string content is most of an
/// event's bytes), then eight; the tail of the input, byte by byte.
#[inline(always)]
fn skip_plain_string_bytes(bytes: &[u8], mut pos: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = bytes.get(pos..pos + 16) {
        let Ok(chunk) = <&[u8; 16]>::try_from(chunk) else { break };
        let special = special_of_sixteen(chunk);
        if special != 0 {
            return pos + special.trailing_zeros() as usize;
        }
        pos += 16;
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else { break };
        let word = u64::from_le_bytes(chunk);
        let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let special = quote | backslash | control;
        if special != 0 {
            // The lowest flagged byte is exact (false flags only ever follow a true one).
            return pos + (special.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&byte) = bytes.get(pos) {
        if STRING_SPECIAL[usize::from(byte)] {
            break;
        }
        pos += 1;
    }
    pos
}

/// The kind of the JSON value `json` (valid, without leading white space), from its first byte.
#[inline]
pub(crate) fn kind_of(json: &str) -> JsonKind {
    match json.as_bytes().first() {
        Some(b'"') => JsonKind::String,
        Some(b'{') => JsonKind::Object,
        Some(b'[') => JsonKind::Array,
        Some(b't' | b'f') => JsonKind::Bool,
        Some(b'n') | None => JsonKind::Null,
        Some(_) => JsonKind::Number,
    }
}

/// One of 64 slots for a name, from its length and its first and last bytes: names in different
/// slots differ, so a set of names can pass most others over without comparing them.
pub(crate) fn name_slot(name: &str) -> usize {
    let bytes = name.as_bytes();
    let (first, last) = (bytes.first().copied().unwrap_or(0), bytes.last().copied().unwrap_or(0));
    bytes.len().wrapping_mul(31).wrapping_add(usize::from(first).wrapping_mul(7)).wrapping_add(usize::from(last)) % 64
}

/// Whether two names are the same: compared in place, as names are short and a call to the
/// library's `memcmp` costs more than the comparison.
#[inline]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same_name`] for names as bytes (as written into a body).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Names of 4 to 16 bytes, most of them, as their first and last words (which overlap when
    // shorter than two): two comparisons, not a loop whose end the processor cannot foresee.
    match a.len() {
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, a.len() - 8) == word8(b, b.len() - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, a.len() - 4) == word4(b, b.len() - 4),
        // Up to three bytes: the first, the middle and the last are all of them.
        0..=3 => a.first() == b.first() && a.get(a.len() / 2) == b.get(b.len() / 2) && a.last() == b.last(),
        _ => a == b,
    }
}

/// The eight bytes of `bytes` from `at`, as one word (0 when out of range, which [`same_name`]'s
/// lengths rule out).
#[inline(always)]
fn word8(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|word| word.try_into().ok()).map_or(0, u64::from_ne_bytes)
}

/// The four bytes of `bytes` from `at`, as [`word8`] reads eight.
#[inline(always)]
fn word4(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at + 4).and_then(|word| word.try_into().ok()).map_or(0, u32::from_ne_bytes)
}

/// How many bytes `bytes` begins with that a JSON string holds as they are: up to the first `"`,
/// `\\` or control character.
pub(crate) fn plain_prefix(bytes: &[u8]) -> usize {
    skip_plain_string_bytes(bytes, 0)
}

/// One bit per byte of `chunk` that is special inside a string: `"`, `\\` or a control character.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn special_of_sixteen(chunk: &[u8; 16]) -> u32 {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let bytes = load_unaligned_m128i(chunk);
    let splat = |byte: u8| set_splat_i8_m128i(i8::from_ne_bytes([byte]));
    let quote = cmp_eq_mask_i8_m128i(bytes, splat(b'"'));
    let backslash = cmp_eq_mask_i8_m128i(bytes, splat(b'\\'));
    // Unsigned: a byte is at most 0x1f when the smaller of it and 0x1f is itself.
    let control = cmp_eq_mask_i8_m128i(min_u8_m128i(bytes, splat(0x1f)), bytes);
    u32::from_ne_bytes(move_mask_i8_m128i(bitor_m128i(bitor_m128i(quote, backslash), control)).to_ne_bytes())
}

/// Copies JSON without the white space outside strings.
fn minify(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(text: &str) -> Result<TopLevel<'_, 1>, ScanError> {
        top_level(text, ["properties"])
    }

    #[test]
    fn members_are_spans_and_compactness_is_known() {
        let parsed =
            top(r#" {"a": [1, "x y"], "b":{"c":"d\"e"}, "properties": {"p": 1.5e3}} "#).expect("valid");
        let (key, a) = &parsed.members[0];
        assert_eq!((key.as_ref(), a.get(), a.kind()), ("a", r#"[1, "x y"]"#, JsonKind::Array));
        let mut out = Vec::new();
        a.write_compact(&mut out);
        assert_eq!(out, br#"[1,"x y"]"#);
        assert!(parsed.members[1].1.compact());
        let Member::Object(properties) = &parsed.objects[0] else { panic!("object") };
        assert_eq!(properties[0].1.get(), "1.5e3");
        let deep = top("{\"a\":{\"b\":[\n1]}}").expect("valid");
        assert!(!deep.members[0].1.compact(), "white space in a nested value makes its parents not compact");
        let nested = parsed.members[1].1.members().expect("object");
        assert_eq!(nested[0].1.as_str().as_deref(), Some("d\"e"));
    }

    #[test]
    fn invalid_json_is_refused_with_a_place() {
        for bad in [
            "",
            "{",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":"\u12"}"#,
            r#"{"a":1} x"#,
            r#"{a:1}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":"unterminated}"#,
        ] {
            assert!(top(bad).is_err(), "{bad:?} should be refused");
            assert!(
                serde_json::from_str::<&serde_json::value::RawValue>(bad).is_err(),
                "{bad:?} (serde agrees)"
            );
        }
        for good in [r#"{"a":"\ud800"}"#, r#"{"a":-0.5E+3,"b":[],"c":{},"d":"\u00e9\/"}"#, " {} "] {
            let serde = serde_json::from_str::<&serde_json::value::RawValue>(good).is_ok();
            assert_eq!(top(good).is_ok(), serde, "{good:?}");
        }
        assert_eq!(top(r#"{"\ud800":1}"#).err().map(|e| e.message), Some("a member name is not valid text"));
        assert!(top(r#"{"a":{"\ud800":1}}"#).is_ok(), "names inside passed-through values are copied as is");
        let error = top("{\n  \"a\": nope}").err().expect("invalid");
        assert_eq!((error.line, error.column), (2, 8));
        assert_eq!(top("[1]").err().map(|e| e.message), Some("the event is an array, not an object"));
    }

    #[test]
    fn special_bytes_are_found_at_every_offset_of_the_wide_scans() {
        for filler in ["a", "é", "\u{7f}", "!", "#", "\u{ff}"] {
            for offset in 0..40 {
                let before = filler.repeat(offset);
                for (inside, valid) in
                    [("", true), ("\\n", true), ("\\\"", true), ("\u{1f}", false), ("\u{1}", false)]
                {
                    let text = format!("{{\"k\":\"{before}{inside}{before}\",\"n\":1}}");
                    let ours = top(&text);
                    let serde = serde_json::from_str::<&serde_json::value::RawValue>(&text);
                    assert_eq!(ours.is_ok(), serde.is_ok(), "{text:?}");
                    assert_eq!(ours.is_ok(), valid, "{text:?}");
                    if let Ok(parsed) = ours {
                        let expected: String =
                            serde_json::from_str(&text[5..text.len() - 7]).expect("string");
                        assert_eq!(parsed.members[0].1.as_str().as_deref(), Some(expected.as_str()));
                        assert_eq!(parsed.members[1].1.get(), "1");
                    }
                }
            }
        }
    }

    #[test]
    fn plain_bytes_are_skipped_exactly_from_every_start_to_every_end() {
        let naive = |bytes: &[u8], start: usize| {
            (start..bytes.len()).find(|&at| STRING_SPECIAL[usize::from(bytes[at])]).unwrap_or(bytes.len())
        };
        // Every length, for each width of scan and the bytes after it, and a special byte before
        // the start, which must not be seen.
        for special in [b'"', b'\\', 0x1f, 0x00, b'\n'] {
            for len in 0..40 {
                for start in 0..=len {
                    for at in (0..len).map(Some).chain([None]) {
                        let mut bytes: Vec<u8> = (0..len).map(|i| [b'a', 0x7f, 0xc3, b'#', b' '][i % 5]).collect();
                        if let Some(at) = at {
                            bytes[at] = special;
                        }
                        assert_eq!(skip_plain_string_bytes(&bytes, start), naive(&bytes, start), "{bytes:?} from {start}");
                    }
                }
            }
        }
    }

    #[test]
    fn what_moengage_cannot_read_is_noted_not_refused() {
        for (text, unreadable) in [
            (r#"{"a":"x\ud800"}"#, Some(Unreadable::LoneSurrogate)),
            (r#"{"a":"\udc00"}"#, Some(Unreadable::LoneSurrogate)),
            (r#"{"a":"\ud800\u0041"}"#, Some(Unreadable::LoneSurrogate)),
            (r#"{"a":{"b":[1e400]}}"#, Some(Unreadable::NumberOutOfRange)),
            (r#"{"a":-1E+309}"#, Some(Unreadable::NumberOutOfRange)),
            (r#"{"a":"\ud83d\ude00","b":1e308,"c":1e-400,"d":"\\ud800"}"#, None),
        ] {
            assert_eq!(top(text).map(|scanned| scanned.unreadable).map_err(|e| e.message), Ok(unreadable), "{text}");
            // A whole body holding one is still read: each event is judged on its own.
            assert!(document(&format!("[{text}]")).is_ok(), "{text}");
        }
        let digits = "9".repeat(400);
        assert_eq!(top(&format!(r#"{{"a":{digits}}}"#)).ok().and_then(|scanned| scanned.unreadable), Some(Unreadable::NumberOutOfRange));
    }

    #[test]
    fn a_member_is_found_by_name_as_a_parser_would_read_it() {
        let object = Raw::trusted(r#"{ "a" : 1, "b":{"c":[1, 2]}, "\u0061":"x", "d" : null }"#);
        assert_eq!(object.member("a").map(|raw| raw.get()), Some(r#""x""#), "the later of two spellings");
        assert_eq!(object.member("b").map(|raw| raw.get()), Some(r#"{"c":[1, 2]}"#));
        assert_eq!(object.member("b").and_then(|raw| raw.member("c")).map(|raw| raw.get()), Some("[1, 2]"));
        assert_eq!(object.member("d").map(|raw| raw.get()), Some("null"));
        assert_eq!(object.member("e"), None);
        assert_eq!(Raw::trusted("[1]").member("a"), None);
        assert_eq!(Raw::trusted("{}").member("a"), None);
        // Cut short: what was found before the cut.
        assert_eq!(Raw::trusted(r#"{"a":1,"b""#).member("a").map(|raw| raw.get()), Some("1"));
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(top(&deep).err().map(|e| e.message), Some("nested deeper than 128 levels"));
        let fine = format!(r#"{{"a":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(top(&fine).is_ok());
    }

    #[test]
    fn names_are_the_same_exactly_when_their_bytes_are() {
        let names = ["", "a", "ab", "abc", "abcd", "abcde", "product", "products", "product_id", "image_url_large",
            "exactly_sixteen!", "seventeen_letters", "a_name_well_over_sixteen_bytes"];
        for a in names {
            assert!(same_name(a, a), "{a}");
            let copy = String::from(a);
            assert!(same_name(a, &copy), "{a}: another copy of the same bytes");
            for b in names.iter().filter(|b| **b != a) {
                assert!(!same_name(a, b), "{a} {b}");
            }
            // One byte changed anywhere, including the middle that neither word's edge starts at.
            for at in 0..a.len() {
                let mut changed = a.as_bytes().to_vec();
                changed[at] ^= 0x20;
                let changed = String::from_utf8(changed).expect("ASCII");
                assert!(!same_name(a, &changed), "{a} {changed}");
            }
        }
        assert!(same_name("naïve", "naïve"));
        assert!(!same_name("naïve", "naive!"));
    }

    #[test]
    fn an_arrays_summary_saturates_and_a_list_too_long_to_keep_is_not_kept() {
        let items = vec!["{\"x\":1,\"y\":\"z\"}"; 20_000].join(",");
        let text = format!(r#"{{"properties":{{"a":[{items}],"b":["{}"]}}}}"#, "s".repeat(5_000));
        let scanned = top(&text).expect("valid");
        let Member::Object(members) = &scanned.objects[0] else { panic!("properties") };
        let summary = members[0].1.item_summary().expect("summed");
        assert_eq!((summary.count, summary.kinds), (16_383, JsonKind::Object.bit()), "the count saturates");
        assert_eq!(summary.members, None, "40,000 members are past what a value keeps");
        assert_eq!(members[0].1.item_members(&scanned.item_members), None);
        let long = members[1].1.item_summary().expect("summed");
        assert_eq!((long.count, long.longest_string), (1, 1_023), "the longest string saturates");
        let few = top(r#"{"properties":{"a":[{"x":1},{"x":2,"y":3}]}}"#).expect("valid");
        let Member::Object(members) = &few.objects[0] else { panic!("properties") };
        let listed = members[0].1.item_members(&few.item_members).expect("listed");
        let read: Vec<(u32, &str, &str)> = listed.iter().map(|m| (m.item, &*m.name, m.value.get())).collect();
        assert_eq!(read, [(0, "x", "1"), (1, "x", "2"), (1, "y", "3")]);
    }
}
