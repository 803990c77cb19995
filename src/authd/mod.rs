//! `ldapbind-authd`: a saslauthd-protocol daemon that checks a password by binding to the
//! directory as the user, for directories that never reveal a password (glauth, Active
//! Directory, OpenLDAP's default ACL). It reads the plugin's options with ldapbind-check's
//! reader ([`crate::doctor::read_config`]), finds the user with the plugin's filter and checks
//! the password with the plugin's [`crate::ldap::client::LdapDirectory`].

pub mod client;
pub mod log;
pub mod protocol;
pub mod server;
pub mod verify;
