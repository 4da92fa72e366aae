//! The compiler: blueprint files (with what they extend) → a [`Blueprint`], or every diagnostic at
//! once. Checks, in order: YAML well-formedness, duplicate keys, the JSON Schema (the same one
//! editors use), then what a schema cannot say (JSONPath syntax, the `moe_` prefix, `customer_id`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
use crate::files::{FileAccess, FileRefusal, RefusalKind};
use crate::model::{
    AttributeSource, BlueprintFile, CustomerMapping, DeviceMapping, EventMapping, PathList, PlatformSource, SourceSpec,
    ValueSource,
};
use crate::path::{self, FieldPath};
use crate::schema_check::{FileContext, SchemaCheck, Vocabulary, prune};
use crate::yaml::{self, SpanIndex, YamlProblemKind, escape_pointer_segment};
use crate::{
    Blueprint, CompiledApp, CompiledCustomer, CompiledDevice, CompiledEvent, CompiledSource, Origin, RESERVED_PREFIX,
};

/// The event key that maps every event not listed by name.
pub const CATCH_ALL: &str = "*";

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // The schema is generated from our own types; failing to build it is a bug in this crate,
        // caught by every test.
        #[allow(clippy::expect_used)]
        jsonschema::draft202012::new(schema()).expect("the generated blueprint schema is valid")
    })
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(crate::model::blueprint_schema)
}

static WORDS: Vocabulary = Vocabulary {
    whole: "the blueprint",
    reference: "see docs/reference/blueprint.md",
    place: describe_schema,
    type_hint,
    pattern: |text| {
        path::compile(text).err().map(|problem| (DiagnosticKind::InvalidPath, problem.message, problem.hint))
    },
    choice: |field| (field == "transform").then_some((DiagnosticKind::UnknownTransform, "transform")),
};

fn schema_check() -> SchemaCheck<'static> {
    SchemaCheck { schema: schema(), vocabulary: &WORDS }
}

/// Compiles the blueprint at `path`, named in diagnostics as the caller wrote it.
pub fn compile_file(path: &Path) -> Result<Blueprint, Diagnostics> {
    compile_file_within(path, &FileAccess::anywhere())
}

/// Compiles the blueprint at `path`, reading it and what it extends only where `access` allows.
pub fn compile_file_within(path: &Path, access: &FileAccess) -> Result<Blueprint, Diagnostics> {
    let mut compiler = Compiler { access: access.clone(), ..Compiler::default() };
    let display = path.display().to_string();
    let chain = compiler.load(path.to_path_buf(), display, &mut Vec::new());
    compiler.finish(chain)
}

/// Compiles blueprint text, as if read from a file named `name` (which `extends` resolves against).
pub fn compile_str(name: &str, text: &str) -> Result<Blueprint, Diagnostics> {
    let mut compiler = Compiler::default();
    let chain = compiler.load_text(PathBuf::from(name), name.to_owned(), text, &mut Vec::new());
    compiler.finish(chain)
}

/// The presets that ship inside the binary, by file name: `preset: retail` in a pipeline needs no
/// files beside the binary.
const PRESET_FILES: [(&str, &str); 3] = [
    ("base.yaml", include_str!("../../../blueprints/moengage/base.yaml")),
    ("retail.yaml", include_str!("../../../blueprints/moengage/retail.yaml")),
    ("b2b-saas.yaml", include_str!("../../../blueprints/moengage/b2b-saas.yaml")),
];

/// The shipped presets' names, as a pipeline's `preset` takes them.
pub const PRESETS: [&str; 2] = ["retail", "b2b-saas"];

/// Compiles a shipped preset (`retail`, `b2b-saas`) from the copy built into the binary; `None`
/// for another name.
pub fn compile_preset(name: &str) -> Option<Result<Blueprint, Diagnostics>> {
    let file = format!("{name}.yaml");
    PRESETS.contains(&name).then(|| {
        let mut compiler = Compiler { embedded: true, ..Compiler::default() };
        let chain = compiler.load(PathBuf::from(&file), format!("(built in) {file}"), &mut Vec::new());
        compiler.finish(chain)
    })
}

/// Named entries of one file, compiled: `None` removes the base's entry of that name.
type Entries<T> = BTreeMap<String, Option<T>>;

/// Lays `over`'s entries on `base`'s: an entry replaces the base's of the same name, and `None`
/// removes it.
fn merge_entries<T>(mut base: Entries<T>, over: Entries<T>) -> Entries<T> {
    base.extend(over);
    base
}

/// The entries that are set, in name order.
fn set_entries<T>(entries: Entries<T>) -> Vec<(Box<str>, T)> {
    entries.into_iter().filter_map(|(name, entry)| Some((name.into_boxed_str(), entry?))).collect()
}

