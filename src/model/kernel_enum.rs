//! The kernel's small enumerations as enums (`kernel_enum!`): a name for each value we know,
//! the number for the rest, serialised as the name iproute2 prints, so the JSON is the same as
//! when they were strings and no code outside `source/` compares names.

/// A kernel enumeration with names for the values we know and the number for the rest (a newer
/// kernel may send one): serialised as the name iproute2 prints, or that number. The item using
/// it imports `fmt`, `Serialize`, `Serializer`, `Deserialize`, `Deserializer`.
macro_rules! kernel_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $var:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $var,)*
            /// A value this build has no name for, as the kernel's number.
            Other(u8),
        }
        impl $name {
            /// The name iproute2 prints; None for `Other`.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $($name::$var => Some($text),)*
                    $name::Other(_) => None,
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match (self.name(), self) {
                    (Some(n), _) => f.write_str(n),
                    (None, $name::Other(n)) => write!(f, "{n}"),
                    (None, _) => unreachable!("every named variant has a name"),
                }
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                match s {
                    $($text => Ok($name::$var),)*
                    n => n.parse().map($name::Other).map_err(|_| {
                        format!(concat!("unknown ", stringify!($name), " {:?}"), n)
                    }),
                }
            }
        }
        /// Compares with the name iproute2 prints, as tests written against its output do.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                match self {
                    $name::Other(n) => other.parse() == Ok(*n),
                    named => named.name() == Some(*other),
                }
            }
        }
        /// For names written in code (fixtures, tests): input is parsed with `FromStr`, which
        /// returns an error instead.
        impl From<&str> for $name {
            #[track_caller]
            fn from(s: &str) -> $name {
                s.parse().unwrap_or_else(|e| panic!("{e}"))
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A kernel enumeration whose numbers are known too (`RTN_*`, `RT_SCOPE_*`, `RTPROT_*`): the
/// source converts the kernel's number with `from_number`.
macro_rules! numbered_kernel_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $var:ident = $num:literal $text:literal),* $(,)? }) => {
        kernel_enum!($(#[$doc])* $name { $($(#[$vdoc])* $var = $text),* });
        impl $name {
            /// The value the kernel sent.
            pub fn from_number(n: u8) -> $name {
                match n {
                    $($num => $name::$var,)*
                    n => $name::Other(n),
                }
            }
        }
    };
}
