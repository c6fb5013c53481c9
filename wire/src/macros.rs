//! The view boilerplate, written once: the struct, its constructors, and field
//! accessors by byte offset.

/// Declares a view struct over a buffer.
macro_rules! view {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` without checking it (see the crate doc).
            #[inline(always)]
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// The wrapped buffer.
            #[inline(always)]
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole buffer, header first.
            #[inline(always)]
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }
    };
}

/// Getters: `name: type @ offset`.
macro_rules! getters {
    ($($(#[$meta:meta])* $get:ident: $kind:ident @ $at:expr;)*) => {
        $(
            $(#[$meta])*
            #[inline(always)]
            pub fn $get(&self) -> getters!(@type $kind) {
                getters!(@read $kind, self.buffer.as_ref(), $at)
            }
        )*
    };
    (@type u8) => { u8 };
    (@type u16) => { u16 };
    (@type u32) => { u32 };
    (@type mac) => { [u8; 6] };
    (@type ipv4) => { std::net::Ipv4Addr };
    (@type ipv6) => { std::net::Ipv6Addr };
    (@read u8, $b:expr, $at:expr) => { $b[$at] };
    (@read u16, $b:expr, $at:expr) => { u16::from_be_bytes([$b[$at], $b[$at + 1]]) };
    (@read u32, $b:expr, $at:expr) => { u32::from_be_bytes([$b[$at], $b[$at + 1], $b[$at + 2], $b[$at + 3]]) };
    (@read mac, $b:expr, $at:expr) => {{
        let mut m = [0u8; 6];
        m.copy_from_slice(&$b[$at..$at + 6]);
        m
    }};
    (@read ipv4, $b:expr, $at:expr) => { std::net::Ipv4Addr::new($b[$at], $b[$at + 1], $b[$at + 2], $b[$at + 3]) };
    (@read ipv6, $b:expr, $at:expr) => {{
        let mut a = [0u8; 16];
        a.copy_from_slice(&$b[$at..$at + 16]);
        std::net::Ipv6Addr::from(a)
    }};
}

/// Setters: `name: type @ offset`.
macro_rules! setters {
    ($($(#[$meta:meta])* $set:ident: $kind:ident @ $at:expr;)*) => {
        $(
            $(#[$meta])*
            #[inline(always)]
            pub fn $set(&mut self, value: getters!(@type $kind)) {
                setters!(@write $kind, self.buffer.as_mut(), $at, value)
            }
        )*
    };
    (@write u8, $b:expr, $at:expr, $v:expr) => { $b[$at] = $v };
    (@write u16, $b:expr, $at:expr, $v:expr) => { $b[$at..$at + 2].copy_from_slice(&$v.to_be_bytes()) };
    (@write u32, $b:expr, $at:expr, $v:expr) => { $b[$at..$at + 4].copy_from_slice(&$v.to_be_bytes()) };
    (@write mac, $b:expr, $at:expr, $v:expr) => { $b[$at..$at + 6].copy_from_slice(&$v) };
    (@write ipv4, $b:expr, $at:expr, $v:expr) => { $b[$at..$at + 4].copy_from_slice(&$v.octets()) };
    (@write ipv6, $b:expr, $at:expr, $v:expr) => { $b[$at..$at + 16].copy_from_slice(&$v.octets()) };
}
