//! The registry of programs a scenario's `[[task]]` may name: the built-in library, plus
//! any a user registers with their own parameter type.
//!
//! ```
//! use rseq_abi::{Platform, SharedWord};
//! use slicesim::programs::Programs;
//!
//! /// The parameters of `bump`, as a scenario's `[task.params]` spells them.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Bump {
//!     /// How many times to add one.
//!     times: u32,
//! }
//!
//! let programs = Programs::builtin().with("bump", |p, params: &Bump| {
//!     for _ in 0..params.times {
//!         p.shared_fetch_add(SharedWord(0), 1);
//!     }
//!     vec![("bumps", i64::from(params.times))]
//! });
//! assert!(programs.names().contains(&"bump"));
//! ```
//!
//! A registered program's parameters are one table, deserialized with serde into its own
//! type, with the same errors as the rest of the file (file:line:column, the closest key):
//!
//! ```toml
//! [[task]]
//! name = "b"
//! program = "bump"
//! params = { times = 3 }
//! ```
//!
//! Built-in programs keep their parameters as keys of the task (`hold`, `iterations`, …).

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rseq_abi::programs::Counters;
use rseq_sim::{SimPlatform, SimProgram};
use serde::de::DeserializeOwned;

use crate::scenario::ProgramName;

/// What a program returns when it ends: its counters (`Vec<(&'static str, i64)>`, as the
/// built-in programs report them), or nothing.
pub trait ProgramOutput {
    /// The counters a scenario's `[expect.task.NAME.counters]` and predicates read.
    fn into_counters(self) -> Counters;
}

impl ProgramOutput for Counters {
    fn into_counters(self) -> Counters {
        self
    }
}

impl ProgramOutput for () {
    fn into_counters(self) -> Counters {
        Vec::new()
    }
}

/// A registered program's parsed parameters, shared by every run that builds its task.
pub(crate) type Params = Arc<dyn Any + Send + Sync>;

/// A registered program, with its parameter type erased.
trait Registered: Send + Sync {
    /// Deserialize the parameters from `de` (a value of the scenario document).
    fn parse(&self, de: toml::de::ValueDeserializer<'_>) -> Result<Params, toml::de::Error>;
    /// A program for one task, with parsed parameters.
    fn make(&self, params: &Params) -> SimProgram;
    /// The JSON schema of the parameters.
    fn schema(&self) -> serde_json::Value;
}

struct Entry<P, F> {
    f: Arc<F>,
    _params: std::marker::PhantomData<fn() -> P>,
}

impl<P, F, R> Registered for Entry<P, F>
where
    P: DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static,
    F: Fn(&mut SimPlatform<'_>, &P) -> R + Send + Sync + 'static,
    R: ProgramOutput,
{
    fn parse(&self, de: toml::de::ValueDeserializer<'_>) -> Result<Params, toml::de::Error> {
        let p: P = serde::Deserialize::deserialize(de)?;
        Ok(Arc::new(p))
    }

    fn make(&self, params: &Params) -> SimProgram {
        let params = Arc::clone(params)
            .downcast::<P>()
            .expect("parameters parsed by this entry");
        let f = Arc::clone(&self.f);
        Box::new(move |p| f(p, &params).into_counters())
    }

    fn schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(P)).expect("a schema serializes")
    }
}

/// The parameters of a program registered with [`Programs::with_fn`]: none (an empty or
/// absent `params` table).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The programs scenario files may name: the built-in library ([`Programs::builtin`]),
/// plus any registered with [`Programs::with`]. Cloning is cheap (the entries are shared).
#[derive(Clone)]
pub struct Programs {
    user: BTreeMap<String, Arc<dyn Registered>>,
}

impl fmt::Debug for Programs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for Programs {
    fn default() -> Self {
        Programs::builtin()
    }
}

impl Programs {
    /// The built-in programs: `selftest`, `selftest_noise`, `spinlock`, `misbehave`,
    /// `script`, `sleeper`, `spinner` (`slicesim list` describes them).
    pub fn builtin() -> Programs {
        Programs {
            user: BTreeMap::new(),
        }
    }

    /// Register program `name`: `f` runs as a task's code with the task's parameters,
    /// deserialized from its `params` table into `P` (an absent table is an empty one, so
    /// `#[serde(default)]` fields may be left out).
    ///
    /// `f` is any `rseq-abi` program instantiated for the simulator's platform: for a
    /// generic `fn my_lock<P: Platform>(p: &mut P, params: &MyParams)`, pass
    /// `|p, params| my_lock(p, params)`.
    ///
    /// # Panics
    ///
    /// If `name` is already taken (a built-in or an earlier registration): the registry is
    /// built by code, so this is a mistake in that code, not in a scenario file.
    pub fn with<P, F, R>(mut self, name: &str, f: F) -> Programs
    where
        P: DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static,
        F: Fn(&mut SimPlatform<'_>, &P) -> R + Send + Sync + 'static,
        R: ProgramOutput,
    {
        assert!(
            !self.names().contains(&name),
            "program `{name}` is registered twice (names: {})",
            self.names().join(", ")
        );
        let entry = Entry {
            f: Arc::new(f),
            _params: std::marker::PhantomData,
        };
        self.user.insert(name.to_string(), Arc::new(entry));
        self
    }

    /// Register program `name` without parameters: `f` is the task's whole code (a
    /// closure may capture what it needs). Its task takes no `params`.
    ///
    /// # Panics
    ///
    /// As [`Programs::with`], if `name` is taken.
    pub fn with_fn<F, R>(self, name: &str, f: F) -> Programs
    where
        F: Fn(&mut SimPlatform<'_>) -> R + Send + Sync + 'static,
        R: ProgramOutput,
    {
        self.with(name, move |p, _: &NoParams| f(p))
    }

    /// Every program name, the built-in ones first.
    pub fn names(&self) -> Vec<&str> {
        ProgramName::NAMES
            .iter()
            .copied()
            .chain(self.user.keys().map(String::as_str))
            .collect()
    }

    /// The names of the registered (not built-in) programs.
    pub fn registered(&self) -> Vec<&str> {
        self.user.keys().map(String::as_str).collect()
    }

    /// Is `name` a registered (not built-in) program?
    pub fn is_registered(&self, name: &str) -> bool {
        self.user.contains_key(name)
    }

    /// Parse `name`'s parameters from a value of the scenario document (its errors carry
    /// that document's spans).
    pub(crate) fn parse_params(
        &self,
        name: &str,
        de: toml::de::ValueDeserializer<'_>,
    ) -> Result<Params, toml::de::Error> {
        self.user[name].parse(de)
    }

    /// A program for a task running registered program `name` with `params`.
    pub(crate) fn make(&self, name: &str, params: &Params) -> SimProgram {
        self.user[name].make(params)
    }

    /// The keys of registered program `name`'s `params` table (empty for an unknown
    /// program or one without parameters).
    pub fn param_keys(&self, name: &str) -> Vec<String> {
        let Some(e) = self.user.get(name) else {
            return Vec::new();
        };
        e.schema()
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Each registered program's parameter schema, by name.
    pub(crate) fn schemas(&self) -> Vec<(&str, serde_json::Value)> {
        self.user
            .iter()
            .map(|(n, e)| (n.as_str(), e.schema()))
            .collect()
    }
}
