//! Lock-free slots holding one function pointer each (interrupt and shutdown hooks, output
//! sinks): readable from any context, including interrupt handlers, without a lock.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

mod sealed {
    /// Only the function pointer types listed in this module may live in a [`super::FnSlot`].
    pub trait Sealed {}
}

/// A function pointer type that round-trips through `usize`.
pub trait FnPointer: Copy + sealed::Sealed {
    /// The pointer as an address (never 0).
    fn to_addr(self) -> usize;
    /// The pointer back from an address.
    ///
    /// # Safety
    /// `addr` must come from [`FnPointer::to_addr`] of the same type.
    unsafe fn from_addr(addr: usize) -> Self;
}

macro_rules! fn_pointer {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl FnPointer for $t {
            fn to_addr(self) -> usize {
                self as usize
            }
            unsafe fn from_addr(addr: usize) -> Self {
                // SAFETY: the caller guarantees `addr` came from `to_addr` of this very type,
                // so it is a valid, non-null function pointer of this signature.
                unsafe { core::mem::transmute::<usize, $t>(addr) }
            }
        }
    )*};
}

fn_pointer!(fn(), fn(bool) -> !, fn(&[u8]), fn(usize) -> usize);

/// One optional function pointer of type `F`.
pub struct FnSlot<F: FnPointer> {
    addr: AtomicUsize,
    _f: PhantomData<F>,
}

impl<F: FnPointer> FnSlot<F> {
    /// An empty slot.
    pub const fn empty() -> Self {
        FnSlot {
            addr: AtomicUsize::new(0),
            _f: PhantomData,
        }
    }

    /// Stores `f`, replacing what was there.
    pub fn set(&self, f: F) {
        self.addr.store(f.to_addr(), Ordering::Release);
    }

    /// Empties the slot.
    pub fn clear(&self) {
        self.addr.store(0, Ordering::Release);
    }

    /// The stored function, if any.
    pub fn get(&self) -> Option<F> {
        match self.addr.load(Ordering::Acquire) {
            0 => None,
            // SAFETY: only `set` stores a non-zero value, always from `F::to_addr`.
            addr => Some(unsafe { F::from_addr(addr) }),
        }
    }
}
