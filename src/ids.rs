//! Identifiers shared by every layer. Small copyable integers: the control layer maps
//! the names a CRM uses to these.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, DefaultHasher};

/// A hash map whose iteration order depends only on what was done to it (fixed hash
/// keys): engine and simulator runs stay reproducible for a seed.
pub type DetMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

macro_rules! id {
    ($(#[$m:meta])* $name:ident($ty:ty), $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $ty);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id!(/// One call attempt (one SIP dialog towards a customer).
    CallId(u64), "call-");
id!(/// A logged-in agent seat.
    AgentId(u32), "agent-");
id!(/// A campaign: a list of leads dialled under one set of rules.
    CampaignId(u32), "campaign-");
id!(/// A lead: one person to reach, with one phone number.
    LeadId(u64), "lead-");
