//! One entry as a search returns it: what the core, the account-state rules and the doctor read.

/// One entry, with only the attributes that were asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    /// (attribute name as the server spelled it, values).
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// The values of `attr` (attribute names are case-insensitive), empty when absent.
    pub fn values(&self, attr: &str) -> &[Vec<u8>] {
        self.attrs.iter().find(|(name, _)| name.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_slice()).unwrap_or(&[])
    }
}
