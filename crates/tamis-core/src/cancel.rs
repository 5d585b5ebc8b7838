//! Cooperative cancellation: a long computation (a cleaning pass, a dedup
//! stage) checks a shared flag between batches or stages and stops with
//! [`CoreError::Cancelled`] once someone has asked it to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::CoreError;

/// A cancellation flag shared between a job and whoever may stop it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet raised.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks the computation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once it was asked to stop.
    pub fn check(&self) -> Result<(), CoreError> {
        if self.is_cancelled() {
            Err(CoreError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = Cancel::new();
        let b = a.clone();
        assert!(b.check().is_ok());
        a.cancel();
        assert!(b.is_cancelled());
        assert!(matches!(b.check(), Err(CoreError::Cancelled)));
        assert!(!CoreError::Cancelled.is_bad_input());
    }
}