/// One file's contribution, compiled, before merging with what it extends.
#[derive(Default)]
struct Layer {
    platform: Option<CompiledSource>,
    /// `app_version` and `device_id`.
    app: Entries<CompiledSource>,
    customer_id: Option<CompiledSource>,
    user_identifiers: Entries<CompiledSource>,
    user_attributes: Entries<CompiledSource>,
    events: BTreeMap<String, LayerEvent>,
    customer: Option<LayerCustomer>,
    device: Option<LayerDevice>,
    merge: Option<bool>,
    merge_anonymous: Option<bool>,
}

/// One file's `device:` section, before merging with the base's.
#[derive(Default)]
struct LayerDevice {
    on: Option<Vec<Box<str>>>,
    device_id: Option<CompiledSource>,
    attributes: Entries<CompiledSource>,
}

impl LayerDevice {
    fn merged(self, over: LayerDevice) -> LayerDevice {
        LayerDevice {
            on: over.on.or(self.on),
            device_id: over.device_id.or(self.device_id),
            attributes: merge_entries(self.attributes, over.attributes),
        }
    }

    fn compiled(self) -> CompiledDevice {
        let mut on = self.on.unwrap_or_default();
        on.sort_unstable();
        on.dedup();
        CompiledDevice { on, device_id: self.device_id, attributes: set_entries(self.attributes) }
    }
}

/// One file's mapping of one event, before merging with the base's mapping of it.
#[derive(Default)]
struct LayerEvent {
    replace: bool,
    action: Option<Box<str>>,
    platform: Option<CompiledSource>,
    pass_through: Option<bool>,
    rename: Entries<Box<str>>,
    exclude: Vec<Box<str>>,
    attributes: Entries<CompiledSource>,
    object_arrays: Entries<Vec<(Box<str>, Box<str>)>>,
}

impl LayerEvent {
    /// This (the base's) mapping with `over`, an extending file's mapping of the same event, laid
    /// on it key by key.
    fn merged(self, over: LayerEvent) -> LayerEvent {
        if over.replace {
            return over;
        }
        let mut exclude = self.exclude;
        exclude.extend(over.exclude);
        LayerEvent {
            replace: false,
            action: over.action.or(self.action),
            platform: over.platform.or(self.platform),
            pass_through: over.pass_through.or(self.pass_through),
            rename: merge_entries(self.rename, over.rename),
            exclude,
            attributes: merge_entries(self.attributes, over.attributes),
            object_arrays: merge_entries(self.object_arrays, over.object_arrays),
        }
    }

    fn compiled(self) -> CompiledEvent {
        let mut exclude = self.exclude;
        exclude.sort_unstable();
        exclude.dedup();
        CompiledEvent {
            action: self.action,
            platform: self.platform,
            pass_through: self.pass_through.unwrap_or(true),
            rename: set_entries(self.rename),
            exclude,
            attributes: set_entries(self.attributes),
            object_arrays: set_entries(self.object_arrays),
        }
    }
}

/// One file's `customer:` section, before merging with the base's.
#[derive(Default)]
struct LayerCustomer {
    attributes: Entries<CompiledSource>,
    pass_through: Option<bool>,
    exclude: Vec<Box<str>>,
}

impl LayerCustomer {
    fn merged(self, over: LayerCustomer) -> LayerCustomer {
        let mut exclude = self.exclude;
        exclude.extend(over.exclude);
        LayerCustomer {
            attributes: merge_entries(self.attributes, over.attributes),
            pass_through: over.pass_through.or(self.pass_through),
            exclude,
        }
    }

    fn compiled(self) -> CompiledCustomer {
        let attributes = set_entries(self.attributes);
        let mut read = self.exclude;
        // A trait an attribute reads (`u_em: $.traits.email`) is not passed through as well.
        read.extend(attributes.iter().flat_map(|(_, source)| match &source.origin {
            Origin::Paths(paths) => paths.iter().filter_map(|path| path.trait_name().map(Into::into)).collect(),
            Origin::Constant(_) => Vec::new(),
        }));
        read.sort_unstable();
        read.dedup();
        CompiledCustomer { attributes, pass_through: self.pass_through.unwrap_or(true), not_passed: read }
    }
}

#[derive(Default)]
struct Compiler {
    diagnostics: Vec<Diagnostic>,
    /// Diagnostics that do not stop the blueprint from compiling.
    warnings: Vec<Diagnostic>,
    /// What to report, and where in the named file, if nothing provides a `customer_id`.
    missing_customer_id: Option<Diagnostic>,
    files: Vec<String>,
    /// Read files from [`PRESET_FILES`] instead of the disk.
    embedded: bool,
    /// Which files on the disk may be read.
    access: FileAccess,
}

