//! What a task returns: [`Outcome`] splits it into the value sent back and the error that
//! arrives as [`TaskError::Failed`](crate::TaskError::Failed).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Panic;

/// The error type of tasks that cannot fail: no value of it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Never {}

impl std::fmt::Display for Never {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

/// What a task function may return: a `Result<T, E>` (its `Err` arrives as
/// [`TaskError::Failed`](crate::TaskError::Failed)), or a plain value of the common types
/// (integers, `String`, `Vec`, `Option`, tuples, maps...), which cannot fail.
///
/// For a type of your own, return `Result<MyType, E>` (or `Result<MyType, Never>`), or use
/// [`outcome!`](crate::outcome) to declare it a plain value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a task",
    label = "return `Result<{Self}, E>` here, or declare the type with `ipc_process::outcome!({Self})`"
)]
pub trait Outcome: Sized {
    /// The value sent back to the parent.
    type Value: Serialize + DeserializeOwned + Send + 'static;
    /// The task's own error type.
    type Error: Serialize + DeserializeOwned + Send + 'static;
    /// Split into value or error.
    fn into_result(self) -> Result<Self::Value, Self::Error>;
}

impl<T, E> Outcome for Result<T, E>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = T;
    type Error = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// Declare types as plain task return values (they cannot fail: their error type is
/// [`Never`]). The type must be `Serialize + DeserializeOwned + Send + 'static`.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Stats { files: u64, bytes: u64 }
/// ipc_process::outcome!(Stats);
/// ```
#[macro_export]
macro_rules! outcome {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::Outcome for $ty {
            type Value = $ty;
            type Error = $crate::Never;
            fn into_result(self) -> ::core::result::Result<$ty, $crate::Never> {
                ::core::result::Result::Ok(self)
            }
        })*
    };
}

outcome!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    std::path::PathBuf,
    std::time::Duration
);

macro_rules! generic_outcome {
    ($($ty:ident < $($p:ident),* >),* $(,)?) => {
        $(impl<$($p),*> Outcome for $ty<$($p),*>
        where
            $ty<$($p),*>: Serialize + DeserializeOwned + Send + 'static,
        {
            type Value = Self;
            type Error = Never;
            fn into_result(self) -> Result<Self, Never> {
                Ok(self)
            }
        })*
    };
}

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
generic_outcome!(
    Vec<T>, Option<T>, Box<T>, VecDeque<T>, BTreeSet<T>, HashSet<T>, BTreeMap<K, V>,
    HashMap<K, V>
);

macro_rules! tuple_outcome {
    ($(($($p:ident),+)),* $(,)?) => {
        $(impl<$($p),+> Outcome for ($($p,)+)
        where
            ($($p,)+): Serialize + DeserializeOwned + Send + 'static,
        {
            type Value = Self;
            type Error = Never;
            fn into_result(self) -> Result<Self, Never> {
                Ok(self)
            }
        })*
    };
}

tuple_outcome!((A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, F), (A, B, C, D, F, G));

impl<T, const N: usize> Outcome for [T; N]
where
    [T; N]: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = Self;
    type Error = Never;
    fn into_result(self) -> Result<Self, Never> {
        Ok(self)
    }
}

/// What a child sends back for one task: its value, its error, or its panic.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply<V, E> {
    Ok(V),
    Err(E),
    Panic(Panic),
    /// The child could not decode the arguments or encode the result: why.
    Lost(String),
}
