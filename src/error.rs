//! Typed errors for the value parsers and checks that have one message and
//! no structure worth matching on (a layer list, a schedule, an init, a
//! hyperparameter, a thread count, a plot path, a run's saved state).
//!
//! Each is its own type, so a caller can tell them apart and `?` works
//! under `anyhow` or `Box<dyn Error>`; each converts into `String` for the
//! CLI's messages. Errors with structure (IDX files, datasets, downloads,
//! checkpoints, training, a whole run, the layered configuration) have
//! their own enums beside their code.

/// Declares a one-message error type: a newtype over the message with
/// `Display`, `std::error::Error`, `From<String>` and `Into<String>`.
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl $name {
            /// The message, which names the flag, key or file at fault.
            pub fn message(&self) -> &str {
                &self.0
            }
        }
        impl From<String> for $name {
            fn from(message: String) -> Self {
                Self(message)
            }
        }
        impl From<&str> for $name {
            fn from(message: &str) -> Self {
                Self(message.to_string())
            }
        }
        impl From<$name> for String {
            fn from(e: $name) -> String {
                e.0
            }
        }
    };
}
pub(crate) use message_error;

#[cfg(test)]
mod tests {
    message_error!(
        /// A test error.
        TestError
    );

    fn fails() -> Result<(), TestError> {
        Err(format!("--flag: `{}` is wrong", 3))?
    }

    #[test]
    fn message_errors_convert_both_ways_and_box() {
        let e = fails().unwrap_err();
        assert_eq!(e.message(), "--flag: `3` is wrong");
        assert_eq!(e.to_string(), "--flag: `3` is wrong");
        let s: String = e.clone().into();
        assert_eq!(s, "--flag: `3` is wrong");
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        assert_eq!(boxed.to_string(), "--flag: `3` is wrong");
    }
}