impl Compiler {
    /// Loads `path` and everything it extends; returns the layers, base first.
    fn load(&mut self, path: PathBuf, display: String, stack: &mut Vec<PathBuf>) -> Vec<Layer> {
        let read = if self.embedded {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            PRESET_FILES.iter().find(|(file, _)| *file == name).map(|(_, text)| (*text).to_owned()).ok_or_else(|| {
                let error = std::io::Error::from(std::io::ErrorKind::NotFound);
                FileRefusal { path: path.clone(), kind: RefusalKind::Io(error) }
            })
        } else {
            self.access.read(&path)
        };
        let text = match read {
            Ok(text) => text,
            Err(refusal) => {
                self.diagnostics.push(refusal.diagnostic(display, "blueprint", refusal.hint()));
                return Vec::new();
            }
        };
        self.load_text(path, display, &text, stack)
    }

    fn load_text(
        &mut self,
        path: PathBuf,
        display: String,
        text: &str,
        stack: &mut Vec<PathBuf>,
    ) -> Vec<Layer> {
        self.files.push(display.clone());
        let document = match yaml::parse(text) {
            Ok(document) => document,
            Err(problem) => {
                let context = FileContext { name: &display, text, spans: &SpanIndex::default() };
                self.diagnostics.push(context.at(
                    problem.position,
                    DiagnosticKind::YamlSyntax,
                    problem.message,
                    problem.hint,
                ));
                return Vec::new();
            }
        };
        let context = FileContext { name: &display, text, spans: &document.spans };
        if self.missing_customer_id.is_none() {
            self.missing_customer_id = Some(context.key(
                "/identity",
                DiagnosticKind::MissingCustomerId,
                "no `customer_id` mapping: MoEngage refuses events without one".into(),
                Some("add `identity: {customer_id: $.user_id}`, or `extends: base.yaml` for the shared identity mapping".into()),
            ));
        }
        for (pointer, problem) in &document.duplicates {
            let kind = match (pointer.as_str(), problem.kind) {
                ("/events", YamlProblemKind::DuplicateKey { .. }) => DiagnosticKind::DuplicateEvent,
                _ => DiagnosticKind::DuplicateKey,
            };
            let message = if kind == DiagnosticKind::DuplicateEvent {
                problem.message.replace("is defined twice in the same mapping", "is mapped twice")
            } else {
                problem.message.clone()
            };
            self.diagnostics.push(context.at(problem.position, kind, message, problem.hint.clone()));
        }

        let mut value = match document.value {
            Value::Null => Value::Object(Default::default()),
            value => value,
        };
        let mut broken = Vec::new();
        for error in validator().iter_errors(&value) {
            broken.extend(schema_check().translate(&context, &error, &mut self.diagnostics));
        }
        self.misplaced_event_keys(&context, &value, &broken);
        let file: Option<BlueprintFile> =
            prune(&mut value, broken).and_then(|()| serde_json::from_value(value).ok());
        let Some(file) = file else {
            return Vec::new();
        };

        let mut layers = Vec::new();
        if let Some(extends) = &file.extends {
            layers = self.extends(&context, &path, extends, stack);
        }
        layers.push(self.layer(&context, &file));
        layers
    }

    /// An event mapping's key written at the level of the events (`attributes:` dedented under
    /// `events:`) is read as an event's name, and its content then breaks the schema: says so.
    fn misplaced_event_keys(&mut self, context: &FileContext<'_>, value: &Value, broken: &[String]) {
        let Some(events) = value.get("events").and_then(Value::as_object) else { return };
        let Some(keys) = schema().pointer("/$defs/EventMapping/properties").and_then(Value::as_object) else {
            return;
        };
        for name in events.keys().filter(|name| keys.contains_key(name.as_str())) {
            let pointer = format!("/events/{}", escape_pointer_segment(name));
            if !broken.iter().any(|at| *at == pointer || at.starts_with(&format!("{pointer}/"))) {
                continue;
            }
            self.diagnostics.push(context.key(
                &pointer,
                DiagnosticKind::Schema,
                format!("`{name}` is read as the name of an event, because it is indented as one under `events`"),
                Some(format!(
                    "to give an event its `{name}`, indent `{name}:` under that event's name, further than the name"
                )),
            ));
        }
    }

    fn exists(&self, path: &Path) -> bool {
        if self.embedded {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            PRESET_FILES.iter().any(|(file, _)| *file == name)
        } else {
            path.is_file()
        }
    }

