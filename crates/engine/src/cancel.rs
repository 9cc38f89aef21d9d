//! A cancel token: set from any thread, checked by long work at its natural
//! steps (each decoding step here; each record and scoring chunk in a study),
//! which then stops as soon as it can and says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Clones share one flag; [`Cancel::default`] is a fresh token nobody has set.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of a clone to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Two tokens are equal when they are clones of one another.
impl PartialEq for Cancel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_set_on_another_thread_is_seen() {
        let token = Cancel::new();
        let other = token.clone();
        assert!(!token.is_cancelled());
        std::thread::spawn(move || other.cancel()).join().unwrap();
        assert!(token.is_cancelled());
        assert!(!Cancel::new().is_cancelled(), "a fresh token is its own");
        assert_ne!(token, Cancel::new());
    }
}
