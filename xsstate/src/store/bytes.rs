//! A node's name and value, kept in its slot when short (no allocation of their own) and on
//! the heap otherwise.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::error::XsError;

/// Longest name plus value kept in the slot. Most nodes a toolstack writes fit (`state` and
/// `4`, `backend-id` and `0`, `mac` and `00:16:3e:12:34:56`), and the slot stays 64 bytes.
pub(crate) const INLINE_MAX: usize = 22;

/// The bytes of a node's name followed by its value.
#[derive(Clone, Debug)]
pub(crate) enum NodeBytes {
    /// Up to [`INLINE_MAX`] bytes in place; `len` of them are used.
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    /// Longer: an allocation of exactly their length.
    Heap(Box<[u8]>),
}

const _: () = assert!(core::mem::size_of::<NodeBytes>() == 24);

impl Default for NodeBytes {
    fn default() -> NodeBytes {
        NodeBytes::Inline {
            len: 0,
            bytes: [0; INLINE_MAX],
        }
    }
}

impl NodeBytes {
    /// `name` then `value`; `ENOMEM` when they need the heap and it has no room.
    pub(crate) fn new(name: &[u8], value: &[u8]) -> Result<NodeBytes, XsError> {
        let total = name.len().checked_add(value.len()).ok_or(XsError::Enomem)?;
        if total <= INLINE_MAX {
            let mut bytes = [0; INLINE_MAX];
            if let Some((n, rest)) = bytes.split_at_mut_checked(name.len()) {
                n.copy_from_slice(name);
                if let Some(v) = rest.get_mut(..value.len()) {
                    v.copy_from_slice(value);
                }
            }
            // `total` <= INLINE_MAX < 256.
            return Ok(NodeBytes::Inline {
                len: total as u8,
                bytes,
            });
        }
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(total).map_err(super::oom)?;
        v.extend_from_slice(name);
        v.extend_from_slice(value);
        Ok(NodeBytes::Heap(v.into_boxed_slice()))
    }

    /// The name and value bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            NodeBytes::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            NodeBytes::Heap(b) => b,
        }
    }

    /// The first `name_len` bytes: the name.
    pub(crate) fn name(&self, name_len: u16) -> &[u8] {
        self.as_slice().get(..usize::from(name_len)).unwrap_or(&[])
    }

    /// The bytes after the first `name_len`: the value.
    pub(crate) fn value(&self, name_len: u16) -> &[u8] {
        self.as_slice().get(usize::from(name_len)..).unwrap_or(&[])
    }

    /// Their length.
    pub(crate) fn len(&self) -> usize {
        match self {
            NodeBytes::Inline { len, .. } => usize::from(*len),
            NodeBytes::Heap(b) => b.len(),
        }
    }

    /// Bytes they take on the heap beside the slot (0 when inline).
    pub(crate) fn heap_len(&self) -> usize {
        match self {
            NodeBytes::Inline { .. } => 0,
            NodeBytes::Heap(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inline_long_on_heap() {
        let short = NodeBytes::new(b"state", b"4").unwrap();
        assert!(matches!(short, NodeBytes::Inline { len: 6, .. }));
        assert_eq!(short.as_slice(), b"state4");
        assert_eq!(short.heap_len(), 0);
        let edge = NodeBytes::new(b"mac", b"00:16:3e:12:34:56:7").unwrap();
        assert_eq!(edge.len(), INLINE_MAX);
        assert!(matches!(edge, NodeBytes::Inline { .. }));
        let long = NodeBytes::new(b"mac", b"00:16:3e:12:34:56:78").unwrap();
        assert_eq!(long.as_slice(), b"mac00:16:3e:12:34:56:78");
        assert_eq!(long.heap_len(), INLINE_MAX + 1);
        assert_eq!(NodeBytes::default().as_slice(), b"");
    }
}