    /// The YAML file beside `missing` whose name is closest to its name, written as `extends`
    /// would name it.
    fn closest_blueprint(&self, missing: &Path, extends: &str) -> Option<String> {
        let wanted = missing.file_name()?.to_str()?;
        let names: Vec<String> = if self.embedded {
            PRESET_FILES.iter().map(|(file, _)| (*file).to_owned()).collect()
        } else {
            let folder = crate::files::folder_of(missing);
            // Names in a folder the command may not read are not suggested either.
            if !self.access.allows_folder(folder) {
                return None;
            }
            std::fs::read_dir(folder)
                .ok()?
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
                .collect()
        };
        let close = crate::diagnostic::did_you_mean(wanted, names.iter().map(String::as_str))?;
        Some(match extends.rsplit_once('/') {
            Some((directory, _)) => format!("{directory}/{close}"),
            None => close.to_owned(),
        })
    }

    fn extends(
        &mut self,
        context: &FileContext<'_>,
        path: &Path,
        extends: &str,
        stack: &mut Vec<PathBuf>,
    ) -> Vec<Layer> {
        let base = path.parent().unwrap_or(Path::new("")).join(extends);
        let display = normalise(&Path::new(context.name).parent().unwrap_or(Path::new("")).join(extends));
        let identity = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
        let self_identity = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if identity == self_identity || stack.contains(&identity) {
            self.diagnostics.push(context.value(
                "/extends",
                DiagnosticKind::ExtendsCycle,
                format!("`extends: {extends}` leads back to a blueprint that is already being extended"),
                Some("a blueprint may extend a base, but the base must not extend it again; remove one `extends`".into()),
            ));
            return Vec::new();
        }
        if !self.embedded
            && let Err(refusal) = self.access.check(&base)
            && !refusal.is_not_found()
        {
            self.diagnostics.push(context.value(
                "/extends",
                DiagnosticKind::FileRefused,
                refusal.to_string(),
                Some(refusal.hint().into()),
            ));
            return Vec::new();
        }
        if !self.exists(&base) {
            let hint = match self.closest_blueprint(&base, extends) {
                Some(close) => format!("did you mean `{close}`? The path is relative to this file"),
                None => "the path is relative to this file, e.g. `extends: base.yaml` for a file beside it".into(),
            };
            self.diagnostics.push(context.value(
                "/extends",
                DiagnosticKind::ExtendsNotFound,
                format!("`extends: {extends}` names `{display}`, which does not exist"),
                Some(hint),
            ));
            return Vec::new();
        }
        stack.push(self_identity);
        let layers = self.load(base, display, stack);
        stack.pop();
        layers
    }

    /// Translates a schema error to diagnostics; returns the pointers to prune before typing.
    /// Compiles one file's content: paths, constants, and the checks a schema cannot express.
    fn layer(&mut self, context: &FileContext<'_>, file: &BlueprintFile) -> Layer {
        let mut layer = Layer { merge: file.merge, merge_anonymous: file.merge_anonymous, ..Layer::default() };
        if let Some(platform) = &file.platform {
            layer.platform = self.platform(context, "/platform", platform);
        }
        if let Some(app) = &file.app {
            let entries: BTreeMap<String, AttributeSource> = [("app_version", &app.app_version), ("device_id", &app.device_id)]
                .into_iter()
                .filter_map(|(name, source)| Some((name.to_owned(), source.clone()?)))
                .collect();
            layer.app = self.entries(context, "/app", Some(&entries));
        }
        if let Some(identity) = &file.identity {
            if let Some(source) = &identity.customer_id {
                layer.customer_id = self.source(context, "/identity/customer_id", source);
            }
            for (group, entries, target) in [
                ("user_identifiers", &identity.user_identifiers, &mut layer.user_identifiers),
                ("attributes", &identity.attributes, &mut layer.user_attributes),
            ] {
                *target = self.entries(context, &format!("/identity/{group}"), entries.as_ref());
            }
        }
        if let Some(customer) = &file.customer {
            layer.customer = Some(self.customer(context, customer));
        }
        if let Some(device) = &file.device {
            layer.device = Some(self.device(context, device));
        }
        for (name, mapping) in file.events.iter().flatten() {
            let pointer = format!("/events/{}", escape_pointer_segment(name));
            if let Some(event) = self.event(context, &pointer, name, mapping) {
                layer.events.insert(name.clone(), event);
            }
        }
        layer
    }

