//! Errors as Python exceptions with the names the browser package gives its errors: `GgufError`,
//! `ModelError`, `TokenizerError`, `InterpError`, `InputError`, `GpuError`, `TaskError`, all
//! subclasses of `GlassboxError`.

use glassbox::generate::GenerateError;
use glassbox::interp::InterpError as CoreInterpError;
use glassbox::model::loader::LoadError;
use glassbox::model::ModelError as CoreModelError;
use glassbox::tasks::TaskError as CoreTaskError;
use glassbox::tokenizer::TokenizerError as CoreTokenizerError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(_native, GlassboxError, PyException, "Every error glassbox raises.");
create_exception!(_native, GgufError, GlassboxError, "The file is not a GGUF model glassbox can read.");
create_exception!(_native, ModelError, GlassboxError, "The model cannot be built or run as asked.");
create_exception!(_native, TokenizerError, GlassboxError, "The text or tokens do not fit the tokenizer.");
create_exception!(_native, InterpError, GlassboxError, "An interpretability method cannot run as asked.");
create_exception!(_native, InputError, GlassboxError, "An argument or an input row is not what the call takes.");
create_exception!(_native, GpuError, GlassboxError, "The chosen device did not open or failed.");
create_exception!(_native, TaskError, GlassboxError, "A claim task cannot run as asked.");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gguf,
    Model,
    Tokenizer,
    Interp,
    Input,
    Gpu,
    Task,
    /// A failure of glassbox itself (a panic caught at the boundary, a thread gone).
    Internal,
}

/// An error on its way from the model's thread to Python.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, message: impl std::fmt::Display) -> Self {
        Failure { kind, message: message.to_string() }
    }

    pub fn input(message: impl std::fmt::Display) -> Self {
        Failure::new(Kind::Input, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Failure::new(Kind::Internal, message)
    }

    pub fn into_py(self) -> PyErr {
        let message = self.message;
        match self.kind {
            Kind::Gguf => GgufError::new_err(message),
            Kind::Model => ModelError::new_err(message),
            Kind::Tokenizer => TokenizerError::new_err(message),
            Kind::Interp => InterpError::new_err(message),
            Kind::Input => InputError::new_err(message),
            Kind::Gpu => GpuError::new_err(message),
            Kind::Task => TaskError::new_err(message),
            Kind::Internal => GlassboxError::new_err(message),
        }
    }
}

impl From<CoreModelError> for Failure {
    fn from(e: CoreModelError) -> Self {
        let kind = match &e {
            CoreModelError::Gguf(_) => Kind::Gguf,
            CoreModelError::Tokenizer(_) => Kind::Tokenizer,
            CoreModelError::UnknownHook(_)
            | CoreModelError::RecordingTooLarge { .. }
            | CoreModelError::BadIntervention(_) => Kind::Input,
            _ => Kind::Model,
        };
        Failure::new(kind, e)
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Model(e) => e.into(),
            LoadError::Device(reason) => Failure::new(Kind::Gpu, reason),
        }
    }
}

impl From<CoreTokenizerError> for Failure {
    fn from(e: CoreTokenizerError) -> Self {
        Failure::new(Kind::Tokenizer, e)
    }
}

impl From<CoreInterpError> for Failure {
    fn from(e: CoreInterpError) -> Self {
        match e {
            CoreInterpError::Model(e) => e.into(),
            CoreInterpError::Tokenizer(e) => e.into(),
            other => Failure::new(Kind::Interp, other),
        }
    }
}

impl From<GenerateError> for Failure {
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::Model(e) => e.into(),
            GenerateError::Tokenizer(e) => e.into(),
            other => Failure::input(other),
        }
    }
}

impl From<CoreTaskError> for Failure {
    fn from(e: CoreTaskError) -> Self {
        match e {
            CoreTaskError::BadInput(message) => Failure::input(message),
            other => Failure::new(Kind::Task, other),
        }
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::internal(format!("a result did not serialise: {e}"))
    }
}
