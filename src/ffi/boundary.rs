//! The panic boundary every exported function and callback runs inside.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::OnceLock;

use libc::c_int;

use super::sasl::{SASL_FAIL, SASL_LOG_ERR};
use super::utils::Utils;
use crate::error::Error;

thread_local! {
    /// Depth of boundaries on this thread: panics inside one are reported by the boundary,
    /// not printed to the host's stderr.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// A panic hook as `std::panic::take_hook` returns it.
type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send>;

/// The hook that was in place before ours (std's default in the plugin: its std is its own).
static PREVIOUS: OnceLock<Hook> = OnceLock::new();

/// Keep the default panic message for panics outside our boundaries (tests), silence it
/// inside (a daemon's stderr may be a client socket).
///
/// The hook captures nothing, so its box is zero-sized and allocates nothing: a boxed closure
/// was lost (16 bytes) each time `sasl_done` unloaded the plugin. The previous hook is std's
/// default, zero-sized too.
fn install_hook() {
    PREVIOUS.get_or_init(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(silent_inside_boundaries));
        previous
    });
}

fn silent_inside_boundaries(info: &PanicHookInfo<'_>) {
    if DEPTH.with(Cell::get) == 0 {
        if let Some(previous) = PREVIOUS.get() {
            previous(info);
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// Run `f`; a panic becomes `SASL_FAIL` and one `SASL_LOG_ERR` line through `utils`.
pub fn boundary(utils: Option<Utils<'_>>, f: impl FnOnce() -> c_int) -> c_int {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let _scope = utils.map(super::hostlog::Scope::enter);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    match result {
        Ok(code) => code,
        Err(payload) => {
            let msg = Error::Internal(panic_text(payload.as_ref())).to_string();
            if let Some(u) = utils {
                u.with_max_level(SASL_LOG_ERR).log(SASL_LOG_ERR, format_args!("{msg}"));
                u.set_error(&msg);
            }
            SASL_FAIL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_becomes_fail() {
        let code = boundary(None, || panic!("boom"));
        assert_eq!(code, SASL_FAIL);
        assert_eq!(boundary(None, || 0), 0);
    }
}