    /// Compiles named value sources (attributes, identifiers), each name checked for `moe_`.
    fn entries(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        entries: Option<&BTreeMap<String, AttributeSource>>,
    ) -> Entries<CompiledSource> {
        let mut compiled = Entries::new();
        for (name, AttributeSource(source)) in entries.into_iter().flatten() {
            let entry_pointer = format!("{pointer}/{}", escape_pointer_segment(name));
            match source {
                None => {
                    compiled.insert(name.clone(), None);
                }
                Some(source) => {
                    self.check_reserved(context, &entry_pointer, name, "attribute");
                    if let Some(source) = self.source(context, &entry_pointer, source) {
                        compiled.insert(name.clone(), Some(source));
                    }
                }
            }
        }
        compiled
    }

    fn device(&mut self, context: &FileContext<'_>, device: &DeviceMapping) -> LayerDevice {
        LayerDevice {
            on: device.on.as_ref().map(|names| names.iter().map(|name| name.clone().into_boxed_str()).collect()),
            device_id: device.device_id.as_ref().and_then(|source| self.source(context, "/device/device_id", source)),
            attributes: self.entries(context, "/device/attributes", device.attributes.as_ref()),
        }
    }

    fn customer(&mut self, context: &FileContext<'_>, customer: &CustomerMapping) -> LayerCustomer {
        LayerCustomer {
            attributes: self.entries(context, "/customer/attributes", customer.attributes.as_ref()),
            pass_through: customer.pass_through,
            exclude: customer.exclude.iter().flatten().map(|s| s.clone().into_boxed_str()).collect(),
        }
    }

    fn event(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        name: &str,
        mapping: &EventMapping,
    ) -> Option<LayerEvent> {
        match &mapping.action {
            Some(action) => self.check_reserved(context, &format!("{pointer}/action"), action, "action"),
            None if name != CATCH_ALL && name.starts_with(RESERVED_PREFIX) => {
                self.diagnostics.push(context.key(
                    pointer,
                    DiagnosticKind::ReservedPrefix,
                    format!("the action name `{name}` begins with `{RESERVED_PREFIX}`, which MoEngage reserves"),
                    Some("MoEngage may drop such events: add `action:` with a name that does not begin with `moe_`".into()),
                ));
            }
            None => {}
        }
        let mut rename = Entries::new();
        for (from, to) in mapping.rename.iter().flatten() {
            if let Some(to) = to {
                self.check_reserved(
                    context,
                    &format!("{pointer}/rename/{}", escape_pointer_segment(from)),
                    to,
                    "attribute",
                );
            }
            rename.insert(from.clone(), to.clone().map(String::into_boxed_str));
        }
        let attributes = self.entries(context, &format!("{pointer}/attributes"), mapping.attributes.as_ref());
        let mut object_arrays = Entries::new();
        for (attribute, fields) in mapping.object_arrays.iter().flatten() {
            let array_pointer = format!("{pointer}/object_arrays/{}", escape_pointer_segment(attribute));
            let taken = fields.as_ref().map(|fields| {
                let mut taken = Vec::new();
                for (field, sent) in fields {
                    let field_pointer = format!("{array_pointer}/{}", escape_pointer_segment(field));
                    self.check_reserved(context, &field_pointer, sent, "attribute");
                    taken.push((field.clone().into_boxed_str(), sent.clone().into_boxed_str()));
                }
                taken
            });
            object_arrays.insert(attribute.clone(), taken);
        }
        let shown_action = mapping.action.as_deref().unwrap_or(name);
        if shown_action.contains('.') && name != CATCH_ALL {
            let message = format!(
                "the action name `{shown_action}` has a `.`, which MoEngage turns into a space: it is sent as `{}`",
                shown_action.replace('.', " ")
            );
            let hint = Some("write the name MoEngage will show, without `.`, in `action:`".to_owned());
            // The name is the event's key unless `action:` gives it.
            let warning = match &mapping.action {
                Some(_) => context.value(&format!("{pointer}/action"), DiagnosticKind::PeriodInName, message, hint),
                None => context.key(pointer, DiagnosticKind::PeriodInName, message, hint),
            };
            self.warnings.push(warning);
        }
        Some(LayerEvent {
            replace: mapping.replace.unwrap_or(false),
            object_arrays,
            action: mapping.action.clone().map(String::into_boxed_str),
            platform: mapping.platform.as_ref().and_then(|platform| self.platform(context, &format!("{pointer}/platform"), platform)),
            pass_through: mapping.pass_through,
            rename,
            exclude: mapping.exclude.iter().flatten().map(|s| s.clone().into_boxed_str()).collect(),
            attributes,
        })
    }

