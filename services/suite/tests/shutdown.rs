//! SIGTERM against peers that stop answering: the drain is bounded, so
//! an HTTP/2 connection that never acknowledges the server's GOAWAY (its
//! PING goes unanswered) cannot keep the process from exiting.

mod common;

use std::{io::Write, net::TcpStream, time::Duration};

use common::Process;
use jixiao_runtime::host::DRAIN_GRACE;

/// The HTTP/2 client preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn sigterm_exits_despite_peers_that_stop_reading() {
    let dir = tempfile::tempdir().unwrap();
    let key = "11".repeat(32);
    let mut server = Process::start("plans", dir.path(), &key, &[]);
    // Five connections that open HTTP/2, then neither read nor answer.
    let stalled: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr()).expect("connect");
            s.write_all(PREFACE).expect("preface");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let exit = server.terminate(DRAIN_GRACE + Duration::from_secs(10));
    let exit = exit.expect("the server exits after SIGTERM within the drain's grace");
    assert_eq!(exit.code(), Some(0), "SIGTERM exits 0");
    drop(stalled);
}
