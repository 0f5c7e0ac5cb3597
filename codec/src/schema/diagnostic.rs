//! How the compiler reports problems: one [`Diagnostic`] per problem, naming the file and
//! the key path, and the [`CompileError`] that carries them out of a failed compilation.
//! Both passes that find problems (the compiler and the set-wide checks) produce these,
//! and tools print them as they are, so they live apart from either.

use std::fmt;

/// One problem in a manifest set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The manifest file (e.g. `rpc.json`), empty for problems with the set itself.
    pub file: String,
    /// Where in the file, as a key path (`get_user[1].?user`), possibly empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.path.is_empty()) {
            (true, _) => write!(f, "{}", self.message),
            (false, true) => write!(f, "{}: {}", self.file, self.message),
            (false, false) => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

/// The problems that stopped a compilation (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError(pub Vec<Diagnostic>);

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}