    fn check_reserved(&mut self, context: &FileContext<'_>, pointer: &str, name: &str, what: &str) {
        if name.starts_with(RESERVED_PREFIX) {
            let at_key = what == "attribute" && !pointer.contains("/rename/") && !pointer.contains("/object_arrays/");
            let message =
                format!("the {what} name `{name}` begins with `{RESERVED_PREFIX}`, which MoEngage reserves");
            let hint = Some(format!(
                "MoEngage may drop events that use it: rename the {what} without the `moe_` prefix"
            ));
            let diagnostic = if at_key {
                context.key(pointer, DiagnosticKind::ReservedPrefix, message, hint)
            } else {
                context.value(pointer, DiagnosticKind::ReservedPrefix, message, hint)
            };
            self.diagnostics.push(diagnostic);
        }
    }

    fn source(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        source: &ValueSource,
    ) -> Option<CompiledSource> {
        let spec = match source {
            ValueSource::Path(text) => {
                return self.path(context, pointer, text).map(|path| CompiledSource {
                    origin: Origin::Paths(Box::new([path])),
                    transform: None,
                    default: None,
                });
            }
            ValueSource::FirstOf(texts) => {
                return self.paths(context, pointer, texts).map(|paths| CompiledSource {
                    origin: Origin::Paths(paths),
                    transform: None,
                    default: None,
                });
            }
            ValueSource::Spec(spec) => spec,
        };
        self.spec(context, pointer, spec)
    }

    /// A platform: a name, sent as it is, or a value source.
    fn platform(&mut self, context: &FileContext<'_>, pointer: &str, platform: &PlatformSource) -> Option<CompiledSource> {
        match platform {
            PlatformSource::Name(name) => {
                Some(CompiledSource { origin: Origin::Constant(raw(&Value::String(name.clone()))?), transform: None, default: None })
            }
            PlatformSource::Source(spec) => self.spec(context, pointer, spec),
        }
    }

    /// The long form of a value source.
    fn spec(&mut self, context: &FileContext<'_>, pointer: &str, spec: &SourceSpec) -> Option<CompiledSource> {
        let SourceSpec { path, value, transform, default } = spec;
        let origin = match (path, value) {
            (Some(PathList::One(text)), None) => {
                Origin::Paths(Box::new([self.path(context, &format!("{pointer}/path"), text)?]))
            }
            (Some(PathList::Many(texts)), None) => Origin::Paths(self.paths(context, &format!("{pointer}/path"), texts)?),
            (None, Some(constant)) => Origin::Constant(raw(constant)?),
            (Some(_), Some(_)) => {
                self.diagnostics.push(context.value(
                    pointer,
                    DiagnosticKind::Schema,
                    "a value source has both `path` and `value`".into(),
                    Some("keep `path` to read the event, or `value` for a constant; use `default` for a fallback".into()),
                ));
                return None;
            }
            (None, None) => {
                self.diagnostics.push(context.value(
                    pointer,
                    DiagnosticKind::Schema,
                    "a value source needs `path` or `value`".into(),
                    Some("e.g. `{path: $.traits.phone, transform: e164}` or `{value: web}`".into()),
                ));
                return None;
            }
        };
        Some(CompiledSource { origin, transform: *transform, default: default.as_ref().and_then(raw) })
    }

    /// A list of paths, each compiled (every mistake reported); `None` if any is wrong or none is given.
    fn paths(&mut self, context: &FileContext<'_>, pointer: &str, texts: &[String]) -> Option<Box<[FieldPath]>> {
        if texts.is_empty() {
            self.diagnostics.push(context.value(
                pointer,
                DiagnosticKind::Schema,
                "an empty list of paths finds nothing".into(),
                Some("list the paths to try in order, e.g. `[$.user_id, $.anonymous_id]`".into()),
            ));
            return None;
        }
        let compiled: Vec<Option<FieldPath>> =
            texts.iter().enumerate().map(|(index, text)| self.path(context, &format!("{pointer}/{index}"), text)).collect();
        compiled.into_iter().collect::<Option<Vec<_>>>().map(Vec::into_boxed_slice)
    }

    fn path(&mut self, context: &FileContext<'_>, pointer: &str, text: &str) -> Option<FieldPath> {
        match path::compile(text) {
            Ok(path) => Some(path),
            Err(problem) => {
                self.diagnostics.push(context.value(
                    pointer,
                    DiagnosticKind::InvalidPath,
                    problem.message,
                    Some(problem.hint),
                ));
                None
            }
        }
    }

