//! Token constraints: restrict which tokens a decoder may emit next.
//!
//! Generation asks the constraint for the allowed set before every step, masks all other
//! logits to `-inf`, picks a token and reports it back with [`TokenConstraint::advance`].
//! Keeping the trait this small lets grammar engines, JSON-schema decoders and label lists
//! plug into the same decoding loop.

use crate::Result;

/// A stateful filter over the vocabulary that follows the tokens emitted so far.
pub trait TokenConstraint {
    /// Token ids allowed at the next step; `None` means every token is allowed.
    ///
    /// An empty list is an error state: generation stops with
    /// [`crate::Error::Constraint`].
    fn allowed(&self) -> Option<Vec<u32>>;

    /// Records the emitted token; errors if the token was not allowed.
    fn advance(&mut self, token: u32) -> Result<()>;

    /// True once the constrained output is complete; generation stops here.
    fn is_done(&self) -> bool;
}
