//! The Samba AD fixture itself (tests/common/samba.rs): it starts on its own loopback address
//! with LDAP and LDAPS, behaves like AD (strongerAuthRequired for a simple bind over ldap://,
//! `data` codes for each refused account, anonymous root DSE), and leaves nothing behind.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::samba::{self, Samba};

#[test]
fn samba_ad_starts_on_its_own_address_and_leaves_nothing_behind() {
    let started = Instant::now();
    let dc = Samba::start();
    eprintln!(
        "samba AD DC: {:?} from start_with to ready (samba itself {:?}); listening on {}",
        started.elapsed(),
        dc.start_time,
        dc.ip()
    );
    let ip = dc.ip();
    assert_eq!(ip.octets()[..2], [127, 88]);
    let pid = dc.pid().expect("samba runs");
    // The root DSE says AD, anonymously.
    let out = Command::new("ldapsearch")
        .args(["-LLL", "-x", "-H", &dc.ldap_url(), "-b", "", "-s", "base"])
        .args(["defaultNamingContext", "supportedCapabilities"])
        .env("LDAPNOINIT", "1")
        .output()
        .expect("run ldapsearch");
    let dse = String::from_utf8_lossy(&out.stdout);
    assert!(dse.contains(&format!("defaultNamingContext: {}", samba::BASE_DN)), "{dse}");
    assert!(dse.contains("supportedCapabilities: 1.2.840.113556.1.4.800"), "{dse}");
    // A simple bind over plain ldap:// is refused with strongerAuthRequired.
    let plain = Command::new("ldapwhoami")
        .args(["-x", "-H", &dc.ldap_url(), "-D", samba::SVC.upn, "-w", samba::SVC.password])
        .env("LDAPNOINIT", "1")
        .output()
        .expect("run ldapwhoami");
    let plain = String::from_utf8_lossy(&plain.stderr);
    assert!(plain.contains("(8)") && plain.contains("Transport encryption required"), "{plain}");
    // Every account binds, or is refused with its own data code, under each bind-name form.
    for user in samba::USERS {
        for name in [user.upn.to_string(), user.down_level(), user.dn.to_string()] {
            match (dc.bind(&name, user.password), user.refused) {
                (Ok(()), None) => {}
                (Err(e), Some(code)) => assert!(e.contains(&format!("data {code}")), "{name}: {e}"),
                (r, want) => panic!("{name}: {r:?}, expected refusal {want:?}"),
            }
        }
    }
    let wrong = dc.bind(samba::ALICE.upn, "wrong").expect_err("a wrong password binds");
    assert!(wrong.contains("data 52e"), "{wrong}");
    drop(dc);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "samba {pid} still runs");
    let gone = |port| TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(200)).is_err();
    assert!(gone(389) && gone(636), "something still listens on {ip}");
    let addrs = Command::new("ip").args(["-4", "addr", "show", "dev", "lo"]).output().expect("run ip");
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(!addrs.contains(&format!("{ip}/32")), "{ip} is still on lo:\n{addrs}");
}
