//! Byte views of C arguments and bounded writes into host buffers.

use libc::{c_char, c_uint};

use super::sasl::SASL_BUFOVER;
use crate::error::Error;

/// Copy `(ptr, len)` into an owned buffer; `len == 0` means a NUL-terminated string (SASL's
/// rule). Copying first matters: the host may pass its output buffer as the input.
///
/// # Safety
/// `ptr` must be non-null and point to `len` readable bytes, or to a NUL-terminated string
/// when `len == 0`.
pub unsafe fn copy_in(ptr: *const c_char, len: c_uint) -> Vec<u8> {
    if len == 0 {
        // SAFETY: caller guarantees a NUL-terminated string when len == 0.
        unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes().to_vec()
    } else {
        // SAFETY: caller guarantees `len` readable bytes at `ptr`.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }.to_vec()
    }
}

/// Write `value` and a terminating NUL into `out` (capacity `out_max` bytes), or refuse with
/// `SASL_BUFOVER` when it does not fit. Nothing is written on failure.
///
/// # Safety
/// `out` must be non-null and valid for `out_max` bytes of writes; `out_len` must be
/// non-null and writable.
pub unsafe fn copy_out(value: &[u8], out: *mut c_char, out_max: c_uint, out_len: *mut c_uint) -> Result<(), Error> {
    if value.len() >= out_max as usize {
        return Err(Error::TooLong { len: value.len(), max: (out_max as usize).saturating_sub(1) });
    }
    debug_assert_eq!(Error::TooLong { len: 0, max: 0 }.sasl_code(), SASL_BUFOVER);
    // SAFETY: value.len() + 1 <= out_max bytes, which the caller guarantees are writable;
    // `value` is an owned copy, so the regions never overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr(), out.cast::<u8>(), value.len());
        *out.add(value.len()) = 0;
        *out_len = value.len() as c_uint;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::undocumented_unsafe_blocks)]
mod tests {
    use super::*;

    #[test]
    fn len_zero_means_strlen() {
        let s = c"johndoe";
        assert_eq!(unsafe { copy_in(s.as_ptr(), 0) }, b"johndoe");
        assert_eq!(unsafe { copy_in(s.as_ptr(), 4) }, b"john");
    }

    #[test]
    fn exact_fit_and_overflow() {
        let mut buf = [0x55u8; 8];
        let mut n: c_uint = 99;
        // 7 bytes + NUL fit in 8.
        unsafe { copy_out(b"1234567", buf.as_mut_ptr().cast(), 8, &mut n) }.unwrap();
        assert_eq!((&buf[..8], n), (&b"1234567\0"[..], 7));
        let mut buf = [0x55u8; 8];
        let mut n: c_uint = 99;
        let e = unsafe { copy_out(b"12345678", buf.as_mut_ptr().cast(), 8, &mut n) }.unwrap_err();
        assert_eq!(e.sasl_code(), SASL_BUFOVER);
        assert_eq!((buf, n), ([0x55u8; 8], 99), "nothing written on failure");
    }

    #[test]
    fn aliasing_input_and_output() {
        let mut buf = *b"  bob  \0\0\0";
        let input = unsafe { copy_in(buf.as_ptr().cast(), 7) };
        let trimmed = input.trim_ascii();
        let mut n = 0;
        unsafe { copy_out(trimmed, buf.as_mut_ptr().cast(), 10, &mut n) }.unwrap();
        assert_eq!(&buf[..4], b"bob\0");
        assert_eq!(n, 3);
    }

    proptest::proptest! {
        /// Whatever the value and the capacity, nothing is written past `out_max`, and a
        /// success leaves a NUL-terminated copy with the right length.
        #[test]
        fn copy_out_stays_within_the_buffer(value in proptest::collection::vec(proptest::num::u8::ANY, 0..64), out_max in 0u32..80) {
            const GUARD: u8 = 0xA5;
            let mut buf = vec![GUARD; out_max as usize + 16];
            let mut n: c_uint = 12345;
            let r = unsafe { copy_out(&value, buf.as_mut_ptr().cast(), out_max, &mut n) };
            proptest::prop_assert!(buf[out_max as usize..].iter().all(|&b| b == GUARD), "wrote past out_max");
            match r {
                Ok(()) => {
                    proptest::prop_assert!(value.len() < out_max as usize);
                    proptest::prop_assert_eq!(n as usize, value.len());
                    proptest::prop_assert_eq!(&buf[..value.len()], &value[..]);
                    proptest::prop_assert_eq!(buf[value.len()], 0);
                }
                Err(e) => {
                    proptest::prop_assert!(value.len() >= out_max as usize);
                    proptest::prop_assert_eq!(e.sasl_code(), SASL_BUFOVER);
                    proptest::prop_assert_eq!(n, 12345);
                }
            }
        }

        #[test]
        fn copy_in_takes_exactly_len_bytes(value in proptest::collection::vec(1u8..=255, 1..64)) {
            let got = unsafe { copy_in(value.as_ptr().cast(), value.len() as c_uint) };
            proptest::prop_assert_eq!(got, value);
        }
    }
}