    fn finish(mut self, layers: Vec<Layer>) -> Result<Blueprint, Diagnostics> {
        let mut merged = Layer::default();
        for layer in layers {
            merged.platform = layer.platform.or(merged.platform);
            merged.app = merge_entries(merged.app, layer.app);
            merged.customer_id = layer.customer_id.or(merged.customer_id);
            merged.merge = layer.merge.or(merged.merge);
            merged.merge_anonymous = layer.merge_anonymous.or(merged.merge_anonymous);
            merged.user_identifiers = merge_entries(merged.user_identifiers, layer.user_identifiers);
            merged.user_attributes = merge_entries(merged.user_attributes, layer.user_attributes);
            merged.customer = match (merged.customer.take(), layer.customer) {
                (Some(base), Some(over)) => Some(base.merged(over)),
                (base, over) => over.or(base),
            };
            merged.device = match (merged.device.take(), layer.device) {
                (Some(base), Some(over)) => Some(base.merged(over)),
                (base, over) => over.or(base),
            };
            for (name, over) in layer.events {
                let event = match merged.events.remove(&name) {
                    Some(base) => base.merged(over),
                    None => over,
                };
                merged.events.insert(name, event);
            }
        }
        if merged.customer_id.is_none()
            && self.diagnostics.is_empty()
            && let Some(diagnostic) = self.missing_customer_id.take()
        {
            self.diagnostics.push(diagnostic);
        }
        if !self.diagnostics.is_empty() {
            let order: HashMap<&str, usize> =
                self.files.iter().enumerate().map(|(i, f)| (f.as_str(), i)).collect();
            self.diagnostics.sort_by(|a, b| {
                let file_a = order.get(a.file.as_str()).copied().unwrap_or(usize::MAX);
                let file_b = order.get(b.file.as_str()).copied().unwrap_or(usize::MAX);
                (file_a, a.position, a.kind).cmp(&(file_b, b.position, b.kind))
            });
            self.diagnostics
                .dedup_by(|a, b| a.file == b.file && a.position == b.position && a.message == b.message);
            return Err(Diagnostics(self.diagnostics));
        }
        let Some(customer_id) = merged.customer_id else {
            return Err(Diagnostics(Vec::new()));
        };
        let falls_back = falls_back_to_anonymous(&customer_id);
        let platform = merged.platform.unwrap_or_else(|| CompiledSource {
            origin: Origin::Constant("\"web\"".into()),
            transform: None,
            default: None,
        });
        let mut app = CompiledApp::default();
        for (name, source) in set_entries(merged.app) {
            match &*name {
                "app_version" => app.app_version = Some(source),
                _ => app.device_id = Some(source),
            }
        }
        let mut events: BTreeMap<String, CompiledEvent> =
            merged.events.into_iter().map(|(name, event)| (name, event.compiled())).collect();
        let catch_all = events.remove(CATCH_ALL);
        self.warnings.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
        Ok(Blueprint {
            warnings: self.warnings,
            files: self.files,
            platform,
            app,
            customer_id,
            user_identifiers: set_entries(merged.user_identifiers),
            user_attributes: set_entries(merged.user_attributes),
            events: events.into_iter().map(|(k, v)| (k.into_boxed_str(), v)).collect(),
            catch_all,
            customer: merged.customer.map(LayerCustomer::compiled),
            device: merged.device.map(LayerDevice::compiled),
            merge: merged.merge.unwrap_or(false),
            merge_anonymous: merged.merge_anonymous.unwrap_or(falls_back),
        })
    }
}

/// Whether a `customer_id` source gives the anonymous id when an earlier path finds nothing.
fn falls_back_to_anonymous(customer_id: &CompiledSource) -> bool {
    match &customer_id.origin {
        Origin::Paths(paths) => paths.iter().skip(1).any(|path| {
            matches!(path, FieldPath::Direct { root, steps, .. } if &**root == "anonymous_id" && steps.is_empty())
        }),
        Origin::Constant(_) => false,
    }
}

fn raw(value: &Value) -> Option<Box<str>> {
    serde_json::to_string(value).ok().map(String::into_boxed_str)
}

/// Lexically removes `.` and `a/..` so that `extends` targets are named as a person would.
fn normalise(path: &Path) -> String {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect::<PathBuf>().display().to_string()
}

/// How to name the object a schema location describes, for messages.
fn describe_schema(schema_pointer: &str) -> String {
    match schema_pointer.rsplit('/').next().unwrap_or_default() {
        "" => "the blueprint".into(),
        "IdentityMapping" => "`identity`".into(),
        "EventMapping" => "an event mapping".into(),
        "ValueSource" | "SourceSpec" | "AttributeSource" => "a value source".into(),
        "CustomerMapping" => "`customer`".into(),
        other => format!("`{other}`"),
    }
}

fn type_hint(pointer: &str, expected: &str, found: &Value) -> Option<String> {
    let field = pointer.rsplit('/').next().unwrap_or_default();
    if let Some(event) = pointer.strip_prefix("/events/").filter(|event| !event.contains('/'))
        && found.is_null()
    {
        let event = event.replace("~1", "/").replace("~0", "~");
        return Some(format!(
            "write `{event}: {{}}` to send the event as it is, under its own name with its properties"
        ));
    }
    if expected == "text, a list or a mapping" {
        return Some("a value is a path such as `$.properties.total`, paths tried in order such as `[$.user_id, $.anonymous_id]`, or a mapping such as `{path: $.traits.phone, transform: e164}` or `{value: 12}`".into());
    }
    if field == "platform" && expected == "text or a mapping" {
        return Some("a platform is a name such as `web`, or a mapping such as `{path: $.context.device.type, transform: platform, default: web}`".into());
    }
    let hint = match field {
        "events" => "write each event as `Event Name: {action: ..., rename: {...}}`",
        "rename" => "write renames as a mapping, e.g. `rename: {revenue: value}`",
        "exclude" => "write exclusions as a list, e.g. `exclude: [internal_id]`",
        "attributes" | "user_identifiers" => {
            "write attributes as a mapping of name to path, e.g. `url: $.context.page.url`"
        }
        "pass_through" => "write `pass_through: true` or `pass_through: false`",
        _ => return None,
    };
    Some(hint.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Transform;

    #[test]
    fn transform_names_match_the_schema() {
        let text = serde_json::to_string(schema()).expect("json");
        for name in Transform::NAMES {
            assert!(text.contains(&format!("\"{name}\"")), "{name} missing from schema");
        }
    }

    #[test]
    fn the_built_in_presets_are_the_shipped_files() {
        for preset in PRESETS {
            let built_in = compile_preset(preset).expect("a preset").expect("compiles");
            let path = format!("{}/../../blueprints/moengage/{preset}.yaml", env!("CARGO_MANIFEST_DIR"));
            let on_disk = compile_file(Path::new(&path)).expect("compiles");
            assert_eq!(built_in.event_names().collect::<Vec<_>>(), on_disk.event_names().collect::<Vec<_>>());
            let events = include_str!("../../../tests/fixtures/events.ndjson");
            let at = "2026-07-01T12:00:00Z".parse().expect("time");
            let (built_in, on_disk) = (
                crate::Mapper::new(std::sync::Arc::new(built_in)),
                crate::Mapper::new(std::sync::Arc::new(on_disk)),
            );
            for line in events.lines() {
                assert_eq!(built_in.map(line, at), on_disk.map(line, at), "{preset}: {line}");
            }
        }
        assert!(compile_preset("wholesale").is_none());
    }

    /// Editors name an object by its title, show `patternErrorMessage` for a refused pattern, and
    /// render `markdownDescription` on hover: every part of the schema has them.
    #[test]
    fn the_schema_speaks_to_editors_in_words() {
        fn walk(at: &str, value: &Value, problems: &mut Vec<String>) {
            match value {
                Value::Object(object) => {
                    if object.contains_key("pattern") && !object.contains_key("patternErrorMessage") {
                        problems.push(format!("{at}: a pattern without patternErrorMessage"));
                    }
                    if let Some(description) = object.get("description").filter(|d| d.is_string())
                        && object.get("markdownDescription") != Some(description)
                    {
                        problems.push(format!("{at}: a description without the same markdownDescription"));
                    }
                    for (key, inner) in object {
                        walk(&format!("{at}/{key}"), inner, problems);
                    }
                }
                Value::Array(items) => {
                    for (index, inner) in items.iter().enumerate() {
                        walk(&format!("{at}/{index}"), inner, problems);
                    }
                }
                _ => {}
            }
        }
        let mut problems = Vec::new();
        walk("", schema(), &mut problems);
        for (name, def) in schema()["$defs"].as_object().expect("$defs") {
            let title = def.get("title").and_then(Value::as_str).unwrap_or_default();
            if title.is_empty() || title == name {
                problems.push(format!("$defs/{name}: no title in words"));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn minimal_blueprint_compiles() {
        let blueprint =
            compile_str("inline.yaml", "identity:\n  customer_id: $.user_id\nevents:\n  Signed Up: {}\n")
                .expect("valid");
        assert_eq!(blueprint.event_names().collect::<Vec<_>>(), ["Signed Up"]);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = "identity:\n  customer_id: user_id\nevents:\n  Signed Up:\n    renames: {a: b}\n    action: moe_signup\n";
        let errors = compile_str("inline.yaml", text).expect_err("invalid");
        let codes: Vec<&str> = errors.iter().map(|d| d.kind.code()).collect();
        assert_eq!(codes, ["invalid_path", "unknown_key", "reserved_prefix"]);
    }
}
